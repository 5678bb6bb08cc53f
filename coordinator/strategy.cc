// Choosing a strategy, the frontier strategy's knobs, and replaying a
// strategy over recorded rows (resume, distill, status).
#include "coordinator/strategy.h"

#include <algorithm>
#include <map>

#include "coordinator/search.h"
#include "coordinator/strategy_internal.h"
#include "io/error.h"

namespace diffsearch::coordinator {

WorkItem make_work_item(const partition::Plan& plan, std::size_t space, uint64_t index, std::size_t baseline,
                        int begin, int end) {
  WorkItem item;
  item.space = space;
  item.index = index;
  item.baseline = baseline;
  item.prompt_begin = begin;
  item.prompt_end = end;
  if (space == partition::kNoSpace) {
    item.unit_key = plan.baselines[baseline].unit_key();
  } else {
    item.unit_key = plan.unit_key({static_cast<uint32_t>(space), index});
  }
  return item;
}

nlohmann::json FrontierOptions::to_json() const {
  nlohmann::json out = {{"race_prompts", race_prompts},         {"confidence", confidence},
                        {"assume_monotone", assume_monotone},   {"combine", combine},
                        {"calibration", calibration},           {"speed_margin", speed_margin},
                        {"speed_tolerance", speed_tolerance}};
  // Absent means 0, as in files written before polishing existed: those
  // still resume with --polish 0.
  if (polish != 0) out["polish"] = polish;
  // Absent means 0, as in files written before it existed.
  if (loss_tolerance != 0) out["loss_tolerance"] = loss_tolerance;
  return out;
}

void FrontierOptions::validate(int samples) const {
  if (!(confidence >= 0.5 && confidence < 1)) {
    throw InputError("--confidence " + std::to_string(confidence) + ": expected a probability in [0.5, 1), as in 0.99");
  }
  if (combine != "fronts" && combine != "product") {
    throw InputError("--combine \"" + combine + "\": expected fronts or product");
  }
  if (calibration < 0) throw InputError("--speed-calibration: expected 0 or more settings");
  if (polish < 0 || polish > 16) throw InputError("--polish " + std::to_string(polish) + ": expected 0 (off) to 16 rounds");
  if (!(speed_margin >= 0 && speed_margin < 1)) {
    throw InputError("--speed-margin: expected a fraction in [0, 1), as in 0.05");
  }
  if (!(speed_tolerance >= 0 && speed_tolerance < 0.5)) {
    throw InputError("--speed-tolerance: expected a fraction in [0, 0.5), as in 0.01");
  }
  if (!(loss_tolerance >= 0 && loss_tolerance <= 0.05)) {
    throw InputError("--loss-tolerance " + std::to_string(loss_tolerance) +
                     ": expected a loss from 0 (exhaustive's own picks) to 0.05, as in 0.002");
  }
  int last = 0;
  for (int p : race_prompts) {
    if (p <= last) {
      throw InputError("--race-prompts: expected increasing prompt counts from 1, as in 4,8,16," + std::to_string(samples));
    }
    last = p;
  }
}

std::vector<int> FrontierOptions::schedule(int samples) const {
  std::vector<int> out;
  for (int p : race_prompts) {
    if (p < samples) out.push_back(p);
  }
  out.push_back(samples);
  return out;
}

std::unique_ptr<SearchStrategy> make_strategy(const SearchOptions& options, const SearchPlan& plan) {
  if (options.strategy == "exhaustive") return make_exhaustive_strategy(options, plan);
  if (options.strategy == "frontier") return make_frontier_strategy(options, plan);
  throw InputError("--strategy \"" + options.strategy + "\": expected frontier or exhaustive");
}

std::unique_ptr<SearchStrategy> replay_strategy(const SearchOptions& options, const SearchPlan& plan,
                                                const std::vector<io::EvaluationRow>& rows) {
  std::map<std::string, const io::EvaluationRow*> ok;
  std::map<std::string, int> failed;
  for (const auto& r : rows) {
    const std::string key = WorkItem::work_key_of(r.unit_key, r.prompt_begin, r.prompt_end);
    if (r.status == "ok") ok.emplace(key, &r);
    else failed[key] = std::max<int>(failed[key], static_cast<int>(r.attempt));
  }
  auto strategy = make_strategy(options, plan);
  const int max_attempts = std::max(1, options.max_attempts);
  while (true) {
    bool settled_any = false;
    for (const WorkItem& item : strategy->take_ready()) {
      const std::string key = item.work_key();
      auto it = ok.find(key);
      if (it != ok.end()) {
        strategy->settle(item, it->second);
        settled_any = true;
      } else if (auto f = failed.find(key); f != failed.end() && f->second >= max_attempts) {
        strategy->settle(item, nullptr);
        settled_any = true;
      }
    }
    if (!settled_any) break;
  }
  return strategy;
}

}  // namespace diffsearch::coordinator
