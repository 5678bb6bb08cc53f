// Slurm batch scripts for a search (`diffsearch slurm render`): resources,
// requeue and the signal before the time limit, one coordinator and one
// worker per GPU (or T processes per node on CPUs), job arrays of shards.
// The script is slurm/templates/slurm_job.sh.tmpl rendered with codegen's
// Template; every search argument is shell-quoted on its way in.
#pragma once

#include <string>
#include <vector>
#include "render/embedded.h"

namespace diffsearch::slurm {

enum class Launcher { srun, mpirun };

struct BatchOptions {
  int nodes = 1;
  int gpus_per_node = 1;    // 0: CPU workers (then tasks_per_node is required)
  int tasks_per_node = 0;   // 0: gpus_per_node + 1 (a slot for the coordinator)
  int cpus_per_gpu = 8;     // GPU jobs
  int cpus_per_task = 1;    // CPU jobs: cores (and threads) per process
  std::string time = "24:00:00";  // [D-]HH:MM:SS
  int signal_before_s = 300;      // SIGUSR1 this long before the time limit
  std::string partition;
  std::string account;
  std::string job_name = "diffsearch";
  int array = 0;  // K >= 2: a job array of K shards; 0: one job
  Launcher launcher = Launcher::srun;
  bool overcommit = false;  // more processes than cores (a small test machine)
  std::string diffsearch;   // the executable the job runs (an absolute path)
  std::string workdir;      // the job's working folder (absolute)
  std::string log_dir = "slurm-logs";  // relative to workdir, or absolute
  std::vector<std::string> search_args;  // as for `diffsearch search`, with --out
  std::string render_command;            // recorded in the script's header
};

// The batch script. InputError naming the option and the fix for: counts
// out of range, a malformed --time or one not longer than the signal lead,
// --gpus-per-node 0 without --ntasks-per-node, fewer tasks per node than
// GPUs + 1, search arguments without --out (or with --shard in an array
// job), a --device that contradicts the GPU count, and names Slurm's
// #SBATCH lines cannot hold (blanks, quotes).
std::string render_batch_script(const BatchOptions& options);

// The results file of shard `index` of `count` for `results`:
// "out.h5" -> "out.shard-1-of-4.h5" (as the rendered script names it).
std::string shard_results_path(const std::string& results, int index, int count);

// Seconds in a Slurm time limit "[D-]HH:MM:SS"; InputError otherwise.
long parse_time_limit(const std::string& text);

// slurm/templates/ (the batch script), embedded when the library is built (render/embed.cmake),
// so the executable renders them from any working directory; embedded_template
// throws diffsearch::Error naming what there is when none has `file_name`.
const render::TemplateFiles& embedded_templates();
const std::string& embedded_template(const std::string& file_name);

}  // namespace diffsearch::slurm
