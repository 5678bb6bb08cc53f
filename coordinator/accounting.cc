// GPU-seconds: spent (summed from rows) and the exhaustive counterfactual
// (from the evaluator's own estimate, or extrapolated from the rows).
#include "coordinator/accounting.h"

#include <cmath>
#include <limits>
#include <map>

#include "coordinator/search.h"

namespace diffsearch::coordinator {

double rows_gpu_seconds(const std::vector<io::EvaluationRow>& rows) {
  double total = 0;
  for (const auto& r : rows) {
    if (std::isfinite(r.gpu_seconds)) total += r.gpu_seconds;
  }
  return total;
}

double exhaustive_gpu_seconds(const SearchOptions& options, const SearchPlan& plan, worker::Evaluator* estimator,
                              const std::vector<io::EvaluationRow>& rows) {
  const auto& p = plan.plan;
  if (estimator) {
    double total = 0;
    bool known = true;
    for (std::size_t b : plan.basic_baselines) {
      if (!plan.in_shard[b]) continue;
      const auto item = make_work_item(p, partition::kNoSpace, 0, b, 0, options.samples);
      const auto e = estimator->estimate_seconds(measurement_unit(options, plan, item, options.batch_size, "cpu"));
      known = known && e.has_value();
      if (e) total += *e;
    }
    for (std::size_t s = 0; s < plan.task_spaces && known; ++s) {
      const auto& space = p.spaces[s];
      if (!plan.in_shard[space.baseline]) continue;
      // One unit reused, only its setting changing: categories of millions.
      auto unit = measurement_unit(options, plan, make_work_item(p, s, 0, space.baseline, 0, options.samples),
                                   options.batch_size, "cpu");
      for (uint64_t i = 0; i < space.size && known; ++i) {
        unit.setting = space.setting_at(i);
        unit.unit_key = p.unit_key({static_cast<uint32_t>(s), i});
        const auto e = estimator->estimate_seconds(unit);
        known = e.has_value();
        if (e) total += *e;
      }
    }
    if (known) return total;
  }
  // Extrapolate: seconds per prompt per space, seconds per cost unit overall.
  std::map<std::string, std::pair<double, double>> per_space;  // seconds, prompts
  double seconds = 0, cost = 0;
  std::map<std::string, double> space_cost_per_prompt;
  for (const auto& space : p.spaces) space_cost_per_prompt[space.key()] = space.unit_cost / p.samples;
  for (const auto& r : rows) {
    if (!std::isfinite(r.gpu_seconds) || r.prompt_end <= r.prompt_begin) continue;
    const double prompts = static_cast<double>(r.prompt_end - r.prompt_begin);
    auto& acc = per_space[r.space_key];
    acc.first += r.gpu_seconds;
    acc.second += prompts;
    auto c = space_cost_per_prompt.find(r.space_key);
    if (c != space_cost_per_prompt.end()) {
      seconds += r.gpu_seconds;
      cost += c->second * prompts;
    }
  }
  if (per_space.empty()) return std::numeric_limits<double>::quiet_NaN();
  const double per_cost = cost > 0 ? seconds / cost : std::numeric_limits<double>::quiet_NaN();
  double total = 0;
  for (std::size_t b : plan.basic_baselines) {
    if (plan.in_shard[b]) total += per_cost * p.baselines[b].cost;
  }
  for (std::size_t s = 0; s < plan.task_spaces; ++s) {
    const auto& space = p.spaces[s];
    if (!plan.in_shard[space.baseline]) continue;
    auto it = per_space.find(space.key());
    const double full = it != per_space.end() && it->second.second > 0
                            ? it->second.first / it->second.second * options.samples
                            : per_cost * space.unit_cost;
    total += full * static_cast<double>(space.size);
  }
  return total;
}

}  // namespace diffsearch::coordinator
