// Answering tasks from measured rows (docs/search.md, "Answers"):
// feasibility, the least-loss choice with deterministic tie-breaks, and the
// nearest point of the speed/quality front for infeasible targets.
#include "coordinator/distill.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "coordinator/quality.h"
#include "coordinator/search.h"
#include "io/error.h"
#include "partition/plan.h"

namespace diffsearch::coordinator {
namespace {

struct Candidate {
  std::size_t row;
  double speedup;
  double loss;
  double latency_s;  // accelerated seconds per image
  const std::string* key;  // unit key: ties break on it, not on arrival order
};

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// A unit's measurement at full fidelity: its one row, or the rows of the
// frontier strategy's rounds joined over the whole prompt list.
struct Measured {
  std::vector<std::size_t> rows;  // in prompt order
  double speedup = 0;
  double speedup_macs = 0;
  double loss = 0;        // by the quality measure the answers use
  double score_loss = 0;  // CLIP score loss, whatever the measure
  double clip_base = 0, clip_acc = 0;
  double time_acc_s = 0;
};

std::optional<Measured> full_fidelity(const std::vector<std::size_t>& ok_rows,
                                      const std::vector<io::EvaluationRow>& rows, int64_t samples, Quality quality) {
  // The first ok row of each range (a range measured twice after a deadline:
  // the first result wins), ranges in prompt order.
  std::map<int64_t, std::size_t> by_begin;
  for (std::size_t i : ok_rows) by_begin.emplace(rows[i].prompt_begin, i);
  Measured m;
  int64_t at = 0;
  double time_base = 0, macs_base = 0, macs_acc = 0, clip_base = 0, clip_acc = 0;
  for (const auto& [begin, i] : by_begin) {
    if (begin != at) continue;  // a range that does not continue the prefix
    const auto& r = rows[i];
    const double n = static_cast<double>(r.prompt_end - r.prompt_begin);
    m.rows.push_back(i);
    time_base += r.time_base_s;
    m.time_acc_s += r.time_acc_s;
    macs_base += static_cast<double>(r.macs_base);
    macs_acc += static_cast<double>(r.macs_acc);
    clip_base += r.clip_base * n;
    clip_acc += r.clip_acc * n;
    at = r.prompt_end;
  }
  if (at != samples || m.rows.empty()) return std::nullopt;
  if (m.rows.size() == 1) {
    // One row: its own numbers, exactly as the evaluator computed them.
    const auto& r = rows[m.rows[0]];
    m.speedup = r.speedup;
    m.speedup_macs = r.speedup_macs;
    m.score_loss = r.score_loss;
    m.loss = row_loss(quality, r);
    m.clip_base = r.clip_base;
    m.clip_acc = r.clip_acc;
    return m;
  }
  m.speedup = m.time_acc_s > 0 ? time_base / m.time_acc_s : 1.0;
  m.speedup_macs = macs_acc > 0 ? macs_base / macs_acc : 1.0;
  m.clip_base = clip_base / static_cast<double>(samples);
  m.clip_acc = clip_acc / static_cast<double>(samples);
  m.score_loss = quality_loss(m.clip_base, m.clip_acc);
  if (quality == Quality::Clip) {
    m.loss = m.score_loss;
  } else {
    double base = 0, acc = 0;
    for (std::size_t i : m.rows) {
      for (const auto& p : rows[i].prompts) {
        const auto q = quality_scores(quality, p);
        base += q.base;
        acc += q.acc;
      }
    }
    m.loss = quality_loss(base, acc);
  }
  return m;
}

// A deterministic sum (the same rows in any order give the same bits).
double sorted_sum(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  double total = 0;
  for (double v : values) total += v;
  return total;
}

// Pareto front of (speedup up, loss down), then the point nearest the goal;
// `shortfall` measures how far a candidate misses it.
template <typename F>
std::optional<Candidate> nearest_on_front(const std::vector<Candidate>& c, F shortfall) {
  std::optional<Candidate> best;
  double best_d = std::numeric_limits<double>::infinity();
  for (const auto& a : c) {
    bool dominated = false;
    for (const auto& b : c) {
      if ((b.speedup >= a.speedup && b.loss <= a.loss) && (b.speedup > a.speedup || b.loss < a.loss)) {
        dominated = true;
        break;
      }
    }
    if (dominated) continue;
    const double d = shortfall(a);
    if (!best || d < best_d || (d == best_d && (a.loss < best->loss || (a.loss == best->loss && *a.key < *best->key)))) {
      best = a;
      best_d = d;
    }
  }
  return best;
}

}  // namespace

double speedup_shortfall(double speedup, double loss, double target, double max_loss) {
  return std::max(0.0, (loss - max_loss) / max_loss) + (target > 0 ? std::max(0.0, (target - speedup) / target) : 0.0);
}

RecordedSearch recorded_search(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks) {
  // What the file's configuration implies: a damaged one is the file's
  // fault, so the error names it (the messages name the field).
  const std::string source = contents.path.empty() ? std::string("the results file") : contents.path;
  RecordedSearch recorded;
  try {
    recorded.options = options_from_config(contents.config, tasks);
    if (recorded.options.strategy == "frontier") recorded.options.frontier.validate(recorded.options.samples);
    recorded.plan = make_search_plan(recorded.options);
  } catch (const InputError& e) {
    throw InputError(source + ": its search configuration (\"config\") is damaged: " + e.what() +
                     " (the file was changed or written by another tool; search again)");
  } catch (const nlohmann::json::exception& e) {
    // A field of another type (a number where "strategy" or "speed_measure"
    // is a name, a string among the frontier's knobs).
    throw InputError(source + ": its search configuration (\"config\") has a field of the wrong type (" + e.what() +
                     "); the file was changed or written by another tool; search again");
  }
  return recorded;
}

nlohmann::json distill(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks,
                       std::optional<Quality> quality_override) {
  const auto& config = contents.config;
  RecordedSearch recorded = recorded_search(contents, tasks);
  SearchOptions& options = recorded.options;
  const SearchPlan& search_plan = recorded.plan;
  const bool macs = options.speed_measure == "macs";
  const Quality searched_by = options.quality;
  const Quality quality = quality_override.value_or(searched_by);
  for (const auto& run : contents.runs) {
    const auto& attrs = run["attributes"];
    if (attrs.contains("max_attempts") && attrs["max_attempts"].is_number_integer()) {
      options.max_attempts = attrs["max_attempts"].get<int>();
    }
  }
  const bool frontier = options.strategy == "frontier";
  const partition::Plan& plan = search_plan.plan;
  const auto& rows = contents.rows;
  // Which spaces the frontier strategy finished: it replays over the rows.
  std::unique_ptr<SearchStrategy> replayed;
  if (frontier) replayed = replay_strategy(options, search_plan, rows);

  // Each unit's ok rows (any prompt range) and which units only failed.
  std::map<std::string, std::vector<std::size_t>> ok_rows;
  std::map<std::string, std::size_t> failed_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].status == "ok") ok_rows[rows[i].unit_key].push_back(i);
    else failed_rows[rows[i].unit_key]++;
  }
  nlohmann::json out = nlohmann::json::object();
  std::map<std::string, int> counts;
  for (std::size_t t = 0; t < plan.tasks.size(); ++t) {
    const auto& task = plan.tasks[t];
    nlohmann::json answer = {{"task", partition::format_task(task)},
                             {"status", "not_measured"},
                             {"methods", nlohmann::json::array()},
                             {"params", nlohmann::json::object()},
                             {"speedup", nullptr},
                             {"loss", nullptr},
                             {"score_loss", nullptr},
                             {"clip_base", nullptr},
                             {"clip_acc", nullptr},
                             {"device", nullptr},
                             {"rows", nlohmann::json::array()}};
    for (auto m : task.methods) answer["methods"].push_back(partition::method_name(m));

    std::vector<Candidate> candidates;
    std::vector<Measured> measured;
    std::size_t total = 0, missing = 0, failed = 0;
    auto consider = [&](const std::string& unit_key) {
      ++total;
      auto it = ok_rows.find(unit_key);
      std::optional<Measured> m;
      if (it != ok_rows.end()) m = full_fidelity(it->second, rows, options.samples, quality);
      if (m) {
        const auto& r = rows[m->rows.front()];
        if (task.platform && r.device != *task.platform) {
          ++missing;  // measured, but not on the task's GPU
          return;
        }
        measured.push_back(*m);
        const double latency = m->time_acc_s / static_cast<double>(options.samples);
        candidates.push_back({m->rows.front(), macs ? m->speedup_macs : m->speedup, m->loss, latency, &r.unit_key});
      } else if (failed_rows.count(unit_key)) {
        ++failed;
      } else {
        ++missing;  // not measured, or (frontier) measured on a prefix only
      }
    };
    const std::size_t space = plan.task_space[t];
    if (space == partition::kNoSpace) {
      consider(plan.baselines[plan.task_baseline[t]].unit_key());
    } else {
      const auto& s = plan.spaces[space];
      for (uint64_t i = 0; i < s.size; ++i) consider(plan.unit_key({static_cast<uint32_t>(space), i}));
    }
    answer["units"] = {{"total", total}, {"measured", candidates.size()}, {"failed", failed}};
    // Exhaustive: every unit must be in. Frontier: the strategy must have
    // finished the space (most units are never measured, by design).
    const bool unfinished = frontier && space != partition::kNoSpace ? !replayed->space_finished(space)
                                                                        : missing > 0;

    std::optional<Candidate> chosen;
    std::string status;
    if (unfinished) {
      status = "not_measured";
    } else if (candidates.empty()) {
      status = "failed";
    } else if (space == partition::kNoSpace) {
      const auto& c = candidates.front();
      const bool feasible = !task.latency_s || c.latency_s <= *task.latency_s;
      chosen = c;
      status = feasible ? "ok" : "infeasible";
    } else {
      const double max_loss = task.max_score_loss;
      auto feasible = [&](const Candidate& c) {
        if (c.loss > max_loss) return false;
        if (task.speedup && c.speedup < *task.speedup) return false;
        if (task.latency_s && c.latency_s > *task.latency_s) return false;
        return true;
      };
      for (const auto& c : candidates) {
        if (!feasible(c)) continue;
        if (!chosen) {
          chosen = c;
          continue;
        }
        bool better;
        if (task.speedup || task.latency_s) {
          better = c.loss < chosen->loss || (c.loss == chosen->loss && c.speedup > chosen->speedup);
        } else {
          better = c.speedup > chosen->speedup || (c.speedup == chosen->speedup && c.loss < chosen->loss);
        }
        // Equal on both: the smaller unit key, so answers do not depend on
        // the order in which workers delivered rows.
        if (!better && c.loss == chosen->loss && c.speedup == chosen->speedup) better = *c.key < *chosen->key;
        if (better) chosen = c;
      }
      if (chosen) {
        status = "ok";
      } else {
        status = "infeasible";
        chosen = nearest_on_front(candidates, [&](const Candidate& c) {
          // Without a target only the loss term counts.
          double d = speedup_shortfall(c.speedup, c.loss, task.speedup.value_or(0.0), max_loss);
          if (task.latency_s) d += std::max(0.0, (c.latency_s - *task.latency_s) / *task.latency_s);
          return d;
        });
      }
    }
    answer["status"] = status;
    counts[status]++;
    if (chosen) {
      const Measured* m = nullptr;
      for (const auto& x : measured) {
        if (x.rows.front() == chosen->row) m = &x;
      }
      const auto& r = rows[chosen->row];
      nlohmann::json params = nlohmann::json::object();
      if (!r.setting.empty()) params = nlohmann::json::parse(r.setting);
      answer["params"] = params;
      answer["speedup"] = number_or_null(space == partition::kNoSpace ? 1.0 : chosen->speedup);
      answer["loss"] = number_or_null(space == partition::kNoSpace ? 0.0 : chosen->loss);
      answer["score_loss"] = number_or_null(space == partition::kNoSpace ? 0.0 : m->score_loss);
      answer["clip_base"] = number_or_null(m->clip_base);
      answer["clip_acc"] = number_or_null(space == partition::kNoSpace ? m->clip_base : m->clip_acc);
      answer["device"] = r.device;
      for (std::size_t i : m->rows) answer["rows"].push_back(i);
      if (task.latency_s) answer["latency_s"] = number_or_null(chosen->latency_s);
    }
    out[partition::task_key(task)] = answer;
  }
  out["_format"] = "diffsearch-search-params";
  out["_version"] = 1;
  out["_speed_measure"] = macs ? "macs" : "wall";
  out["_config"] = config;
  out["_counts"] = counts;
  out["_rows"] = rows.size();
  out["_strategy"] = options.strategy;
  // "loss" is by this measure; "score_loss" is always the CLIP score loss.
  out["_quality"] = quality_name(quality);
  if (quality != searched_by) {
    // The frontier strategy raced the searched measure: the settings it left
    // unmeasured were pruned by that one, so answers by another are the best
    // among those measured in full, not necessarily the space's best.
    out["_quality_searched"] = quality_name(searched_by);
  }
  // What the run spent and what exhaustive would have, in GPU-seconds
  // (wall-time evaluators: not repeatable, unlike everything else here).
  std::vector<double> seconds;
  for (const auto& r : rows) {
    if (std::isfinite(r.gpu_seconds)) seconds.push_back(r.gpu_seconds);
  }
  std::map<std::string, double> exhaustive_by_shard;  // the latest run of each shard
  for (const auto& run : contents.runs) {
    const auto& attrs = run["attributes"];
    if (attrs.contains("gpu_seconds_exhaustive") && attrs["gpu_seconds_exhaustive"].is_number()) {
      exhaustive_by_shard[attrs.value("shard", std::string())] = attrs["gpu_seconds_exhaustive"].get<double>();
    }
  }
  nlohmann::json spent = {{"gpu_seconds", sorted_sum(seconds)}, {"gpu_seconds_exhaustive", nullptr}};
  if (!exhaustive_by_shard.empty()) {
    std::vector<double> parts;
    for (const auto& [shard, v] : exhaustive_by_shard) parts.push_back(v);
    spent["gpu_seconds_exhaustive"] = sorted_sum(parts);
  }
  out["_spent"] = spent;
  return out;
}

std::string distill_text(const nlohmann::json& answers) { return answers.dump(2) + "\n"; }

}  // namespace diffsearch::coordinator
