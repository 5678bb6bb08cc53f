// A worker rank (> 0): says which device it has, then measures what rank 0
// sends until told to stop. It decides nothing: the strategy lives on rank 0.
// Under --isolate on the evaluations run in a child process it restarts when
// it dies; when no child can start, the rank retires (Retire) and waits for
// the run's end.
#include "coordinator/child_evaluator.h"
#include "coordinator/protocol.h"
#include "coordinator/run_support.h"
#include "coordinator/search.h"
#include "coordinator/search_internal.h"
#include "io/error.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {
namespace {

// Tells rank 0 this worker is done measuring, then waits for the run's end
// (every rank must reach MPI_Finalize).
int retire(long id, const std::string& reason, bool bad_input) {
  log::error("this worker stops measuring: " + reason);
  protocol::send(protocol::Retire{id, reason, bad_input}, 0);
  while (true) {
    const protocol::Message msg = protocol::receive(0);
    if (const auto* stop = std::get_if<protocol::Stop>(&msg)) return stop->code;
  }
}

}  // namespace

int worker_loop(const SearchOptions& options, const SearchPlan& plan, int rank) {
  const std::string device = worker_device(options.device, rank);
  log::set_context("rank " + std::to_string(rank) + "@" + host_name());
  std::unique_ptr<worker::Evaluator> evaluator;
  try {
    evaluator = make_worker_evaluator(options, rank, device);
    if (auto reason = worker_unavailable(*evaluator)) return retire(-1, *reason, false);
  } catch (const InputError& e) {
    if (!options.isolate) throw;
    return retire(-1, e.what(), true);
  }
  protocol::send(protocol::Ready{host_name(), device, evaluator->gpu_name(device), evaluator->timing(device)}, 0);
  while (true) {
    const protocol::Message msg = protocol::receive(0);
    if (const auto* stop = std::get_if<protocol::Stop>(&msg)) return stop->code;
    const auto* work = std::get_if<protocol::Work>(&msg);
    if (!work) continue;
    // A child that died on the last unit is replaced here, before this one.
    try {
      if (auto reason = worker_unavailable(*evaluator)) return retire(static_cast<long>(work->id), *reason, false);
    } catch (const InputError& e) {
      return retire(static_cast<long>(work->id), e.what(), true);
    }
    const WorkItem item = protocol::work_item(plan.plan, *work);
    bool oom = false;
    io::EvaluationRow row = evaluate_item(*evaluator, options, plan, item, work->batch, device, rank, &oom);
    row.attempt = work->attempt;
    protocol::send(protocol::Result{work->id, oom, std::move(row)}, 0);
  }
}

}  // namespace diffsearch::coordinator
