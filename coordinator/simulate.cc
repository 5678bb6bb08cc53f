// The in-process strategy loop without a results file (coordinator/simulate.h).
#include "coordinator/simulate.h"

#include <cmath>
#include <deque>

namespace diffsearch::coordinator {

Simulation simulate_search(const SearchOptions& options, const SearchPlan& plan, worker::Evaluator& evaluator,
                           bool keep_prompts) {
  Simulation sim;
  auto strategy = make_strategy(options, plan);
  std::deque<WorkItem> queue;
  while (true) {
    for (auto& item : strategy->take_ready()) queue.push_back(std::move(item));
    if (queue.empty()) break;
    const WorkItem item = std::move(queue.front());
    queue.pop_front();
    io::EvaluationRow row = evaluate_item(evaluator, options, plan, item, options.batch_size, "cpu", 0, nullptr);
    strategy->settle(item, row.status == "ok" ? &row : nullptr);
    ++sim.items;
    sim.prompts += static_cast<std::size_t>(item.prompt_end - item.prompt_begin);
    if (std::isfinite(row.gpu_seconds)) sim.gpu_seconds += row.gpu_seconds;
    if (!keep_prompts) row.prompts.clear();
    sim.rows.push_back(std::move(row));
  }
  return sim;
}

}  // namespace diffsearch::coordinator
