// Declaring, checking and running the search's options (docs/search.md),
// for `search` and `traverse` alike.
#include "cli/search_options.h"

#include <mpi.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <map>

#include "io/diffusers_folder.h"
#include "cli/engine_evaluator.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/log/log.h"
#include "io/prompts.h"
#include "partition/grid.h"
#include "partition/models_file.h"
#include "partition/search_space.h"
#include "partition/shard.h"
#include "worker/evaluator.h"
#include "io/version.h"

namespace diffsearch::cli {
namespace {

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::map<partition::Model, int> parse_resolutions(const std::vector<std::string>& specs) {
  std::map<partition::Model, int> out;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    const std::string px = eq == std::string::npos ? "" : spec.substr(eq + 1);
    if (eq == std::string::npos || px.empty() || px.size() > 5 ||
        px.find_first_not_of("0123456789") != std::string::npos) {
      throw InputError("--resolution \"" + spec + "\": expected MODEL=PIXELS, as in SDXL=1024");
    }
    out[partition::parse_model(spec.substr(0, eq))] = std::stoi(px);
  }
  return out;
}

bool under_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(var)) return true;
  }
  return false;
}

}  // namespace

void add_search_options(CLI::App& sub, SearchArgs& a, const SearchOptionSet& set) {
  if (set.task_selection) {
    auto tasks = sub.add_option("--tasks", a.tasks_file, "Tasks, one sentence a line (# comments)")->type_name("FILE");
    auto grid = sub.add_option("--grid", a.grid, "Search category C's grid (1-5)")->type_name("C")->check(CLI::Range(1, 5));
    grid->excludes(tasks);
    sub.add_option("--filter", a.filter, "Keep the tasks whose canonical key contains EXPR")->type_name("EXPR");
    sub.add_option("--shard", a.shard,
                   "Measure only shard I (0 to K-1) of K: whole baseline groups, for job arrays (diffsearch merge joins them)")
        ->type_name("I/K");
  }
  sub.add_option("--models", a.models_file, "JSON mapping \"SD1.5\", \"SD2.1\", \"SDXL\" to diffusers folders")
      ->type_name("MODELS.json");
  sub.add_option("--clip", a.clip_dir, "CLIPModel folder used for scoring")->type_name("DIR");
  auto out = sub.add_option("--out", a.out, "Results file (HDF5), with its journal beside it")->type_name("FILE");
  if (set.task_selection) out->required();
  sub.add_option("--space", a.space_file, "JSON search-space overrides")->type_name("FILE");
  sub.add_option(set.underscored ? "--num_samples,--num-samples" : "--num-samples", a.num_samples,
                 "Prompts measured per unit")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub.add_option(set.underscored ? "--batch_size,--batch-size" : "--batch-size", a.batch_size, "Images per batch")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  sub.add_option("--seed", a.seed, "Image i starts from seed + i")->capture_default_str();
  sub.add_option("--prompts", a.prompts_file, "Prompt file (text, or COCO captions JSON); default: built in")
      ->type_name("FILE");
  sub.add_option("--device", a.device, "cpu, or cuda (one GPU per worker)")->capture_default_str();
  sub.add_option("--dtype", a.dtype, "float32/float64 (CPU), float16/bfloat16 (CUDA; default float16)");
  sub.add_option("--speed-measure", a.speed_measure, "wall (timed) or macs (deterministic MAC ratio)")
      ->capture_default_str();
  sub.add_option("--resolution", a.resolutions,
                 "MODEL=PIXELS, repeatable (default: each model folder's own size, its UNet's sample_size times "
                 "the VAE's scale factor)")
      ->type_name("MODEL=PX");
  sub.add_option("--quality", a.quality,
                 "The loss the tasks' bounds apply to: clip (CLIP score loss), ssim (1 - mean SSIM against the "
                 "baseline image of the same prompt and seed) or psnr (mean 10^(-PSNR/10)); docs/search.md")
      ->capture_default_str()
      ->type_name("MEASURE");
  sub.add_flag("--resume", a.resume, "Continue an interrupted results file, skipping what it holds");
  add_strategy_options(sub, a.strategy);
  auto hidden = "";  // test and benchmark knobs, not for users
  sub.add_option("--evaluator", a.evaluator,
                 "engine (default), synthetic[:seed=S,noise=X,bumps=Y] (a simulated landscape, no GPU), "
                 "replay:FILE.h5 (answers from a recorded exhaustive run), null, fake[:options] (docs/evaluators.md)");
  sub.add_option("--isolate", a.isolate,
                 "on: each worker measures in a child process it replaces when the child dies or hangs (a crash "
                 "costs one unit, not the job); off: in the worker itself (docs/search.md, \"Isolation\")")
      ->type_name("on|off")
      ->capture_default_str();
  sub.add_option("--max-attempts", a.max_attempts, "Attempts per unit before recording it failed")
      ->check(CLI::Range(1, 100))
      ->group(hidden);
  sub.add_option("--unit-deadline", a.unit_deadline_s, "Seconds before a silent worker is treated as lost")
      ->group(hidden);
  sub.add_option("--progress-interval", a.progress_interval_s, "Seconds between progress lines")->group(hidden);
  sub.add_option("--journal-sync", a.journal_sync_s,
                 "fdatasync the journal at most every S seconds (0: every group of results; default 0.05)")
      ->group(hidden);
}

std::vector<partition::Task> select_tasks(const SearchArgs& a, std::string& source) {
  if ((a.grid != 0) == !a.tasks_file.empty()) {
    throw InputError("search needs exactly one of --grid C (1-5) or --tasks FILE");
  }
  auto tasks = a.grid != 0 ? partition::make_grid(a.grid) : partition::read_tasks_file(a.tasks_file);
  source = a.grid != 0 ? "--grid " + std::to_string(a.grid) : a.tasks_file;
  if (!a.filter.empty()) {
    std::vector<partition::Task> kept;
    for (const auto& t : tasks) {
      if (partition::task_key(t).find(a.filter) != std::string::npos) kept.push_back(t);
    }
    if (kept.empty()) {
      throw InputError("--filter \"" + a.filter + "\": no task key of " + source +
                       " contains it (keys look like sd15/ddim/50/deepcache/x3.0/loss0.02)");
    }
    tasks = kept;
  }
  return tasks;
}

coordinator::SearchOptions build_search_options(const SearchArgs& a, std::vector<partition::Task> tasks,
                                                const std::string& tasks_source, const std::string& command) {
  coordinator::SearchOptions o;
  o.tasks_source = tasks_source;
  if (tasks.empty()) throw InputError(o.tasks_source + ": no tasks to search");
  o.tasks = tasks;
  if (!a.shard.empty()) o.shard = partition::parse_shard(a.shard);
  o.samples = a.num_samples;
  o.resolution = parse_resolutions(a.resolutions);
  o.batch_size = a.batch_size;
  o.seed = a.seed;
  if (!a.space_file.empty()) {
    o.space_json = io::read_json_file(a.space_file, "search space");
    o.space_source = a.space_file;
  }
  o.prompts = io::prompts_or_default(a.prompts_file);
  const std::string kind = coordinator::evaluator_kind(a.evaluator);
  if (!a.models_file.empty()) o.model_dirs = partition::read_models_file(a.models_file);
  if (kind == "engine") {
    if (a.models_file.empty()) {
      throw InputError(command + " needs --models MODELS.json (model name -> diffusers folder)");
    }
    if (a.clip_dir.empty()) throw InputError(command + " needs --clip DIR (a CLIPModel folder for scoring)");
    for (const auto& t : tasks) {
      auto it = o.model_dirs.find(t.model);
      if (it == o.model_dirs.end()) {
        throw InputError(a.models_file + ": no folder for " + partition::model_name(t.model) +
                         ", which the tasks use; add \"" + partition::model_name(t.model) + "\": \"DIR\"");
      }
      if (!is_file(it->second + "/model_index.json")) {
        throw InputError(a.models_file + ": \"" + partition::model_name(t.model) + "\": " + it->second +
                         " is not a diffusers model folder (no model_index.json)");
      }
    }
    if (!is_dir(a.clip_dir)) throw InputError("--clip " + a.clip_dir + ": folder not found");
    // Each model at the size its folder was made for (a 512 px SD2.1-base is
    // not run at 768 px because of its name), unless --resolution says.
    for (const auto& t : tasks) {
      if (!o.resolution.count(t.model)) {
        o.resolution[t.model] = io::DiffusersFolder(o.model_dirs.at(t.model)).native_resolution();
      }
    }
  }
  o.clip_dir = a.clip_dir;
  if (a.device != "cpu" && a.device != "cuda") {
    throw InputError("--device \"" + a.device + "\": expected cpu or cuda (each worker takes its own GPU)");
  }
  o.device = a.device;
  o.dtype = a.dtype.empty() ? (a.device == "cuda" ? "float16" : "float32") : a.dtype;
  if (a.speed_measure != "wall" && a.speed_measure != "macs") {
    throw InputError("--speed-measure \"" + a.speed_measure + "\": expected wall or macs");
  }
  o.speed_measure = a.speed_measure;
  o.quality = coordinator::parse_quality(a.quality);
  o.out = a.out;
  o.resume = a.resume;
  o.evaluator = a.evaluator;
  if (a.isolate != "on" && a.isolate != "off") {
    throw InputError("--isolate \"" + a.isolate + "\": expected on (each worker measures in a child process it "
                     "replaces when it dies) or off (in the worker itself)");
  }
  o.isolate = a.isolate == "on";
  o.strategy = a.strategy.strategy;
  o.frontier = frontier_options(a.strategy, a.num_samples);
  o.max_attempts = a.max_attempts;
  o.unit_deadline_s = a.unit_deadline_s;
  o.progress_interval_s = a.progress_interval_s;
  o.journal_sync_s = a.journal_sync_s;
  o.run_attributes = {{"command_line", a.command_line}, {"tasks_source", o.tasks_source},
                      {"versions", io::version_text()}};
  return o;
}

int run_search(const std::function<coordinator::SearchOptions()>& build, const std::function<int(int)>& on_rank0) {
  register_engine_evaluator();
  coordinator::install_stop_handlers();
  if (!under_mpi()) {
    const int code = coordinator::run_search_local(build());
    return on_rank0 ? on_rank0(code) : code;
  }
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  log::set_context("rank " + std::to_string(rank));
  int code = 0;
  try {
    // Every rank reads the same inputs; a bad one fails on all of them alike.
    code = coordinator::run_search_mpi(build(), rank, size);
  } catch (const InputError& e) {
    if (rank == 0) std::fprintf(stderr, "error: %s\n", e.what());
    MPI_Finalize();
    return exit_code::bad_input;
  }
  MPI_Finalize();
  if (rank == 0 && on_rank0) return on_rank0(code);
  return code;
}

std::string own_command_line() {
  std::string line;
  FILE* f = std::fopen("/proc/self/cmdline", "rb");
  if (f == nullptr) return line;
  int c;
  while ((c = std::fgetc(f)) != EOF) line += c == 0 ? ' ' : static_cast<char>(c);
  std::fclose(f);
  if (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

}  // namespace diffsearch::cli
