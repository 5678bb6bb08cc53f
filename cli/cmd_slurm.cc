// `diffsearch slurm render`: a batch script that runs a search on a Slurm
// cluster (slurm/batch_script.h). The search arguments after `--` are checked
// with the search command's own parser before anything is written, so a typo
// fails here and not hours later in the queue.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "render/escape.h"
#include "io/error.h"
#include "io/log/log.h"
#include "slurm/batch_script.h"

namespace diffsearch::cli {
namespace {

struct RenderArgs {
  slurm::BatchOptions batch;
  std::string launcher = "srun";
  std::string out;
};

std::string current_dir() {
  char buf[PATH_MAX];
  if (!::getcwd(buf, sizeof(buf))) throw Error(std::string("cannot read the working folder: ") + std::strerror(errno));
  return buf;
}

std::string this_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) throw Error("cannot find the diffsearch executable (/proc/self/exe); pass --diffsearch PATH");
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string absolute(const std::string& path, const std::string& base) {
  return !path.empty() && path[0] == '/' ? path : base + "/" + path;
}

std::string render_command_line() {
  std::vector<std::string> words;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    std::string word;
    int c;
    while ((c = std::fgetc(f)) != EOF) {
      if (c == 0) {
        words.push_back(word);
        word.clear();
      } else {
        word += static_cast<char>(c);
      }
    }
    std::fclose(f);
  }
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + render::sh_word(w);
  return line;
}

// The search command's own parser on the arguments (its runner is not run).
void check_search_args(const std::vector<std::string>& args) {
  for (auto& spec : command_registry()) {
    if (spec.name != "search") continue;
    CLI::App app{"search"};
    spec.setup(app);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
    try {
      app.parse(reversed);
    } catch (const CLI::ParseError& e) {
      throw InputError(std::string("the search arguments after --: ") + e.what() +
                       " (they are diffsearch search's; see diffsearch search --help)");
    }
    return;
  }
  DIFFSEARCH_ASSERT(false && "the search command is registered");
}

int run_render(RenderArgs& a) {
  if (a.launcher != "srun" && a.launcher != "mpirun") {
    throw InputError("--launcher \"" + a.launcher + "\": expected srun (srun --mpi=pmix) or mpirun");
  }
  a.batch.launcher = a.launcher == "srun" ? slurm::Launcher::srun : slurm::Launcher::mpirun;
  const std::string cwd = current_dir();
  a.batch.workdir = a.batch.workdir.empty() ? cwd : absolute(a.batch.workdir, cwd);
  a.batch.diffsearch = a.batch.diffsearch.empty() ? this_executable() : absolute(a.batch.diffsearch, cwd);
  if (::access(a.batch.diffsearch.c_str(), X_OK) != 0) {
    throw InputError("--diffsearch " + a.batch.diffsearch + ": not an executable file");
  }
  if (a.batch.search_args.empty()) {
    throw InputError("no search arguments: put them after --, as in diffsearch slurm render ... -- --grid 4 "
                     "--models models.json --clip clip/ --out results.h5");
  }
  check_search_args(a.batch.search_args);
  a.batch.render_command = render_command_line();
  const std::string script = slurm::render_batch_script(a.batch);

  // Slurm does not create the log folder; a job whose log cannot be opened fails without a word.
  const std::string log_dir = absolute(a.batch.log_dir.empty() ? "." : a.batch.log_dir, a.batch.workdir);
  std::error_code error;
  std::filesystem::create_directories(log_dir, error);
  if (error) throw InputError("--log-dir " + log_dir + ": cannot create the folder for the job logs (" + error.message() + ")");
  if (a.out.empty() || a.out == "-") {
    std::fwrite(script.data(), 1, script.size(), stdout);
    return exit_code::ok;
  }
  const std::string tmp = a.out + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << script;
    if (!out) throw InputError("-o " + a.out + ": cannot write (check the folder exists and is writable)");
  }
  ::chmod(tmp.c_str(), 0755);
  if (std::rename(tmp.c_str(), a.out.c_str()) != 0) throw InputError("-o " + a.out + ": cannot write");
  log::info("wrote " + a.out + " (logs in " + log_dir + "); submit it with: sbatch " + a.out);
  return exit_code::ok;
}

Runner setup_slurm(CLI::App& sub) {
  sub.require_subcommand(1);
  CLI::App* render = sub.add_subcommand("render", "Write a batch script that runs a search");
  auto a = std::make_shared<RenderArgs>();
  auto& b = a->batch;
  render->add_option("--nodes", b.nodes, "Nodes")->capture_default_str();
  render->add_option("--gpus-per-node", b.gpus_per_node, "GPUs per node, one worker each (0: workers on CPUs)")
      ->capture_default_str();
  render->add_option("--ntasks-per-node", b.tasks_per_node,
                     "Processes per node (default GPUs + 1; required with --gpus-per-node 0)")
      ->type_name("T");
  render->add_option("--cpus-per-gpu", b.cpus_per_gpu, "CPU cores per GPU (GPU jobs)")->capture_default_str();
  render->add_option("--cpus-per-task", b.cpus_per_task, "CPU cores (and threads) per process (CPU jobs)")
      ->capture_default_str();
  render->add_option("--time", b.time, "Time limit, HH:MM:SS or D-HH:MM:SS")->capture_default_str();
  render->add_option("--signal-before", b.signal_before_s,
                     "Seconds before the time limit at which the search is stopped and the job requeued")
      ->capture_default_str();
  render->add_option("--partition", b.partition, "Slurm partition")->type_name("P");
  render->add_option("--account", b.account, "Slurm account")->type_name("A");
  render->add_option("--job-name", b.job_name, "Job name (and log file prefix)")->capture_default_str();
  render->add_option("--array", b.array, "A job array of K shards (--shard I/K each; diffsearch merge joins them)")
      ->type_name("K");
  render->add_option("--launcher", a->launcher, "srun (srun --mpi=pmix) or mpirun")->capture_default_str();
  render->add_flag("--overcommit", b.overcommit, "Allow more processes than cores (trying it on a small machine)");
  render->add_option("--log-dir", b.log_dir, "Folder for the job logs, created now (relative to --chdir)")
      ->capture_default_str();
  render->add_option("--chdir", b.workdir, "The job's working folder (default: this one); relative paths in the "
                                           "search arguments are relative to it")
      ->type_name("DIR");
  render->add_option("--diffsearch", b.diffsearch, "The diffsearch executable the job runs (default: this one)")
      ->type_name("PATH");
  render->add_option("-o,--output", a->out, "The script to write (default: stdout)")->type_name("FILE");
  render->add_option("search_args", b.search_args, "diffsearch search's arguments, after --")->type_name("-- ARGS");
  render->footer(
      "Example (2 nodes of 8 GPUs; the search's arguments after --):\n"
      "  diffsearch slurm render --nodes 2 --gpus-per-node 8 --time 12:00:00 --partition gpu -o search.sh -- \\\n"
      "      --grid 4 --models models.json --clip clip/ --out results.h5 --device cuda\n"
      "  sbatch search.sh\n"
      "On CPUs: --gpus-per-node 0 --ntasks-per-node 3 ... -- ... --device cpu. Job arrays: --array K,\n"
      "then diffsearch merge results.shard-*-of-K.h5 -o results.h5. See docs/slurm.md.");
  sub.footer("Example:\n  diffsearch slurm render --gpus-per-node 8 -o search.sh -- --grid 4 --models models.json \\\n"
             "      --clip clip/ --out results.h5 --device cuda");
  return [a]() { return run_render(*a); };
}

DIFFSEARCH_COMMAND("slurm", "Slurm batch scripts for a search (diffsearch slurm render)", setup_slurm);

}  // namespace
}  // namespace diffsearch::cli
