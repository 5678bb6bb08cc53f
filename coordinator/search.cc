// The search's dispatch: planning work items, the scheduler (affinity to the
// baseline a worker holds, stealing, retries, deadlines), the in-process run
// and the MPI run (rank 0 pulls requests with MPI_Iprobe, never blocking).
#include "coordinator/search.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <optional>
#include <set>
#include <thread>

#include "io/error.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {
namespace {

constexpr int kTag = 7;
std::atomic<int> g_stop{0};

void on_stop_signal(int) { g_stop.store(1); }

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

uint64_t fnv1a(const std::string& text, uint64_t h = 1469598103934665603ull) {
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string methods_key(const std::vector<partition::Method>& methods) {
  std::string key;
  for (auto m : methods) key += (key.empty() ? "" : "+") + partition::method_slug(m);
  return key;
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[64];
  if (s < 10) std::snprintf(buf, sizeof(buf), "%.1fs", s);
  else if (s < 120) std::snprintf(buf, sizeof(buf), "%.0fs", s);
  else if (s < 7200) std::snprintf(buf, sizeof(buf), "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof(buf), "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

std::string make_run_id() {
  const auto t = static_cast<long long>(now_s() * 1000);
  return "run-" + std::to_string(t) + "-" + hex64(fnv1a(host_name() + std::to_string(getpid()))).substr(0, 6);
}

// Which item each worker gets next. Groups are baselines: a worker that holds
// a model and its baseline keeps getting that group's units.
class Scheduler {
 public:
  Scheduler(const SearchPlan& plan, const SearchOptions& options, const std::vector<io::EvaluationRow>& existing)
      : plan_(plan), max_attempts_(std::max(1, options.max_attempts)), state_(plan.items.size()) {
    std::map<std::string, std::size_t> by_key;
    for (std::size_t i = 0; i < plan.items.size(); ++i) {
      by_key[plan.items[i].unit_key] = i;
      state_[i].batch = options.batch_size;
    }
    for (const auto& row : existing) {
      auto it = by_key.find(row.unit_key);
      if (it == by_key.end()) continue;
      auto& s = state_[it->second];
      if (row.status == "ok") s.ok = true;
      else s.attempts = std::max<int>(s.attempts, static_cast<int>(row.attempt));
      if (row.status != "ok" && is_out_of_memory(row.error)) s.batch = std::max(1, s.batch / 2);
    }
    for (std::size_t i = 0; i < plan.items.size(); ++i) {
      auto& s = state_[i];
      if (s.ok) {
        s.done = true;
        ++skipped_;
      } else if (s.attempts >= max_attempts_) {
        s.done = true;
        ++failed_;
        ++skipped_;
      } else {
        queues_[plan.items[i].baseline].push_back(i);
      }
    }
    done_ = skipped_;
    for (const auto& b : plan.plan.baselines) {
      group_platform_.push_back(b.platform ? partition::platform_key(*b.platform) : "");
    }
  }

  // Whether a worker whose GPU is `gpu` may measure this item: platform
  // tasks' units only on a GPU of that name.
  bool servable(std::size_t item, const std::string& gpu) const {
    const std::string& p = group_platform_[plan_.items[item].baseline];
    return p.empty() || p == partition::platform_key(gpu);
  }

  // Once every worker has said which GPU it has: the units of platforms
  // none of them has cannot be measured in this run. They are settled
  // unmeasured (no row: a later --resume on the right GPUs measures them).
  // Returns platform -> units dropped.
  std::map<std::string, std::size_t> drop_unservable(const std::set<std::string>& gpus) {
    std::set<std::string> have;
    for (const auto& g : gpus) have.insert(partition::platform_key(g));
    std::map<std::string, std::size_t> dropped;
    for (auto& [group, queue] : queues_) {
      const std::string& p = group_platform_[group];
      if (p.empty() || have.count(p)) continue;
      for (std::size_t item : queue) {
        auto& s = state_[item];
        if (s.done) continue;
        s.done = true;
        ++done_;
        ++unservable_;
        ++dropped[*plan_.plan.baselines[group].platform];
      }
      queue.clear();
    }
    return dropped;
  }

  struct Assignment {
    std::size_t item;
    int attempt;
    int batch;
  };

  // `held`: the group the worker holds (-1: none), updated.
  // `gpu`: the name of the worker's GPU (platform routing).
  std::optional<Assignment> next(int worker, const std::string& gpu, long& held, const std::set<int>& live,
                                 const std::map<int, long>& holders) {
    // Retries first, on a worker that has not failed them (unless all have).
    for (auto it = retry_.begin(); it != retry_.end(); ++it) {
      auto& s = state_[*it];
      if (s.done || !servable(*it, gpu)) continue;
      bool all_failed = std::all_of(live.begin(), live.end(), [&](int w) { return s.failed_on.count(w) > 0; });
      if (s.failed_on.count(worker) && !all_failed) continue;
      const std::size_t item = *it;
      retry_.erase(it);
      return start(item);
    }
    auto pop = [&](long group) -> std::optional<std::size_t> {
      auto q = queues_.find(static_cast<std::size_t>(group));
      while (q != queues_.end() && !q->second.empty()) {
        const std::size_t item = q->second.front();
        q->second.pop_front();
        if (!state_[item].done) return item;
      }
      return std::nullopt;
    };
    if (held >= 0) {
      if (auto item = pop(held)) return start(*item);
    }
    // A group nobody holds, largest first; else steal from the largest.
    long best = -1, best_free = -1;
    std::size_t best_size = 0, best_free_size = 0;
    std::set<long> held_by_others;
    for (const auto& [w, g] : holders) {
      if (w != worker && g >= 0) held_by_others.insert(g);
    }
    for (const auto& [group, queue] : queues_) {
      if (queue.empty() || !servable(queue.front(), gpu)) continue;
      if (queue.size() > best_size) {
        best_size = queue.size();
        best = static_cast<long>(group);
      }
      if (!held_by_others.count(static_cast<long>(group)) && queue.size() > best_free_size) {
        best_free_size = queue.size();
        best_free = static_cast<long>(group);
      }
    }
    const long group = best_free >= 0 ? best_free : best;
    if (group < 0) return std::nullopt;
    held = group;
    if (auto item = pop(group)) return start(*item);
    return std::nullopt;
  }

  // Returns false for a result that arrives after the item was settled (a
  // worker that came back after its deadline): the first result wins.
  bool record(std::size_t item, const io::EvaluationRow& row, bool out_of_memory, int worker) {
    auto& s = state_[item];
    if (s.done) return false;
    if (row.status == "ok") {
      s.done = s.ok = true;
      ++done_;
      return true;
    }
    s.attempts = std::max<int>(s.attempts, static_cast<int>(row.attempt));
    s.failed_on.insert(worker);
    ++retried_;
    if (s.attempts >= max_attempts_) {
      s.done = true;
      ++done_;
      ++failed_;
    } else {
      if (out_of_memory) s.batch = std::max(1, s.batch / 2);
      retry_.push_back(item);
    }
    return true;
  }

  // A worker was lost with `item` in flight: hand it to someone else.
  void requeue(std::size_t item) {
    if (!state_[item].done) retry_.push_front(item);
  }

  bool finished() const { return done_ == state_.size(); }
  std::size_t total() const { return state_.size(); }
  std::size_t done() const { return done_; }
  std::size_t skipped() const { return skipped_; }
  std::size_t failed() const { return failed_; }
  std::size_t failed_attempts() const { return retried_; }
  std::size_t unservable() const { return unservable_; }

 private:
  struct ItemState {
    int attempts = 0;
    int batch = 8;
    bool done = false;
    bool ok = false;
    std::set<int> failed_on;
  };
  Assignment start(std::size_t item) {
    auto& s = state_[item];
    return Assignment{item, s.attempts + 1, s.batch};
  }

  const SearchPlan& plan_;
  int max_attempts_;
  std::vector<ItemState> state_;
  std::map<std::size_t, std::deque<std::size_t>> queues_;
  std::deque<std::size_t> retry_;
  std::vector<std::string> group_platform_;  // per baseline: platform_key, "" for none
  std::size_t done_ = 0, skipped_ = 0, failed_ = 0, retried_ = 0, unservable_ = 0;
};

// Logs what drop_unservable() settled; true when anything was dropped.
bool report_unservable(const std::map<std::string, std::size_t>& dropped, const std::set<std::string>& gpus) {
  std::string have;
  for (const auto& g : gpus) have += (have.empty() ? "" : ", ") + ("\"" + g + "\"");
  for (const auto& [platform, count] : dropped) {
    log::error(std::to_string(count) + " units of platform tasks need a GPU named \"" + platform +
               "\", but the workers have " + have +
               ": they stay unmeasured; run the same search with --resume on such GPUs to measure them");
  }
  return !dropped.empty();
}

// Progress on rank 0: a log line every few seconds.
class Progress {
 public:
  Progress(const Scheduler& s, double interval) : s_(s), interval_(interval), start_(now_s()), last_(start_) {
    start_done_ = s.done();
  }
  void maybe_report(bool force = false) {
    const double t = now_s();
    if (!force && t - last_ < interval_) return;
    last_ = t;
    const double elapsed = std::max(1e-9, t - start_);
    const double rate = static_cast<double>(s_.done() - start_done_) / elapsed;
    const double remaining = static_cast<double>(s_.total() - s_.done());
    char buf[256];
    std::snprintf(buf, sizeof(buf), "progress: %zu/%zu units (%.1f%%), %.2f units/s, ETA %s, failed %zu (failed attempts %zu)",
                  s_.done(), s_.total(), s_.total() ? 100.0 * s_.done() / s_.total() : 100.0, rate,
                  rate > 0 ? format_duration(remaining / rate).c_str() : "?", s_.failed(), s_.failed_attempts());
    std::string line = buf;
    if (isatty(STDERR_FILENO)) {
      // A bar for people watching a terminal; log files get the plain line.
      const std::size_t width = 24;
      const std::size_t filled = s_.total() ? width * s_.done() / s_.total() : width;
      line = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + line;
    }
    log::info(line);
  }

 private:
  const Scheduler& s_;
  double interval_, start_, last_;
  std::size_t start_done_ = 0;
};

// How the run record names a worker's device: its host, the device, what
// that is and how runs on it are timed ("node01 cuda:1 (NVIDIA H200, CUDA
// graphs)"; "node01 cpu" for plain CPU runs).
std::string describe_device(const std::string& host, const std::string& device, const std::string& gpu,
                            const std::string& timing) {
  std::string what = gpu != device ? gpu : "";
  if (!timing.empty()) what += (what.empty() ? "" : ", ") + timing;
  return host + " " + device + (what.empty() ? "" : " (" + what + ")");
}

nlohmann::json run_record(const SearchOptions& options, const SearchPlan& plan, int processes,
                          const std::set<std::string>& hosts, const std::set<std::string>& devices,
                          double started_at) {
  nlohmann::json attrs = options.run_attributes.is_object() ? options.run_attributes : nlohmann::json::object();
  attrs["processes"] = processes;
  attrs["hosts"] = nlohmann::json(std::vector<std::string>(hosts.begin(), hosts.end())).dump();
  attrs["devices"] = nlohmann::json(std::vector<std::string>(devices.begin(), devices.end())).dump();
  attrs["started_at"] = started_at;
  attrs["units_total"] = plan.items.size();
  attrs["tasks"] = plan.plan.tasks.size();
  attrs["evaluator"] = options.evaluator;
  return attrs;
}

int finish_code(const Scheduler& s, bool interrupted) {
  if (interrupted && !s.finished()) return exit_code::interrupted_resume;
  if (s.unservable() > 0) return exit_code::failed;
  if (s.failed() > 0) log::warn(std::to_string(s.failed()) + " units failed after every retry (recorded as failed)");
  return exit_code::ok;
}

std::vector<uint8_t> encode(const nlohmann::json& j) { return nlohmann::json::to_cbor(j); }

void send_json(const nlohmann::json& j, int dest) {
  const auto bytes = encode(j);
  MPI_Send(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, dest, kTag, MPI_COMM_WORLD);
}

nlohmann::json receive_json(const MPI_Status& probed) {
  int count = 0;
  MPI_Get_count(&probed, MPI_BYTE, &count);
  std::vector<uint8_t> bytes(static_cast<std::size_t>(count));
  MPI_Recv(bytes.data(), count, MPI_BYTE, probed.MPI_SOURCE, kTag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return nlohmann::json::from_cbor(bytes);
}

int worker_loop(const SearchOptions& options, const SearchPlan& plan, int rank) {
  const std::string device = worker_device(options.device, rank);
  log::set_context("rank " + std::to_string(rank) + "@" + host_name());
  auto evaluator = make_evaluator(options.evaluator, rank);
  send_json({{"t", "ready"},
             {"host", host_name()},
             {"device", device},
             {"gpu", evaluator->gpu_name(device)},
             {"timing", evaluator->timing(device)}},
            0);
  while (true) {
    MPI_Status status;
    MPI_Probe(0, kTag, MPI_COMM_WORLD, &status);
    const nlohmann::json msg = receive_json(status);
    const std::string type = msg.value("t", "");
    if (type == "stop") return msg.value("code", 0);
    if (type != "work") continue;
    const auto item = msg.at("item").get<std::size_t>();
    bool oom = false;
    io::EvaluationRow row = evaluate_item(*evaluator, options, plan, item, msg.at("batch").get<int>(), device,
                                          rank, &oom);
    row.attempt = msg.at("attempt").get<int>();
    send_json({{"t", "result"}, {"item", item}, {"oom", oom}, {"row", row.to_json()}}, 0);
  }
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
  SearchPlan sp;
  sp.plan = partition::make_plan(options.tasks, plan_options(options));
  std::set<std::size_t> basic;
  for (std::size_t t = 0; t < sp.plan.tasks.size(); ++t) {
    if (sp.plan.task_space[t] == partition::kNoSpace) basic.insert(sp.plan.task_baseline[t]);
  }
  const std::string empty_setting = partition::setting_key({});
  for (std::size_t b : basic) {
    sp.items.push_back(WorkItem{partition::kNoSpace, 0, b, sp.plan.baselines[b].key() + "/" + empty_setting});
  }
  for (const auto& u : sp.plan.units) {
    sp.items.push_back(WorkItem{u.space, u.index, sp.plan.spaces[u.space].baseline, sp.plan.unit_key(u)});
  }
  if (options.shard.count > 1) {
    const std::vector<int> shard_of = partition::shard_of_baselines(sp.plan, options.shard.count);
    sp.items.erase(std::remove_if(sp.items.begin(), sp.items.end(),
                                  [&](const WorkItem& item) { return shard_of[item.baseline] != options.shard.index; }),
                   sp.items.end());
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
                            {"prompts_fnv1a", hex64(fnv1a(joined))},
                            {"dtype", options.dtype},
                            {"resolution", resolution},
                            {"speed_measure", options.speed_measure},
                            {"evaluator", evaluator_kind(options.evaluator)}};
  if (options.shard.count > 1) config["shard"] = {{"index", options.shard.index}, {"count", options.shard.count}};
  return config;
}

worker::MeasurementUnit measurement_unit(const SearchOptions& options, const SearchPlan& plan, const WorkItem& item,
                                         int batch_size, const std::string& device) {
  const auto& b = plan.plan.baselines[item.baseline];
  worker::MeasurementUnit unit;
  auto dir = options.model_dirs.find(b.model);
  unit.model_dir = dir == options.model_dirs.end() ? "" : dir->second;
  unit.clip_dir = options.clip_dir;
  unit.sampler = b.sampler;
  unit.steps = b.steps;
  unit.height = unit.width = b.resolution;
  for (int i = 0; i < options.samples && !options.prompts.empty(); ++i) {
    unit.prompts.push_back(options.prompts[static_cast<std::size_t>(i) % options.prompts.size()]);
  }
  unit.seed = options.seed;
  unit.batch_size = batch_size;
  if (item.space != partition::kNoSpace) unit.setting = plan.plan.spaces[item.space].setting_at(item.index);
  unit.dtype = options.dtype;
  unit.device = device;
  return unit;
}

io::EvaluationRow evaluate_item(worker::Evaluator& evaluator, const SearchOptions& options, const SearchPlan& plan,
                                std::size_t index, int batch_size, const std::string& device, int rank,
                                bool* out_of_memory) {
  const WorkItem& item = plan.items.at(index);
  const auto& b = plan.plan.baselines[item.baseline];
  io::EvaluationRow row;
  row.unit_key = item.unit_key;
  row.baseline_key = b.key();
  row.model = partition::model_name(b.model);
  row.sampler = partition::sampler_name(b.sampler);
  row.steps = b.steps;
  row.resolution = b.resolution;
  if (item.space != partition::kNoSpace) {
    row.space_key = plan.plan.spaces[item.space].key();
    row.methods = methods_key(plan.plan.spaces[item.space].methods);
  } else {
    row.space_key = b.key();
  }
  row.num_samples = options.samples;
  row.batch_size = batch_size;
  row.seed = static_cast<int64_t>(options.seed);
  row.host = host_name();
  row.rank = rank;
  row.device = device;
  row.started_at = now_s();
  const double nan = std::nan("");
  if (out_of_memory) *out_of_memory = false;
  try {
    const auto unit = measurement_unit(options, plan, item, batch_size, device);
    row.setting = partition::setting_key(unit.setting);
    const worker::EvaluationRecord r = evaluator.evaluate(unit);
    if (!std::isfinite(r.score_loss) || !std::isfinite(r.speedup) || !std::isfinite(r.acc.clip_mean)) {
      throw std::runtime_error("NaN or infinity in the measurement (speedup " + std::to_string(r.speedup) +
                               ", score loss " + std::to_string(r.score_loss) + ")");
    }
    row.status = "ok";
    row.time_base_s = r.base.total_s;
    row.time_acc_s = r.acc.total_s;
    row.speedup = r.speedup;
    row.speedup_macs = r.speedup_macs;
    row.clip_base = r.base.clip_mean;
    row.clip_acc = r.acc.clip_mean;
    row.score_loss = r.score_loss;
    row.psnr = r.psnr_mean;
    row.ssim = r.ssim_mean;
    row.macs_base = r.base.macs;
    row.macs_acc = r.acc.macs;
    row.peak_bytes = std::max(r.base.peak_bytes, r.acc.peak_bytes);
    if (!r.device_name.empty()) row.device = r.device_name;
    for (std::size_t i = 0; i < r.acc.clip.size(); ++i) {
      io::PromptScore p;
      p.prompt_index = static_cast<int64_t>(i);
      p.clip_base = i < r.base.clip.size() ? r.base.clip[i] : nan;
      p.clip_acc = r.acc.clip[i];
      p.psnr = i < r.psnr.size() ? r.psnr[i] : nan;
      p.ssim = i < r.ssim.size() ? r.ssim[i] : nan;
      row.prompts.push_back(p);
    }
  } catch (const std::exception& e) {
    if (row.setting.empty() && item.space != partition::kNoSpace) {
      row.setting = partition::setting_key(plan.plan.spaces[item.space].setting_at(item.index));
    } else if (row.setting.empty()) {
      row.setting = partition::setting_key({});
    }
    row.status = "failed";
    row.error = e.what();
    row.time_base_s = row.time_acc_s = row.speedup = row.speedup_macs = nan;
    row.clip_base = row.clip_acc = row.score_loss = row.psnr = row.ssim = nan;
    if (out_of_memory) *out_of_memory = is_out_of_memory(row.error);
    log::warn("unit " + item.unit_key + " failed on rank " + std::to_string(rank) + ": " + row.error);
  }
  row.finished_at = now_s();
  return row;
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
  io::ResultStore store = io::ResultStore::open(options.out, search_config(options, plan.plan), options.resume);
  store.set_sync_interval(options.journal_sync_s);
  const std::string run_id = make_run_id();
  const double started_at = now_s();
  const std::string device = worker_device(options.device, 1);
  store.begin_run(run_id, run_record(options, plan, 1, {host_name()}, {device}, started_at));
  Scheduler scheduler(plan, options, store.rows());
  log::info("search: " + std::to_string(plan.items.size()) + " units (" + std::to_string(scheduler.skipped()) +
            " already in " + options.out + "), 1 process");
  auto evaluator = make_evaluator(options.evaluator, 0);
  const std::string gpu = evaluator->gpu_name(device);
  const std::set<std::string> devices = {describe_device(host_name(), device, gpu, evaluator->timing(device))};
  report_unservable(scheduler.drop_unservable({gpu}), {gpu});
  Progress progress(scheduler, options.progress_interval_s);
  long held = -1;
  const std::set<int> live = {0};
  bool interrupted = false;
  while (!scheduler.finished()) {
    if (stop_requested()) {
      interrupted = true;
      break;
    }
    auto a = scheduler.next(0, gpu, held, live, {{0, held}});
    if (!a) break;
    bool oom = false;
    io::EvaluationRow row = evaluate_item(*evaluator, options, plan, a->item, a->batch, device, 0, &oom);
    row.attempt = a->attempt;
    row.run_id = run_id;
    scheduler.record(a->item, row, oom, 0);
    store.append(row);
    store.maybe_flush();
    progress.maybe_report();
  }
  progress.maybe_report(true);
  store.begin_run(run_id, run_record(options, plan, 1, {host_name()}, devices, started_at));
  store.close();
  if (interrupted) log::warn("interrupted: rerun with --resume to continue " + options.out);
  return finish_code(scheduler, interrupted);
}

namespace {
int coordinate(const SearchOptions& options, const SearchPlan& plan, int size);
}  // namespace

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
    for (int w = 1; w < size; ++w) send_json({{"t", "stop"}, {"code", code}}, w);
    throw;
  }
}

namespace {

int coordinate(const SearchOptions& options, const SearchPlan& plan, int size) {
  log::set_context("rank 0@" + host_name());
  io::ResultStore store = io::ResultStore::open(options.out, search_config(options, plan.plan), options.resume);
  store.set_sync_interval(options.journal_sync_s);
  const std::string run_id = make_run_id();
  const double started_at = now_s();
  std::set<std::string> hosts = {host_name()}, devices, gpus;
  store.begin_run(run_id, run_record(options, plan, size, hosts, devices, started_at));
  Scheduler scheduler(plan, options, store.rows());
  log::info("search: " + std::to_string(plan.items.size()) + " units (" + std::to_string(scheduler.skipped()) +
            " already in " + options.out + "), " + std::to_string(size - 1) + " workers");
  Progress progress(scheduler, options.progress_interval_s);

  struct WorkerState {
    long busy = -1;  // item in flight
    double since = 0;
    bool ready = false;
    bool parked = false;  // asked for work when none could be given
    bool stopped = false;
    bool lost = false;
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
      if (!workers[w].lost && !workers[w].stopped) live.insert(w);
    }
    return live;
  };
  auto give_work = [&](int w) {
    auto& ws = workers[w];
    if (stopping || scheduler.finished()) return false;
    auto a = scheduler.next(w, ws.gpu, holders[w], live_set(), holders);
    if (!a) {
      ws.parked = true;
      return false;
    }
    send_json({{"t", "work"}, {"item", a->item}, {"attempt", a->attempt}, {"batch", a->batch}}, w);
    ws.busy = static_cast<long>(a->item);
    ws.since = now_s();
    ws.parked = false;
    return true;
  };

  // Answers a worker after its message: more work, or stop.
  auto answer = [&](int w) {
    auto& ws = workers[w];
    if (!give_work(w) && (stopping || scheduler.finished())) {
      send_json({{"t", "stop"}, {"code", stopping && !scheduler.finished() ? exit_code::interrupted_resume : 0}}, w);
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
      int flag = 0;
      MPI_Status status;
      MPI_Iprobe(MPI_ANY_SOURCE, kTag, MPI_COMM_WORLD, &flag, &status);
      if (!flag) break;
      const int w = status.MPI_SOURCE;
      const nlohmann::json msg = receive_json(status);
      auto& ws = workers[w];
      if (ws.lost) {
        log::warn("worker " + std::to_string(w) + " answered after its deadline; its result still counts if first");
        ws.lost = false;
      }
      const std::string type = msg.value("t", "");
      if (type == "ready") {
        ws.ready = true;
        ws.gpu = msg.value("gpu", msg.value("device", ""));
        hosts.insert(msg.value("host", ""));
        gpus.insert(ws.gpu);
        devices.insert(describe_device(msg.value("host", ""), msg.value("device", ""), ws.gpu,
                                       msg.value("timing", "")));
        // Every worker has named its GPU: platforms none has are settled.
        if (++ready_workers == size - 1 && report_unservable(scheduler.drop_unservable(gpus), gpus)) {
          exit_with = exit_code::failed;
        }
      } else if (type == "result") {
        io::EvaluationRow row = io::EvaluationRow::from_json(msg.at("row"));
        row.run_id = run_id;
        if (scheduler.record(msg.at("item").get<std::size_t>(), row, msg.value("oom", false), w)) {
          store.append(row, /*defer_sync=*/true);
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
      if (ws.busy >= 0 && !ws.lost && t - ws.since > options.unit_deadline_s) {
        log::warn("worker " + std::to_string(w) + " silent for " + format_duration(t - ws.since) +
                  " on unit " + plan.items[ws.busy].unit_key + ": handing it to another worker");
        ws.lost = true;
        scheduler.requeue(static_cast<std::size_t>(ws.busy));
        ws.busy = -1;
      }
    }
    for (int w = 1; w < size; ++w) {
      auto& ws = workers[w];
      if (ws.stopped || ws.lost || !ws.parked) continue;
      answer(w);
    }
    // Done when every worker has been told to stop. Workers lost past their
    // deadline get a grace period to come back (a slow unit, not a hung
    // GPU); after it the run ends without them.
    bool any_running = false, all_lost = true;
    for (int w = 1; w < size; ++w) {
      if (workers[w].stopped) continue;
      any_running = true;
      if (!workers[w].lost) all_lost = false;
    }
    if (!any_running) break;
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
  store.begin_run(run_id, run_record(options, plan, size, hosts, devices, started_at));
  store.close();
  int code = exit_with != exit_code::ok ? exit_with : finish_code(scheduler, stopping);
  if (code == exit_code::interrupted_resume) log::warn("interrupted: rerun with --resume to continue " + options.out);
  bool abandoned = false;
  for (int w = 1; w < size; ++w) abandoned |= !workers[w].stopped;
  if (abandoned) {
    // A worker that never answered would hang MPI_Finalize; the file is closed.
    log::warn("aborting the MPI job: some workers did not stop");
    MPI_Abort(MPI_COMM_WORLD, code == exit_code::ok ? exit_code::failed : code);
  }
  return code;
}

}  // namespace

}  // namespace diffsearch::coordinator
