// A worker rank (> 0): says which device it has, then measures what rank 0
// sends until told to stop. It decides nothing: the strategy lives on rank 0.
#include "coordinator/protocol.h"
#include "coordinator/run_support.h"
#include "coordinator/search.h"
#include "coordinator/search_internal.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {

int worker_loop(const SearchOptions& options, const SearchPlan& plan, int rank) {
  const std::string device = worker_device(options.device, rank);
  log::set_context("rank " + std::to_string(rank) + "@" + host_name());
  auto evaluator = make_evaluator(options.evaluator, rank);
  protocol::send(protocol::Ready{host_name(), device, evaluator->gpu_name(device), evaluator->timing(device)}, 0);
  while (true) {
    const protocol::Message msg = protocol::receive(0);
    if (const auto* stop = std::get_if<protocol::Stop>(&msg)) return stop->code;
    const auto* work = std::get_if<protocol::Work>(&msg);
    if (!work) continue;
    const WorkItem item = protocol::work_item(plan.plan, *work);
    bool oom = false;
    io::EvaluationRow row = evaluate_item(*evaluator, options, plan, item, work->batch, device, rank, &oom);
    row.attempt = work->attempt;
    protocol::send(protocol::Result{work->id, oom, std::move(row)}, 0);
  }
}

}  // namespace diffsearch::coordinator
