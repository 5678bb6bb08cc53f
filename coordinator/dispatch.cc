// Rank 0 of an MPI search: owns the strategy and the results file, pulls
// requests with MPI_Iprobe (never blocking), journals each group of results
// with one fdatasync before answering their workers, and watches deadlines.
#include <mpi.h>

#include <chrono>
#include <thread>

#include "coordinator/protocol.h"
#include "coordinator/run_support.h"
#include "coordinator/scheduler.h"
#include "coordinator/search.h"
#include "coordinator/search_internal.h"
#include "io/error.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {

int coordinate(const SearchOptions& options, const SearchPlan& plan, int size) {
  log::set_context("rank 0@" + host_name());
  io::ResultStore store = io::ResultStore::open(options.out, search_config(options, plan.plan), options.resume);
  store.set_sync_interval(options.journal_sync_s);
  const std::string run_id = make_run_id();
  const double started_at = now_s();
  std::set<std::string> hosts = {host_name()}, devices, gpus;
  store.begin_run(run_id, run_record(options, plan, size, hosts, devices, started_at));
  auto strategy = make_strategy(options, plan);
  Scheduler scheduler(*strategy, plan, options, store.rows());
  auto estimator = make_estimator(options);
  log::info("search (" + strategy->name() + "): " + std::to_string(scheduler.total()) + " items released (" +
            std::to_string(scheduler.skipped()) + " already in " + options.out + "), " + std::to_string(size - 1) +
            " workers");
  Progress progress(scheduler, options.progress_interval_s);

  struct WorkerState {
    long busy = -1;  // item in flight
    double since = 0;
    bool ready = false;
    bool parked = false;  // asked for work when none could be given
    bool stopped = false;
    bool lost = false;
    bool retired = false;  // cannot measure; told to stop when the run ends
    std::string gpu;  // the GPU's name, for platform tasks
  };
  std::vector<WorkerState> workers(static_cast<std::size_t>(size));
  int ready_workers = 0;
  std::map<int, long> holders;
  for (int w = 1; w < size; ++w) holders[w] = -1;
  bool stopping = false;
  double stop_at = 0;
  double lost_since = 0;
  int exit_with = exit_code::ok;

  auto live_set = [&]() {
    std::set<int> live;
    for (int w = 1; w < size; ++w) {
      if (!workers[w].lost && !workers[w].stopped && !workers[w].retired) live.insert(w);
    }
    return live;
  };
  // Once every worker has said which GPU it has (or retired): platforms no
  // measuring worker has are settled.
  auto settle_platforms = [&]() {
    if (ready_workers < size - 1) return;
    std::set<std::string> measuring;
    for (int w = 1; w < size; ++w) {
      if (workers[w].ready && !workers[w].retired) measuring.insert(workers[w].gpu);
    }
    if (report_unservable(scheduler.drop_unservable(measuring), measuring)) exit_with = exit_code::failed;
  };
  // With isolation a worker kills a child past the deadline and reports
  // the unit itself; rank 0 waits longer before it gives up on the worker.
  const double lost_after =
      options.isolate ? options.unit_deadline_s + 10 + 0.1 * options.unit_deadline_s : options.unit_deadline_s;
  auto give_work = [&](int w) {
    auto& ws = workers[w];
    if (stopping || scheduler.finished()) return false;
    auto a = scheduler.next(w, ws.gpu, holders[w], live_set(), holders);
    if (!a) {
      ws.parked = true;
      return false;
    }
    const WorkItem& item = scheduler.item(a->id);
    protocol::Work work;
    work.id = a->id;
    work.space = item.space;
    work.index = item.index;
    work.baseline = item.baseline;
    work.prompt_begin = item.prompt_begin;
    work.prompt_end = item.prompt_end;
    work.attempt = a->attempt;
    work.batch = a->batch;
    protocol::send(work, w);
    ws.busy = static_cast<long>(a->id);
    ws.since = now_s();
    ws.parked = false;
    return true;
  };

  // Answers a worker after its message: more work, or stop.
  auto answer = [&](int w) {
    auto& ws = workers[w];
    if (!give_work(w) && (stopping || scheduler.finished())) {
      protocol::send(protocol::Stop{stopping && !scheduler.finished() ? exit_code::interrupted_resume : 0}, w);
      ws.stopped = true;
      ws.parked = false;
    }
  };
  std::vector<int> to_answer;
  while (true) {
    // Drain every waiting message, journal their results with one fdatasync
    // (group commit), and only then answer their workers: a worker hears
    // back once its result is safe on disk.
    to_answer.clear();
    for (int drained = 0; drained < 4 * size; ++drained) {
      protocol::Message msg;
      int w = 0;
      if (!protocol::try_receive(msg, w)) break;
      auto& ws = workers[w];
      if (ws.lost) {
        log::warn("worker " + std::to_string(w) + " answered after its deadline; its result still counts if first");
        ws.lost = false;
      }
      if (const auto* ready = std::get_if<protocol::Ready>(&msg)) {
        ws.ready = true;
        ws.gpu = ready->gpu.empty() ? ready->device : ready->gpu;
        hosts.insert(ready->host);
        gpus.insert(ws.gpu);
        devices.insert(describe_device(ready->host, ready->device, ws.gpu, ready->timing));
        ++ready_workers;
        settle_platforms();
      } else if (const auto* retire = std::get_if<protocol::Retire>(&msg)) {
        if (retire->bad_input) throw InputError("worker " + std::to_string(w) + ": " + retire->reason);
        log::error("worker " + std::to_string(w) + " stops measuring: " + retire->reason +
                   "; the other workers go on");
        if (retire->id >= 0 && static_cast<std::size_t>(retire->id) < scheduler.total()) {
          scheduler.requeue(static_cast<std::size_t>(retire->id));
        }
        ws.busy = -1;
        ws.retired = true;
        holders[w] = -1;  // its group is free for the others
        ws.parked = false;
        if (!ws.ready) ++ready_workers;
        settle_platforms();
        continue;  // not answered until the run ends
      } else if (auto* result = std::get_if<protocol::Result>(&msg)) {
        result->row.run_id = run_id;
        if (result->id < scheduler.total() &&
            scheduler.record(result->id, result->row, result->out_of_memory, w)) {
          store.append(result->row, /*defer_sync=*/true);
        }
        ws.busy = -1;
      }
      to_answer.push_back(w);
    }
    if (!to_answer.empty()) {
      store.sync();
      store.maybe_flush();
      for (int w : to_answer) answer(w);
      progress.maybe_report();
      continue;
    }
    const double t = now_s();
    if (stop_requested() && !stopping) {
      stopping = true;
      stop_at = t;
      log::warn("stop requested: no new work; waiting for the units in flight");
    }
    for (int w = 1; w < size; ++w) {
      auto& ws = workers[w];
      if (ws.busy >= 0 && !ws.lost && t - ws.since > lost_after) {
        log::warn("worker " + std::to_string(w) + " silent for " + format_duration(t - ws.since) +
                  " on unit " + scheduler.item(static_cast<std::size_t>(ws.busy)).work_key() +
                  ": handing it to another worker");
        ws.lost = true;
        scheduler.requeue(static_cast<std::size_t>(ws.busy));
        ws.busy = -1;
      }
    }
    for (int w = 1; w < size; ++w) {
      auto& ws = workers[w];
      if (ws.stopped || ws.lost || ws.retired || !ws.parked) continue;
      answer(w);
    }
    // Done when every worker has been told to stop. Workers lost past their
    // deadline get a grace period to come back (a slow unit, not a hung
    // GPU); after it the run ends without them.
    bool any_running = false, all_lost = true;
    for (int w = 1; w < size; ++w) {
      if (workers[w].stopped || workers[w].retired) continue;
      any_running = true;
      if (!workers[w].lost) all_lost = false;
    }
    if (!any_running) {
      if (!scheduler.finished() && !stopping) {
        log::error("no worker can measure any more (each stopped measuring, above); rerun with --resume");
        exit_with = exit_code::failed;
      }
      break;
    }
    if (all_lost) {
      if (lost_since == 0) lost_since = t;
      if (t - lost_since > options.stop_grace_s) {
        if (!scheduler.finished() && !stopping) {
          log::error("every worker is lost; rerun with --resume");
          exit_with = exit_code::failed;
        }
        break;
      }
    } else {
      lost_since = 0;
    }
    if (stopping && t - stop_at > options.stop_grace_s) {
      log::warn("workers still busy after " + format_duration(options.stop_grace_s) + "; leaving their units for --resume");
      break;
    }
    progress.maybe_report();
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  progress.maybe_report(true);
  store.begin_run(run_id, final_run_record(options, plan, *strategy, estimator.get(), store.rows(),
                                           run_record(options, plan, size, hosts, devices, started_at)));
  store.close();
  int code = exit_with != exit_code::ok ? exit_with : finish_code(scheduler, stopping);
  if (code == exit_code::interrupted_resume) log::warn("interrupted: rerun with --resume to continue " + options.out);
  for (int w = 1; w < size; ++w) {
    if (!workers[w].retired || workers[w].stopped) continue;
    protocol::send(protocol::Stop{code}, w);
    workers[w].stopped = true;
  }
  bool abandoned = false;
  for (int w = 1; w < size; ++w) abandoned |= !workers[w].stopped;
  if (abandoned) {
    // A worker that never answered would hang MPI_Finalize; the file is closed.
    log::warn("aborting the MPI job: some workers did not stop");
    MPI_Abort(MPI_COMM_WORLD, code == exit_code::ok ? exit_code::failed : code);
  }
  return code;
}


}  // namespace diffsearch::coordinator
