// Host side of the engine's own CUDA kernels (tome_kernels.cu,
// group_norm_kernels.cu, geglu_kernels.cu), built where PyTorch's CUDA libtorch and nvcc are
// found (CMake's DIFFSEARCH_CUDA_KERNELS: AUTO, the default, ON or OFF). Each use has its own run-time
// switch (DIFFSEARCH_TOME_KERNELS, DIFFSEARCH_NORM_KERNELS, and DIFFSEARCH_GEGLU_KERNELS, which is
// off unless set to 1); without the kernels, or switched off, the engine computes the same with ATen.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

#include "worker/engine/kernels/kernel_dtype.h"

namespace diffsearch::engine {

// Whether this build has the kernels.
bool cuda_kernels_built();

// Whether the kernels behind `switch_name` run for tensors on `device`:
// built, CUDA, and the switch not set to 0 (anything but 0 or 1 is an
// InputError naming it).
bool cuda_kernels_enabled(const char* switch_name, const c10::Device& device);

namespace kernels {
// The kernels' name for t's element type; t must be floating point.
Dtype dtype_of(const at::Tensor& t);
// The current CUDA stream of t's device, as a cudaStream_t. Only in builds
// with the kernels.
void* current_stream(const at::Tensor& t);
// Throws a std::runtime_error naming `kernel` when `error` is not null.
void check(const char* error, const std::string& kernel);
}  // namespace kernels

}  // namespace diffsearch::engine
