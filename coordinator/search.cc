// The search's entry points and what both sides share: planning (with the
// component spaces the frontier strategy needs), the configuration a results
// file records, the in-process run, and MPI's split into rank 0 and workers.
#include "coordinator/search.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "coordinator/accounting.h"
#include "coordinator/child_evaluator.h"
#include "coordinator/protocol.h"
#include "coordinator/run_support.h"
#include "coordinator/scheduler.h"
#include "coordinator/search_internal.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/hash.h"

namespace diffsearch::coordinator {
namespace {

std::atomic<int> g_stop{0};

void on_stop_signal(int) { g_stop.store(1); }

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGUSR1, &sa, nullptr);
}

bool stop_requested() { return g_stop.load() != 0; }

partition::PlanOptions plan_options(const SearchOptions& options) {
  partition::PlanOptions p;
  p.samples = options.samples;
  p.resolution = options.resolution;
  if (!options.space_json.is_null()) p.space = partition::space_config_from_json(options.space_json, options.space_source);
  return p;
}

SearchPlan make_search_plan(const SearchOptions& options) {
  if (options.strategy != "frontier" && options.strategy != "exhaustive") {
    throw InputError("--strategy \"" + options.strategy + "\": expected frontier or exhaustive");
  }
  SearchPlan sp;
  sp.plan = partition::make_plan(options.tasks, plan_options(options));
  sp.task_spaces = sp.plan.spaces.size();
  if (options.strategy == "frontier" && options.frontier.combine == "fronts") partition::add_component_spaces(sp.plan, FrontierOptions::kFrontsMinRatio);
  std::set<std::size_t> basic;
  for (std::size_t t = 0; t < sp.plan.tasks.size(); ++t) {
    if (sp.plan.task_space[t] == partition::kNoSpace) basic.insert(sp.plan.task_baseline[t]);
  }
  sp.basic_baselines.assign(basic.begin(), basic.end());
  sp.in_shard.assign(sp.plan.baselines.size(), true);
  if (options.shard.count > 1) {
    const std::vector<int> shard_of = partition::shard_of_baselines(sp.plan, options.shard.count);
    for (std::size_t b = 0; b < sp.in_shard.size(); ++b) sp.in_shard[b] = shard_of[b] == options.shard.index;
  }
  return sp;
}

nlohmann::json search_config(const SearchOptions& options, const partition::Plan& plan) {
  nlohmann::json tasks = nlohmann::json::array();
  for (const auto& t : plan.tasks) tasks.push_back(partition::task_key(t));
  nlohmann::json resolution = nlohmann::json::object();
  for (const auto& b : plan.baselines) resolution[partition::model_name(b.model)] = b.resolution;
  std::string joined;
  for (int i = 0; i < options.samples && !options.prompts.empty(); ++i) {
    joined += options.prompts[static_cast<std::size_t>(i) % options.prompts.size()];
    joined += '\n';
  }
  nlohmann::json config = {{"tasks", tasks},
                            {"space", options.space_json},
                            {"samples", options.samples},
                            {"batch_size", options.batch_size},
                            {"seed", options.seed},
                            {"prompts_fnv1a", hex64(io::fnv1a(joined))},
                            {"dtype", options.dtype},
                            {"resolution", resolution},
                            {"speed_measure", options.speed_measure},
                            {"evaluator", evaluator_kind(options.evaluator)}};
  // Exhaustive is what files meant before strategies existed: they record
  // nothing for it, so results files of earlier versions still resume.
  if (options.strategy != "exhaustive") {
    config["strategy"] = options.strategy;
    config["frontier"] = options.frontier.to_json();
  }
  // CLIP is what files meant before the measure could be chosen: recorded
  // only when another, so those files still resume.
  if (options.quality != Quality::Clip) config["quality"] = quality_name(options.quality);
  if (options.shard.count > 1) config["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};
  return config;
}

SearchOptions options_from_config(const nlohmann::json& config, const std::vector<partition::Task>& tasks) {
  SearchOptions o;
  o.tasks = tasks;
  if (config.contains("samples") && config["samples"].is_number_integer()) o.samples = config["samples"].get<int>();
  if (config.contains("batch_size") && config["batch_size"].is_number_integer()) o.batch_size = config["batch_size"].get<int>();
  if (config.contains("resolution") && config["resolution"].is_object()) {
    for (const auto& [name, px] : config["resolution"].items()) {
      if (px.is_number_integer()) o.resolution[partition::parse_model(name)] = px.get<int>();
    }
  }
  if (config.contains("space") && !config["space"].is_null()) {
    o.space_json = config["space"];
    o.space_source = "the results file's search space";
  }
  o.speed_measure = config.value("speed_measure", std::string("wall"));
  if (config.contains("quality") && config["quality"].is_string()) {
    o.quality = parse_quality(config["quality"].get<std::string>(), "the results file's configuration field \"quality\"");
  }
  // Files written before strategies existed were exhaustive.
  o.strategy = config.value("strategy", std::string("exhaustive"));
  if (config.contains("frontier") && config["frontier"].is_object()) {
    const auto& f = config["frontier"];
    auto& fo = o.frontier;
    fo.race_prompts = f.value("race_prompts", fo.race_prompts);
    fo.confidence = f.value("confidence", fo.confidence);
    fo.assume_monotone = f.value("assume_monotone", fo.assume_monotone);
    fo.combine = f.value("combine", fo.combine);
    fo.calibration = f.value("calibration", fo.calibration);
    fo.speed_margin = f.value("speed_margin", fo.speed_margin);
    fo.speed_tolerance = f.value("speed_tolerance", fo.speed_tolerance);
    // Files written before polishing existed ran without it.
    fo.polish = f.value("polish", 0);
    fo.loss_tolerance = f.value("loss_tolerance", 0.0);
  }
  // Shards are joined by merge: the file's rows are the whole plan's.
  return o;
}

std::unique_ptr<worker::Evaluator> make_estimator(const SearchOptions& options) {
  const std::string kind = evaluator_kind(options.evaluator);
  if (kind != "synthetic" && kind != "replay") return nullptr;
  return make_evaluator(options.evaluator, 0);
}

nlohmann::json final_run_record(const SearchOptions& options, const SearchPlan& plan, const SearchStrategy& strategy,
                                worker::Evaluator* estimator, const std::vector<io::EvaluationRow>& rows,
                                nlohmann::json record) {
  const double spent = rows_gpu_seconds(rows);
  const double exhaustive = exhaustive_gpu_seconds(options, plan, estimator, rows);
  record["gpu_seconds"] = spent;
  if (std::isfinite(exhaustive)) record["gpu_seconds_exhaustive"] = exhaustive;
  const auto [done, spaces] = strategy.spaces_done();
  record["spaces_done"] = done;
  record["spaces"] = spaces;
  char buf[240];
  if (options.strategy == "frontier" && std::isfinite(exhaustive) && spent > 0) {
    std::snprintf(buf, sizeof(buf),
                  "frontier strategy: %.4g GPU-seconds spent; exhaustive would spend %.4g on the same plan (%.1fx more)",
                  spent, exhaustive, exhaustive / spent);
  } else {
    std::snprintf(buf, sizeof(buf), "%s strategy: %.4g GPU-seconds spent", options.strategy.c_str(), spent);
  }
  log::info(buf);
  return record;
}

std::string worker_device(const std::string& device, int rank) {
  if (device != "cuda") return device;
  int local = -1;
  for (const char* var : {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}) {
    if (const char* v = std::getenv(var)) {
      local = std::atoi(v);
      break;
    }
  }
  if (local < 0) local = rank;
  int gpus = 0;
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && *visible) {
    gpus = 1;
    for (const char* c = visible; *c; ++c) gpus += *c == ',';
  } else {
    for (int i = 0; i < 64; ++i) {
      if (access(("/dev/nvidia" + std::to_string(i)).c_str(), F_OK) == 0) gpus = i + 1;
    }
  }
  if (gpus <= 0) gpus = 1;
  // Rank 0 (the coordinator) uses no GPU, so the first worker of a node gets GPU 0.
  const int index = ((local - 1) % gpus + gpus) % gpus;
  return "cuda:" + std::to_string(index);
}

int run_search_local(const SearchOptions& options) {
  const SearchPlan plan = make_search_plan(options);
  auto strategy = make_strategy(options, plan);
  auto estimator = make_estimator(options);
  io::ResultStore store = io::ResultStore::open(options.out, search_config(options, plan.plan), options.resume);
  store.set_sync_interval(options.journal_sync_s);
  const std::string run_id = make_run_id();
  const double started_at = now_s();
  const std::string device = worker_device(options.device, 1);
  store.begin_run(run_id, run_record(options, plan, 1, {host_name()}, {device}, started_at));
  Scheduler scheduler(*strategy, plan, options, store.rows());
  log::info("search (" + strategy->name() + "): " + std::to_string(scheduler.total()) + " items released (" +
            std::to_string(scheduler.skipped()) + " already in " + options.out + "), 1 process");
  auto evaluator = make_worker_evaluator(options, 0, device);
  if (auto reason = worker_unavailable(*evaluator)) throw Error("the search cannot measure: " + *reason);
  const std::string gpu = evaluator->gpu_name(device);
  const std::set<std::string> devices = {describe_device(host_name(), device, gpu, evaluator->timing(device))};
  report_unservable(scheduler.drop_unservable({gpu}), {gpu});
  Progress progress(scheduler, options.progress_interval_s);
  long held = -1;
  const std::set<int> live = {0};
  bool interrupted = false, failed_to_measure = false;
  while (!scheduler.finished()) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    auto a = scheduler.next(0, gpu, held, live, {{0, held}});
    if (!a) break;
    if (auto reason = worker_unavailable(*evaluator)) {
      // The unit was not attempted: --resume measures it.
      log::error("the search cannot go on: " + *reason + "; rerun with --resume");
      failed_to_measure = true;
      break;
    }
    bool oom = false;
    io::EvaluationRow row = evaluate_item(*evaluator, options, plan, scheduler.item(a->id), a->batch, device, 0, &oom);
    row.attempt = a->attempt;
    row.run_id = run_id;
    store.append(row);
    scheduler.record(a->id, store.rows().back(), oom, 0);
    store.maybe_flush();
    progress.maybe_report();
  }
  progress.maybe_report(true);
  store.begin_run(run_id, final_run_record(options, plan, *strategy, estimator.get(), store.rows(),
                                           run_record(options, plan, 1, {host_name()}, devices, started_at)));
  store.close();
  if (interrupted) log::warn("interrupted: rerun with --resume to continue " + options.out);
  if (failed_to_measure) return exit_code::failed;
  return finish_code(scheduler, interrupted);
}

int run_search_mpi(const SearchOptions& options, int rank, int size) {
  if (size <= 1) return run_search_local(options);
  const SearchPlan plan = make_search_plan(options);
  if (rank != 0) return worker_loop(options, plan, rank);
  try {
    return coordinate(options, plan, size);
  } catch (const std::exception& e) {
    // Workers wait for an answer: tell them to stop rather than leave them
    // blocked (a busy one gets this after it sends its result).
    const int code = dynamic_cast<const InputError*>(&e) ? exit_code::bad_input : exit_code::failed;
    for (int w = 1; w < size; ++w) protocol::send(protocol::Stop{code}, w);
    throw;
  }
}

}  // namespace diffsearch::coordinator
