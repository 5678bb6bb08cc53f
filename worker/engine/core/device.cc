// Device helpers over libtorch; the CUDA calls sit behind DIFFSEARCH_WITH_CUDA
// so the CPU-only Debian libtorch builds too.
#include "worker/engine/core/device.h"

#include <sys/resource.h>

#include <cstdlib>

#include <torch/torch.h>
#include <torch/version.h>
#ifdef DIFFSEARCH_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#endif

#include "io/error.h"

namespace diffsearch::engine {

bool cuda_available() { return torch::cuda::is_available(); }

namespace {

// DIFFSEARCH_SDPA=flash|efficient|cudnn|math restricts the fused attention to
// one family of kernels (for benchmarking them against each other); unset,
// PyTorch chooses.
void select_attention_kernels() {
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  const char* env = std::getenv("DIFFSEARCH_SDPA");
  if (env == nullptr || *env == '\0' || std::string(env) == "default") return;
  const std::string k = env;
  if (k != "flash" && k != "efficient" && k != "cudnn" && k != "math") {
    throw InputError("DIFFSEARCH_SDPA='" + k + "': expected flash, efficient, cudnn, math or default");
  }
  auto& ctx = at::globalContext();
  ctx.setSDPUseFlash(k == "flash");
  ctx.setSDPUseMemEfficient(k == "efficient");
  ctx.setSDPUseCuDNN(k == "cudnn");
  ctx.setSDPUseMath(true);  // the fallback for shapes the chosen kernels refuse
#endif
}

}  // namespace

RunOptions parse_run_options(const std::string& dtype, const std::string& device) {
  RunOptions options;
  if (dtype == "float32" || dtype == "fp32") options.dtype = c10::kFloat;
  else if (dtype == "float64" || dtype == "fp64") options.dtype = c10::kDouble;
  else if (dtype == "float16" || dtype == "fp16") options.dtype = c10::kHalf;
  else if (dtype == "bfloat16" || dtype == "bf16") options.dtype = c10::kBFloat16;
  else throw InputError("--dtype '" + dtype + "': expected float32, float64, float16 or bfloat16");

  if (device == "cpu") {
    options.device = c10::Device(c10::kCPU);
  } else if (device == "cuda" || device.rfind("cuda:", 0) == 0) {
    if (!cuda_available()) {
      throw InputError("--device " + device +
                       ": this libtorch has no CUDA or the machine has no GPU (use --device cpu, "
                       "or build against PyTorch's CUDA libtorch)");
    }
    int index = 0;
    if (device.size() > 5) {
      try {
        std::size_t used = 0;
        index = std::stoi(device.substr(5), &used);
        if (used != device.size() - 5 || index < 0) throw std::invalid_argument("index");
      } catch (const std::exception&) {
        throw InputError("--device '" + device + "': expected cuda:<index>, for example cuda:0");
      }
    }
    if (index >= static_cast<int>(torch::cuda::device_count())) {
      throw InputError("--device " + device + ": only " + std::to_string(torch::cuda::device_count()) +
                       " CUDA device(s) visible");
    }
    options.device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
    // Shapes repeat for a whole search, so cuDNN's autotuned convolutions pay off.
    at::globalContext().setBenchmarkCuDNN(true);
    select_attention_kernels();
    apply_memory_fraction(options);
  } else {
    throw InputError("--device '" + device + "': expected cpu, cuda or cuda:<index>");
  }
  if (options.device.is_cpu() && (options.dtype == c10::kHalf || options.dtype == c10::kBFloat16)) {
    throw InputError("--dtype " + dtype + " runs only on CUDA; use float32 or float64 on the CPU");
  }
  return options;
}

void device_synchronize(const RunOptions& options) {
  if (options.device.is_cuda()) torch::cuda::synchronize(options.device.index());
}

void reset_peak_memory(const RunOptions& options) {
#ifdef DIFFSEARCH_WITH_CUDA
  if (options.device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(options.device.index());
  }
#endif
}

int64_t peak_memory_bytes(const RunOptions& options) {
#ifdef DIFFSEARCH_WITH_CUDA
  if (options.device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(options.device.index());
    // Index 0 is StatType::AGGREGATE, whose namespace moved between 1.13 and 2.x.
    return stats.allocated_bytes[0].peak;
  }
#endif
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

void release_cached_memory(const RunOptions& options) {
#ifdef DIFFSEARCH_WITH_CUDA
  if (options.device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)options;
}

void apply_memory_fraction(const RunOptions& options) {
  const char* text = std::getenv("DIFFSEARCH_CUDA_MEMORY_FRACTION");
  if (!text || !*text || !options.device.is_cuda()) return;
  char* end = nullptr;
  const double fraction = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(fraction > 0 && fraction <= 1)) {
    throw InputError(std::string("DIFFSEARCH_CUDA_MEMORY_FRACTION=\"") + text +
                     "\": expected a number in (0, 1], the share of the GPU's memory this process may use");
  }
#ifdef DIFFSEARCH_WITH_CUDA
  // The caching allocator is set up by the first CUDA allocation (libtorch
  // 2.x asserts "Allocator not initialized for device" before it).
  (void)torch::empty({1}, torch::TensorOptions().device(options.device));
  c10::cuda::CUDACachingAllocator::setMemoryFraction(fraction, options.device.index());
#endif
}

std::string device_name(const RunOptions& options) {
#ifdef DIFFSEARCH_WITH_CUDA
  if (options.device.is_cuda()) {
    return at::cuda::getDeviceProperties(options.device.index())->name;
  }
#endif
  return options.device.is_cuda() ? "cuda" : "cpu";
}

bool env_switch_on(const char* name, const std::string& when_on, const std::string& when_off) {
  const char* env = std::getenv(name);
  const std::string value = env == nullptr ? "" : env;
  if (!value.empty() && value != "0" && value != "1") {
    throw InputError(std::string(name) + "='" + value + "': expected 1 (" + when_on + ") or 0 (" +
                     when_off + ")");
  }
  return value != "0";
}

bool cuda_graphs_enabled(const RunOptions& options) {
  const bool on = env_switch_on("DIFFSEARCH_CUDA_GRAPHS", "the default", "eager runs");
#ifdef DIFFSEARCH_WITH_CUDA
  return on && options.device.is_cuda();
#else
  (void)on;  // checked all the same: a bad value is an error everywhere
  return false;
#endif
}

bool channels_last_enabled(const c10::Device& device) {
  return env_switch_on("DIFFSEARCH_CHANNELS_LAST", "the default on CUDA", "NCHW activations") &&
         device.is_cuda();
}

namespace {
thread_local int capture_depth = 0;
}  // namespace

bool capturing_graph() { return capture_depth > 0; }

at::Tensor empty_outside_graph(at::IntArrayRef sizes, const at::TensorOptions& options) {
#ifdef DIFFSEARCH_WITH_CUDA
  if (capturing_graph() && options.device().is_cuda()) {
    // The allocator serves the capture's pool only to the capturing stream.
    c10::cuda::CUDAStreamGuard guard(c10::cuda::getDefaultCUDAStream(options.device().index()));
    return at::empty(sizes, options);
  }
#endif
  return at::empty(sizes, options);
}
GraphCaptureScope::GraphCaptureScope() { ++capture_depth; }
GraphCaptureScope::~GraphCaptureScope() { --capture_depth; }

}  // namespace diffsearch::engine
