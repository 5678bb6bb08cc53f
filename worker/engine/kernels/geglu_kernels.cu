// GEGLU's gate in one pass (see geglu_kernels.h). Built where
// DIFFSEARCH_CUDA_KERNELS allows (CMakeLists.txt); FeedForward in
// unet_blocks.cc computes the same with ATen otherwise.
#include "worker/engine/kernels/geglu_kernels.h"

#include "worker/engine/kernels/kernel_common.cuh"

namespace diffsearch::engine::geglu_kernels {
namespace {

using kernels::element_size;
using kernels::from_acc;
using kernels::grid_for;
using kernels::last_error;
using kernels::Pack;
using kernels::to_acc;

constexpr int kThreads = 256;

template <typename A> __device__ __forceinline__ A gelu(A x) {
  return A(0.5) * x * (A(1) + erf(x * A(0.70710678118654752440)));
}

// Thread i handles output vector i: row i / vectors, column vector i % vectors.
template <typename T, typename A, int VEC>
__global__ void geglu_kernel(const T* __restrict__ projected, T* __restrict__ out, int64_t rows,
                             int64_t vectors) {
  const int64_t total = rows * vectors;
  const int64_t width = vectors * VEC;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / vectors, column = (i % vectors) * VEC;
    const T* in = projected + row * 2 * width + column;
    const Pack<T, VEC> hidden = *reinterpret_cast<const Pack<T, VEC>*>(in);
    const Pack<T, VEC> gate = *reinterpret_cast<const Pack<T, VEC>*>(in + width);
    Pack<T, VEC> result;
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      result.v[v] = from_acc<T>(to_acc<A>(hidden.v[v]) * gelu(to_acc<A>(gate.v[v])));
    }
    *reinterpret_cast<Pack<T, VEC>*>(out + row * width + column) = result;
  }
}

template <typename T, typename A>
const char* launch(const Params& p, cudaStream_t stream) {
  constexpr int kVec = static_cast<int>(16 / sizeof(T));
  const int64_t vectors = p.width / kVec;
  if (p.rows == 0 || vectors == 0) return nullptr;
  geglu_kernel<T, A, kVec><<<grid_for(p.rows * vectors, kThreads), kThreads, 0, stream>>>(
      static_cast<const T*>(p.projected), static_cast<T*>(p.out), p.rows, vectors);
  return last_error();
}

}  // namespace

bool fits(int64_t width, Dtype dtype) {
  const int64_t vec = static_cast<int64_t>(16 / element_size(dtype));
  return width > 0 && width % vec == 0;
}

const char* geglu(const Params& p, void* stream) {
  if (!fits(p.width, p.dtype)) return "geglu: the width is not a whole number of 16-byte vectors";
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case Dtype::float16:
      return launch<__half, float>(p, s);
    case Dtype::bfloat16:
      return launch<__nv_bfloat16, float>(p, s);
    case Dtype::float32:
      return launch<float, float>(p, s);
    case Dtype::float64:
      return launch<double, double>(p, s);
  }
  return "geglu: unknown dtype";
}

}  // namespace diffsearch::engine::geglu_kernels
