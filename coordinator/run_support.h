// What the in-process run, rank 0's dispatch and the worker rank share: the
// clock, the host, run ids, the progress line, the run record, exit codes.
#pragma once

#include <map>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "coordinator/scheduler.h"

namespace diffsearch::coordinator {

struct SearchOptions;
struct SearchPlan;

double now_s();
std::string host_name();
std::string make_run_id();
std::string format_duration(double seconds);

// How the run record names a worker's device: its host, the device, what
// that is and how runs on it are timed ("node01 cuda:1 (NVIDIA H200, CUDA
// graphs)"; "node01 cpu" for plain CPU runs).
std::string describe_device(const std::string& host, const std::string& device, const std::string& gpu,
                            const std::string& timing);

// Logs what Scheduler::drop_unservable() settled; true when anything was dropped.
bool report_unservable(const std::map<std::string, std::size_t>& dropped, const std::set<std::string>& gpus);

// /runs/<id> attributes: the options' run attributes plus processes, hosts,
// devices, start time, units, tasks, evaluator, strategy and what was spent.
nlohmann::json run_record(const SearchOptions& options, const SearchPlan& plan, int processes,
                          const std::set<std::string>& hosts, const std::set<std::string>& devices,
                          double started_at);

// 0 done, 1 some units unservable, 75 interrupted before the end.
int finish_code(const Scheduler& scheduler, bool interrupted);

// Progress on rank 0: a log line every few seconds (a bar on a terminal).
class Progress {
 public:
  Progress(const Scheduler& scheduler, double interval_s);
  void maybe_report(bool force = false);

 private:
  const Scheduler& s_;
  double interval_, start_, last_;
  std::size_t start_done_ = 0;
};

}  // namespace diffsearch::coordinator
