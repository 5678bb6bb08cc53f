#include "worker/engine/kernels/cuda_kernels.h"

#include <stdexcept>

#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#endif

#include "io/error.h"
#include "worker/engine/core/device.h"

namespace diffsearch::engine {

bool cuda_kernels_built() {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool cuda_kernels_enabled(const char* switch_name, const c10::Device& device) {
  return env_switch_on(switch_name, "the engine's kernels, where built", "ATen's kernels") &&
         cuda_kernels_built() && device.is_cuda();
}

namespace kernels {

Dtype dtype_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf:
      return Dtype::float16;
    case at::kBFloat16:
      return Dtype::bfloat16;
    case at::kFloat:
      return Dtype::float32;
    case at::kDouble:
      return Dtype::float64;
    default:
      DIFFSEARCH_ASSERT(false && "the engine's CUDA kernels take floating-point tensors");
  }
  return Dtype::float32;
}

void* current_stream(const at::Tensor& t) {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  return at::cuda::getCurrentCUDAStream(t.device().index()).stream();
#else
  (void)t;
  DIFFSEARCH_ASSERT(false && "built without DIFFSEARCH_CUDA_KERNELS");
  return nullptr;
#endif
}

void check(const char* error, const std::string& kernel) {
  if (error != nullptr) {
    throw std::runtime_error("CUDA kernel " + kernel + ": " + error +
                             " (DIFFSEARCH_NORM_KERNELS=0, DIFFSEARCH_TOME_KERNELS=0 and DIFFSEARCH_GEGLU_KERNELS=0 run "
                             "ATen's kernels instead; a GPU this build has no code for needs -DCMAKE_CUDA_ARCHITECTURES)");
  }
}

}  // namespace kernels
}  // namespace diffsearch::engine
