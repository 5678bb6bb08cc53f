// Merging shard files: shard numbers and configurations checked, units and
// runs checked for overlap, completeness measured against each shard's
// units_total, then the contents concatenated in shard order.
#include "io/results_merge.h"

#include <map>
#include <utility>
#include <set>

#include "io/error.h"
#include "io/log/log.h"

namespace diffsearch::io {
namespace {

struct ShardOf {
  int index = 0;
  int count = 0;
};

ShardOf shard_of(const MergeInput& input) {
  const auto& config = input.contents.config;
  auto it = config.is_object() ? config.find("shard") : config.end();
  if (!config.is_object() || it == config.end()) {
    throw InputError(input.path + ": not a shard (its configuration has no \"shard\" field); merge joins the " +
                     "files of `diffsearch search --shard I/K` runs, one per shard");
  }
  const auto& s = *it;
  if (!s.is_object() || !s.contains("index") || !s.contains("count") || !s["index"].is_number_integer() ||
      !s["count"].is_number_integer() || s["count"].get<int>() < 2 || s["index"].get<int>() < 0 ||
      s["index"].get<int>() >= s["count"].get<int>()) {
    throw InputError(input.path + ": the configuration's \"shard\" field " + s.dump() +
                     " is not {\"index\": I, \"count\": K} with 0 <= I < K; the file is damaged");
  }
  return {s["index"].get<int>(), s["count"].get<int>()};
}

std::string name(const ShardOf& s) { return std::to_string(s.index) + "/" + std::to_string(s.count); }

nlohmann::json without_shard(nlohmann::json config) {
  config.erase("shard");
  return config;
}

// Units the shard was to measure: the units_total of its last run record.
long long units_total(const ResultsContents& c) {
  for (auto run = c.runs.rbegin(); run != c.runs.rend(); ++run) {
    const auto& a = (*run)["attributes"];
    if (a.is_object() && a.contains("units_total") && a["units_total"].is_number_integer()) {
      return a["units_total"].get<long long>();
    }
  }
  return -1;
}

// A frontier search measures a sliver of its units by design: it is done
// when its strategy has answered every space, which the run record says at
// the end of a run. Returns {done, all}, or {-1, -1} when no run ended.
std::pair<long long, long long> spaces_answered(const ResultsContents& c) {
  for (auto run = c.runs.rbegin(); run != c.runs.rend(); ++run) {
    const auto& a = (*run)["attributes"];
    if (a.is_object() && a.contains("spaces") && a["spaces"].is_number_integer() && a.contains("spaces_done") &&
        a["spaces_done"].is_number_integer()) {
      return {a["spaces_done"].get<long long>(), a["spaces"].get<long long>()};
    }
  }
  return {-1, -1};
}

}  // namespace

ResultsContents merge_shards(const std::vector<MergeInput>& inputs, const std::string& merge_run_id,
                             const nlohmann::json& merge_attributes, bool allow_incomplete) {
  if (inputs.empty()) throw InputError("merge: no results files given");
  std::map<int, const MergeInput*> by_index;
  const ShardOf first = shard_of(inputs.front());
  const nlohmann::json config = without_shard(inputs.front().contents.config);
  for (const auto& input : inputs) {
    const ShardOf s = shard_of(input);
    if (s.count != first.count) {
      throw InputError(input.path + " is shard " + name(s) + " but " + inputs.front().path + " is shard " +
                       name(first) + ": shards of different job arrays; merge the " + std::to_string(first.count) +
                       " files of one array");
    }
    const auto diff = config_differences(config, without_shard(input.contents.config));
    if (!diff.empty()) {
      std::string fields;
      for (const auto& f : diff) fields += (fields.empty() ? "" : ", ") + f;
      throw InputError(input.path + ": another search configuration than " + inputs.front().path +
                       " (fields that differ: " + fields + "); merge only the shards of one search");
    }
    auto [it, fresh] = by_index.emplace(s.index, &input);
    if (!fresh) {
      throw InputError(it->second->path + " and " + input.path + " are both shard " + name(s) +
                       "; pass each shard's file once");
    }
  }
  std::string missing;
  for (int i = 0; i < first.count; ++i) {
    if (!by_index.count(i)) missing += (missing.empty() ? "" : ", ") + name({i, first.count});
  }
  if (!missing.empty()) {
    throw InputError("merge: shard" + std::string(missing.find(',') == std::string::npos ? " " : "s ") + missing +
                     " missing; pass the results files of all " + std::to_string(first.count) + " shards");
  }

  ResultsContents merged;
  merged.config = config;
  std::map<std::string, std::string> unit_file, run_file;
  long long total = 0;
  std::pair<long long, long long> spaces_total{0, 0};  // frontier shards: answered, all
  nlohmann::json merged_from = nlohmann::json::array();
  for (const auto& [index, input] : by_index) {
    const auto& c = input->contents;
    std::set<std::string> units;
    for (const auto& row : c.rows) {
      auto [it, fresh] = unit_file.emplace(row.unit_key, input->path);
      if (!fresh && it->second != input->path) {
        throw InputError("unit " + row.unit_key + " is in both " + it->second + " and " + input->path +
                         ": shards never share units, so these are not shards of one run");
      }
      units.insert(row.unit_key);
    }
    for (const auto& run : c.runs) {
      const std::string id = run.value("run_id", "");
      auto [it, fresh] = run_file.emplace(id, input->path);
      if (!fresh) {
        throw InputError("run " + id + " is in both " + it->second + " and " + input->path +
                         ": one file copied under two names?");
      }
      merged.runs.push_back(run);
    }
    const long long expected = units_total(c);
    if (expected < 0) {
      throw InputError(input->path + ": no run record with units_total; not written by diffsearch search");
    }
    const bool frontier = c.config.value("strategy", std::string()) == "frontier";
    const auto [spaces_done, spaces] = spaces_answered(c);
    const bool unfinished = frontier ? spaces < 0 || spaces_done < spaces
                                     : static_cast<long long>(units.size()) < expected;
    if (unfinished) {
      const std::string what =
          input->path + " (shard " + name({index, first.count}) + ") " +
          (frontier ? (spaces < 0 ? std::string("has no finished run")
                                  : "has answered " + std::to_string(spaces_done) + " of its " + std::to_string(spaces) +
                                        " spaces")
                    : "holds " + std::to_string(units.size()) + " of its " + std::to_string(expected) + " units");
      if (!allow_incomplete) {
        throw InputError(what + ": the shard has not finished; resume it (its search command with --resume, or "
                                "requeue its job) and merge again, or pass --partial to merge what there is");
      }
      log::warn(what + "; merging anyway (--partial): distill answers its missing units' tasks not_measured");
    }
    total += expected;
    if (frontier && spaces >= 0) {
      spaces_total.first += spaces_done;
      spaces_total.second += spaces;
    }
    merged.rows.insert(merged.rows.end(), c.rows.begin(), c.rows.end());
    merged_from.push_back(input->path);
  }
  nlohmann::json attributes = merge_attributes.is_object() ? merge_attributes : nlohmann::json::object();
  attributes["merged_from"] = merged_from.dump();
  attributes["shards"] = first.count;
  attributes["units_total"] = total;
  if (spaces_total.second > 0) {
    attributes["spaces_done"] = spaces_total.first;
    attributes["spaces"] = spaces_total.second;
  }
  if (run_file.count(merge_run_id)) throw Error("merge: run id " + merge_run_id + " already in " + run_file[merge_run_id]);
  merged.runs.push_back({{"run_id", merge_run_id}, {"attributes", attributes}});
  return merged;
}

}  // namespace diffsearch::io
