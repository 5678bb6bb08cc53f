// Answering tasks from measured rows (ARCHITECTURE.md "Answering a task"):
// feasibility, the least-loss choice with deterministic tie-breaks, and the
// nearest point of the speed/quality front for infeasible targets.
#include "coordinator/distill.h"

#include <cmath>
#include <limits>
#include <map>
#include <optional>

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

partition::PlanOptions options_from_config(const nlohmann::json& config) {
  partition::PlanOptions options;
  if (config.contains("samples") && config["samples"].is_number_integer()) options.samples = config["samples"].get<int>();
  if (config.contains("resolution") && config["resolution"].is_object()) {
    for (const auto& [name, px] : config["resolution"].items()) {
      options.resolution[partition::parse_model(name)] = px.get<int>();
    }
  }
  if (config.contains("space") && !config["space"].is_null()) {
    options.space = partition::space_config_from_json(config["space"], "the results file's search space");
  }
  return options;
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

nlohmann::json distill(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks) {
  const auto& config = contents.config;
  const bool macs = config.value("speed_measure", std::string("wall")) == "macs";
  const partition::Plan plan = partition::make_plan(tasks, options_from_config(config));
  const auto& rows = contents.rows;

  // The first ok row of each unit (a unit measured twice after a deadline:
  // the first result wins), and which units only failed.
  std::map<std::string, std::size_t> ok_row;
  std::map<std::string, std::size_t> failed_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].status == "ok") ok_row.emplace(rows[i].unit_key, i);
    else failed_rows[rows[i].unit_key]++;
  }
  auto speed_of = [&](const io::EvaluationRow& r) { return macs ? r.speedup_macs : r.speedup; };
  auto latency_of = [&](const io::EvaluationRow& r) {
    return r.num_samples > 0 ? r.time_acc_s / static_cast<double>(r.num_samples) : r.time_acc_s;
  };

  nlohmann::json out = nlohmann::json::object();
  std::map<std::string, int> counts;
  const std::string empty_setting = partition::setting_key({});
  for (std::size_t t = 0; t < plan.tasks.size(); ++t) {
    const auto& task = plan.tasks[t];
    nlohmann::json answer = {{"task", partition::format_task(task)},
                             {"status", "not_measured"},
                             {"methods", nlohmann::json::array()},
                             {"params", nlohmann::json::object()},
                             {"speedup", nullptr},
                             {"score_loss", nullptr},
                             {"clip_base", nullptr},
                             {"clip_acc", nullptr},
                             {"device", nullptr},
                             {"rows", nlohmann::json::array()}};
    for (auto m : task.methods) answer["methods"].push_back(partition::method_name(m));

    std::vector<Candidate> candidates;
    std::size_t total = 0, missing = 0, failed = 0;
    auto consider = [&](const std::string& unit_key) {
      ++total;
      auto it = ok_row.find(unit_key);
      if (it != ok_row.end()) {
        const auto& r = rows[it->second];
        if (task.platform && r.device != *task.platform) {
          ++missing;  // measured, but not on the task's GPU
          return;
        }
        candidates.push_back({it->second, speed_of(r), r.score_loss, latency_of(r), &r.unit_key});
      } else if (failed_rows.count(unit_key)) {
        ++failed;
      } else {
        ++missing;
      }
    };
    const std::size_t space = plan.task_space[t];
    if (space == partition::kNoSpace) {
      consider(plan.baselines[plan.task_baseline[t]].key() + "/" + empty_setting);
    } else {
      const auto& s = plan.spaces[space];
      for (uint64_t i = 0; i < s.size; ++i) consider(plan.unit_key({static_cast<uint32_t>(space), i}));
    }
    answer["units"] = {{"total", total}, {"measured", candidates.size()}, {"failed", failed}};

    std::optional<Candidate> chosen;
    std::string status;
    if (missing > 0) {
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
          double d = std::max(0.0, (c.loss - max_loss) / max_loss);
          if (task.speedup) d += std::max(0.0, (*task.speedup - c.speedup) / *task.speedup);
          if (task.latency_s) d += std::max(0.0, (c.latency_s - *task.latency_s) / *task.latency_s);
          return d;
        });
      }
    }
    answer["status"] = status;
    counts[status]++;
    if (chosen) {
      const auto& r = rows[chosen->row];
      nlohmann::json params = nlohmann::json::object();
      if (!r.setting.empty()) params = nlohmann::json::parse(r.setting);
      answer["params"] = params;
      answer["speedup"] = number_or_null(space == partition::kNoSpace ? 1.0 : chosen->speedup);
      answer["score_loss"] = number_or_null(space == partition::kNoSpace ? 0.0 : chosen->loss);
      answer["clip_base"] = number_or_null(r.clip_base);
      answer["clip_acc"] = number_or_null(space == partition::kNoSpace ? r.clip_base : r.clip_acc);
      answer["device"] = r.device;
      answer["rows"].push_back(chosen->row);
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
  return out;
}

std::string distill_text(const nlohmann::json& answers) { return answers.dump(2) + "\n"; }

}  // namespace diffsearch::coordinator
