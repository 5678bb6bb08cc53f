// A search from the coordinator's side: the options, the work items planned
// from the tasks, the configuration recorded in the results file, and the run
// itself, in one process or under MPI (rank 0 dispatches, ranks > 0 work).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/evaluators.h"
#include "coordinator/quality.h"
#include "coordinator/strategy.h"
#include "coordinator/work_item.h"
#include "io/result_store.h"
#include "partition/plan.h"
#include "partition/shard.h"

namespace diffsearch::coordinator {

struct SearchOptions {
  std::vector<partition::Task> tasks;  // after --filter
  std::string tasks_source;            // "--grid 4" or the file, for the run record
  partition::Shard shard;              // --shard I/K: measure only this shard's baseline groups
  int samples = 32;
  std::map<partition::Model, int> resolution;  // overrides of the defaults
  int batch_size = 8;
  uint64_t seed = 0;
  nlohmann::json space_json;  // the --space file's JSON (null: defaults)
  std::string space_source;
  std::vector<std::string> prompts;  // cycled to `samples`
  std::map<partition::Model, std::string> model_dirs;
  std::string clip_dir;
  std::string device = "cpu";  // cpu or cuda
  std::string dtype = "float32";
  std::string speed_measure = "wall";  // wall or macs
  Quality quality = Quality::Clip;      // the loss the strategy races and distill answers by
  std::string out;
  bool resume = false;
  std::string evaluator = "engine";
  // Evaluations in a child process each worker starts and watches
  // (coordinator/child_evaluator.h): the CLI's --isolate, on by default
  // there; off here, for callers whose executable has no worker-child.
  bool isolate = false;
  std::string strategy = "frontier";  // or "exhaustive"
  FrontierOptions frontier;
  int max_attempts = 3;
  double unit_deadline_s = 3600;    // a worker silent longer is lost
  double progress_interval_s = 5;
  // fdatasync the journal at most every this many seconds; 0: once per group
  // of results that arrive together, before their workers are answered.
  // Every record is write()n at once either way: a killed process loses
  // nothing, an OS crash at most this interval (re-measured on --resume).
  double journal_sync_s = 0.05;
  double stop_grace_s = 60;         // on SIGTERM: wait this long for busy workers
  nlohmann::json run_attributes = nlohmann::json::object();  // command line, versions
};

// The plan a search runs: the planner's spaces (with the single-method spaces
// the frontier strategy seeds combinations from), the baselines that basic
// tasks need measured alone, and which baselines this shard owns.
struct SearchPlan {
  partition::Plan plan;
  std::vector<std::size_t> basic_baselines;  // baselines of basic tasks
  std::vector<bool> in_shard;                // per baseline
  std::size_t task_spaces = 0;               // spaces [0, task_spaces) have tasks
};

partition::PlanOptions plan_options(const SearchOptions& options);
SearchPlan make_search_plan(const SearchOptions& options);
// What determines the results (checked on --resume): tasks, space, samples,
// batch size, seed, prompts hash, dtype, resolution, speed measure, evaluator,
// strategy and its knobs, and the shard when there are several (diffsearch
// merge joins files that differ only in it).
nlohmann::json search_config(const SearchOptions& options, const partition::Plan& plan);
// The options a results file's configuration implies for `tasks` (what
// distill and status need to rebuild its plan and replay its strategy).
SearchOptions options_from_config(const nlohmann::json& config, const std::vector<partition::Task>& tasks);
// The measurement a work item asks of an evaluator.
worker::MeasurementUnit measurement_unit(const SearchOptions& options, const SearchPlan& plan,
                                         const WorkItem& item, int batch_size, const std::string& device);
// Evaluates one item, turning exceptions into a failed row. The row's
// gpu_seconds are the evaluator's simulated seconds, or the wall time.
io::EvaluationRow evaluate_item(worker::Evaluator& evaluator, const SearchOptions& options,
                                const SearchPlan& plan, const WorkItem& item, int batch_size,
                                const std::string& device, int rank, bool* out_of_memory);

// Runs the whole search in this process (no MPI calls). Returns an exit code:
// 0 done, 1 some units failed, 75 interrupted (resume).
int run_search_local(const SearchOptions& options);
// Under MPI (MPI_Init_thread done by the caller): rank 0 dispatches and
// writes, ranks > 0 evaluate. Every rank returns the same exit code.
int run_search_mpi(const SearchOptions& options, int rank, int size);

// The device a worker uses: cuda:<(local rank - 1) mod visible GPUs> for
// --device cuda, from OMPI_COMM_WORLD_LOCAL_RANK or SLURM_LOCALID; else cpu.
std::string worker_device(const std::string& device, int rank);

// Installs SIGTERM/SIGINT/SIGUSR1 handlers that ask the search to stop
// (SIGUSR1: what mpirun forwards to every rank, where it turns SIGTERM into
// killing the job; Slurm batch scripts send it before the time limit).
void install_stop_handlers();
bool stop_requested();

}  // namespace diffsearch::coordinator
