// The search's command-line options and how a run starts, shared by `search`
// and `traverse` (the original traversal_search.py's flags over one task).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/strategy_options.h"
#include "coordinator/search.h"
#include "partition/task.h"

namespace diffsearch::cli {

struct SearchArgs {
  std::string tasks_file;
  int grid = 0;
  std::string filter;
  std::string shard;
  std::string models_file;
  std::string clip_dir;
  std::string out;
  std::string space_file;
  int num_samples = 32;
  int batch_size = 8;
  uint64_t seed = 0;
  std::string prompts_file;
  std::string device = "cpu";
  std::string dtype;
  std::string speed_measure = "wall";
  std::string quality = "clip";
  std::vector<std::string> resolutions;
  bool resume = false;
  std::string evaluator = "engine";
  std::string isolate = "on";  // --isolate on|off
  StrategyArgs strategy;
  int max_attempts = 3;
  double unit_deadline_s = 3600;
  double progress_interval_s = 5;
  double journal_sync_s = 0.05;
  std::string command_line;  // for the run record
};

// Which options a command declares beyond the measuring ones every search
// has (models, CLIP, space, samples, device, strategy, ...).
struct SearchOptionSet {
  // --tasks, --grid, --filter, --shard and a required --out: `search`.
  // `traverse` builds its one task from the original's flags instead.
  bool task_selection = true;
  // --num-samples and --batch-size also spelled --num_samples, --batch_size
  // (the original scripts' spelling).
  bool underscored = false;
};

void add_search_options(CLI::App& sub, SearchArgs& args, const SearchOptionSet& set);

// The tasks --grid/--tasks/--filter select, and how to name them in messages
// and the run record (`source`).
std::vector<partition::Task> select_tasks(const SearchArgs& args, std::string& source);

// Checks the options against `tasks` (InputError naming the option and the
// fix; `command` names the subcommand in messages) and builds the search.
coordinator::SearchOptions build_search_options(const SearchArgs& args, std::vector<partition::Task> tasks,
                                                const std::string& tasks_source, const std::string& command);

// Runs the search `build` describes: in this process, or, under mpirun/srun,
// as this rank of an MPI job. `on_rank0` (optional) runs after the search on
// the process that wrote the results file, with the search's exit code, and
// returns the command's. Every rank builds the same options.
int run_search(const std::function<coordinator::SearchOptions()>& build,
               const std::function<int(int code)>& on_rank0 = {});

// This process's command line, as the run record keeps it.
std::string own_command_line();

}  // namespace diffsearch::cli
