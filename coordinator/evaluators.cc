// The null and fake evaluators and the registry that picks an evaluator by
// name; synthetic and replay have files of their own, and the engine's lives
// in the worker library and is registered by the CLI.
#include "coordinator/evaluators.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "coordinator/evaluator_replay.h"
#include "coordinator/evaluator_synthetic.h"
#include "io/error.h"
#include "io/hash.h"

namespace diffsearch::coordinator {
namespace {

EvaluatorFactory& engine_factory() {
  static EvaluatorFactory factory;
  return factory;
}

// A number in [0, 1) from a hash, for deterministic "measurements".
double unit_fraction(uint64_t h) { return static_cast<double>(h >> 11) / 9007199254740992.0; }

std::string folder_name(const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  const auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

worker::EvaluationRecord NullEvaluator::evaluate(const worker::MeasurementUnit& unit) {
  worker::EvaluationRecord r;
  r.device_name = "null";
  r.base.clip.assign(unit.prompts.size(), 0.0);
  r.acc.clip.assign(unit.prompts.size(), 0.0);
  return r;
}

std::vector<EvaluatorOption> split_evaluator_options(const std::string& options) {
  std::vector<EvaluatorOption> out;
  std::size_t pos = 0;
  while (pos < options.size()) {
    std::size_t end = options.find(',', pos);
    if (end == std::string::npos) end = options.size();
    EvaluatorOption o;
    o.item = options.substr(pos, end - pos);
    pos = end + 1;
    if (o.item.empty()) continue;
    const auto eq = o.item.find('=');
    o.key = o.item.substr(0, eq);
    o.has_value = eq != std::string::npos;
    if (o.has_value) o.value = o.item.substr(eq + 1);
    out.push_back(std::move(o));
  }
  return out;
}

FakeEvaluator::FakeEvaluator(const std::string& options, int rank) : rank_(rank) {
  int exit_at_load = -1;
  for (const auto& option : split_evaluator_options(options)) {
    const std::string& item = option.item;
    const std::string& key = option.key;
    const std::string value = option.has_value ? option.value : "1";  // a bare flag is on
    try {
      if (key == "fail_rank") fail_rank_ = std::stoi(value);
      else if (key == "fail_every") fail_every_ = std::max(1, std::stoi(value));
      else if (key == "fail_always") fail_always_ = value != "0";
      else if (key == "oom") fail_kind_ = value != "0" ? FailureKind::out_of_memory : FailureKind::transient;
      else if (key == "fail_kind") {
        fail_kind_ = value == "oom" ? FailureKind::out_of_memory : parse_failure_kind(value);
        if (fail_kind_ == FailureKind::none || (fail_kind_ == FailureKind::transient && value != "transient")) {
          throw std::invalid_argument(key);
        }
      }
      else if (key == "segv_every") segv_every_ = std::max(0, std::stoi(value));
      else if (key == "kill_every") kill_every_ = std::max(0, std::stoi(value));
      else if (key == "exit_at_load_rank") exit_at_load = std::stoi(value);
      else if (key == "sleep_ms") sleep_ms_ = std::stoi(value);
      else if (key == "hang_rank") hang_rank_ = std::stoi(value);
      else if (key == "hang_ms") hang_ms_ = std::stoi(value);
      else if (key == "gpu" && !value.empty()) gpu_ = value;
      else if (key == "gpu_rank") gpu_rank_ = std::stoi(value);
      else if (key == "timing") timing_ = value;
      else throw std::invalid_argument(key);
    } catch (const std::exception&) {
      throw InputError("--evaluator fake:" + options + ": bad option \"" + item +
                       "\" (expected fail_rank=R, fail_every=N, fail_always, oom, fail_kind=bad_input|oom|device_fault|transient, "
                       "sleep_ms=MS, hang_rank=R, hang_ms=MS, gpu=NAME, gpu_rank=R, timing=TEXT, segv_every=N, "
                       "kill_every=N, exit_at_load_rank=R)");
    }
  }
  if (rank_ == exit_at_load) {
    std::fprintf(stderr, "fake evaluator: exit_at_load_rank=%d: exiting while loading\n", rank_);
    std::_Exit(3);
  }
  // A later child of a rank (coordinator/child_evaluator.h numbers them)
  // has already had the rank's one hang.
  if (const char* g = std::getenv("DIFFSEARCH_CHILD_GENERATION"); g && std::atoi(g) > 1) hung_ = true;
}

std::string FakeEvaluator::gpu_name(const std::string& device) {
  return !gpu_.empty() && (gpu_rank_ < 0 || gpu_rank_ == rank_) ? gpu_ : device;
}

worker::EvaluationRecord FakeEvaluator::evaluate(const worker::MeasurementUnit& unit) {
  ++started_;
  if (segv_every_ > 0 && started_ % segv_every_ == 0) {
    std::fprintf(stderr, "fake evaluator: segv_every=%d: segfaulting on unit %s\n", segv_every_, unit.unit_key.c_str());
    const struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // no core files from a test
    signal(SIGSEGV, SIG_DFL);
    *reinterpret_cast<volatile int*>(static_cast<uintptr_t>(8)) = 1;  // a real invalid access
    raise(SIGSEGV);
  }
  if (kill_every_ > 0 && started_ % kill_every_ == 0) {
    std::fprintf(stderr, "fake evaluator: kill_every=%d: SIGKILL on unit %s\n", kill_every_, unit.unit_key.c_str());
    kill(getpid(), SIGKILL);
  }
  if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
  if (rank_ == hang_rank_ && !hung_) {
    hung_ = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(hang_ms_));
  }
  const std::string setting = partition::setting_key(unit.setting);
  const std::string base_id = folder_name(unit.model_dir) + "|" + partition::sampler_slug(unit.sampler) +
                              "|" + std::to_string(unit.steps) + "|" + std::to_string(unit.height) +
                              "|" + std::to_string(unit.seed) + "|" + std::to_string(unit.prompts.size());
  const uint64_t h = io::fnv1a(setting, io::fnv1a(base_id));
  if ((fail_always_ || rank_ == fail_rank_) && !unit.setting.empty() && h % fail_every_ == 0) {
    const std::string where = " (fake evaluator, rank " + std::to_string(rank_) + ")";
    switch (fail_kind_) {
      case FailureKind::out_of_memory: throw OutOfMemoryError("CUDA out of memory" + where);
      case FailureKind::bad_input: throw InputError("injected bad input for unit " + unit.unit_key + where);
      case FailureKind::device_fault: throw DeviceFaultError("CUDA error: an illegal memory access was encountered" + where);
      default: throw std::runtime_error("fake evaluator: injected failure on rank " + std::to_string(rank_));
    }
  }
  worker::EvaluationRecord r;
  r.device_name = gpu_name(unit.device);
  const int64_t base_macs = 1000000LL * unit.steps;
  // Acceleration: a factor from the setting's hash in [1, 4.5), quality loss
  // growing with it plus noise, so fronts are non-trivial.
  const double factor = unit.setting.empty() ? 1.0 : 1.0 + 3.5 * unit_fraction(h);
  const double loss = unit.setting.empty() ? 0.0 : 0.012 * (factor - 1.0) * unit_fraction(h * 31 + 7);
  const size_t n = unit.prompts.size();
  const double clip_base = 25.0 + 5.0 * unit_fraction(io::fnv1a(base_id));
  r.base.macs = base_macs;
  r.acc.macs = static_cast<int64_t>(std::llround(static_cast<double>(base_macs) / factor));
  r.base.total_s = 0.001 * static_cast<double>(n) * unit.steps;
  r.acc.total_s = r.base.total_s * static_cast<double>(r.acc.macs) / static_cast<double>(base_macs);
  r.base.clip.assign(n, clip_base);
  r.acc.clip.assign(n, clip_base * (1.0 - loss));
  r.base.clip_mean = clip_base;
  r.acc.clip_mean = clip_base * (1.0 - loss);
  r.speedup = r.base.total_s / r.acc.total_s;
  r.speedup_macs = static_cast<double>(r.base.macs) / static_cast<double>(r.acc.macs);
  r.score_loss = (r.base.clip_mean - r.acc.clip_mean) / r.base.clip_mean;
  r.psnr.assign(n, unit.setting.empty() ? 100.0 : 40.0 - 5.0 * factor);
  r.ssim.assign(n, unit.setting.empty() ? 1.0 : 1.0 - 0.05 * factor);
  r.psnr_mean = n ? r.psnr[0] : 0;
  r.ssim_mean = n ? r.ssim[0] : 0;
  return r;
}

void register_engine_evaluator(EvaluatorFactory factory) { engine_factory() = std::move(factory); }

std::string evaluator_kind(const std::string& spec) { return spec.substr(0, spec.find(':')); }

std::unique_ptr<worker::Evaluator> make_evaluator(const std::string& spec, int rank) {
  const std::string kind = evaluator_kind(spec);
  const std::string options = spec.size() > kind.size() ? spec.substr(kind.size() + 1) : "";
  if (kind == "null") return std::make_unique<NullEvaluator>();
  if (kind == "fake") return std::make_unique<FakeEvaluator>(options, rank);
  if (kind == "synthetic") return std::make_unique<SyntheticEvaluator>(options, rank);
  if (kind == "replay") return std::make_unique<ReplayEvaluator>(options);
  if (kind == "engine") {
    if (!engine_factory()) {
      throw InputError("--evaluator engine: this diffsearch was built without the engine evaluator");
    }
    return engine_factory()();
  }
  throw InputError("--evaluator \"" + spec +
                   "\": expected engine, null, fake[:options], synthetic[:seed=S,noise=X,bumps=Y,jitter=J] "
                   "or replay:FILE.h5");
}

bool is_out_of_memory(const std::string& message) {
  return failure_kind_of_message(message) == FailureKind::out_of_memory;
}

}  // namespace diffsearch::coordinator
