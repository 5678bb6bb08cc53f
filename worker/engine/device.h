// The run's device: parsing --dtype/--device, synchronising before reading a
// clock, peak memory and the device's name. CUDA parts compile only where
// libtorch has CUDA (DIFFSEARCH_WITH_CUDA).
#pragma once

#include <cstdint>
#include <string>

#include "worker/engine/weights.h"

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
// "NVIDIA H200", or "cpu".
std::string device_name(const RunOptions& options);

}  // namespace diffsearch::engine
