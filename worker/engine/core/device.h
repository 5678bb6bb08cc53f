// The run's device: parsing --dtype/--device, synchronising before reading a
// clock, peak memory and the device's name. CUDA parts compile only where
// libtorch has CUDA (DIFFSEARCH_WITH_CUDA).
#pragma once

#include <cstdint>
#include <string>

#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

// dtype: float32, float64, float16, bfloat16 (also fp32, fp64, fp16, bf16);
// device: cpu, cuda, cuda:I. Throws InputError for unknown names, half types
// on the CPU, or CUDA where libtorch or the machine has none.
RunOptions parse_run_options(const std::string& dtype, const std::string& device);

bool cuda_available();
void device_synchronize(const RunOptions& options);
void reset_peak_memory(const RunOptions& options);
// CUDA: peak bytes allocated since the reset; CPU: the process's peak
// resident set size.
int64_t peak_memory_bytes(const RunOptions& options);
// Returns the caching allocator's unused blocks to CUDA (after an
// out-of-memory error); nothing on the CPU.
void release_cached_memory(const RunOptions& options);
// "NVIDIA H200", or "cpu".
std::string device_name(const RunOptions& options);

// An on/off environment switch that is on unless set to 0: true for unset,
// empty or 1; anything else is an InputError naming the variable and what
// each value means ("expected 1 (when_on) or 0 (when_off)").
bool env_switch_on(const char* name, const std::string& when_on, const std::string& when_off);

// DIFFSEARCH_CUDA_MEMORY_FRACTION=F (0 < F <= 1): this process may allocate
// at most F of the GPU's memory, as if the card were smaller (to check what
// runs when a batch does not fit). Applied by parse_run_options on CUDA;
// anything else is an InputError naming the variable.
void apply_memory_fraction(const RunOptions& options);

// Whether SampleRunner may capture whole samples as CUDA graphs: on a CUDA
// device with PyTorch's CUDA libtorch, unless DIFFSEARCH_CUDA_GRAPHS=0
// (anything but 0 or 1 is an InputError).
bool cuda_graphs_enabled(const RunOptions& options);

// Whether convolution activations and weights are kept channels-last (NHWC)
// on this device: on CUDA, unless DIFFSEARCH_CHANNELS_LAST=0 (anything but 0
// or 1 is an InputError). cuDNN's convolutions run NHWC on Hopper and
// transpose every NCHW input first. The CPU keeps NCHW.
bool channels_last_enabled(const c10::Device& device);

// True while this thread captures a CUDA graph. Nothing then executes, and a
// copy from host memory would be replayed from a stale buffer: policies
// allocate the device tensor instead and fill it in refill_for_replay.
bool capturing_graph();
// at::empty for a tensor the host fills before each replay. While capturing,
// it comes from outside the capture's memory pool: a block of that pool may
// have served a temporary of the graph's earlier kernels, which would
// overwrite on replay what the host wrote before it.
at::Tensor empty_outside_graph(at::IntArrayRef sizes, const at::TensorOptions& options);

class GraphCaptureScope {
 public:
  GraphCaptureScope();
  ~GraphCaptureScope();
  GraphCaptureScope(const GraphCaptureScope&) = delete;
  GraphCaptureScope& operator=(const GraphCaptureScope&) = delete;
};

}  // namespace diffsearch::engine
