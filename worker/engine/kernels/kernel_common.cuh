// Device-side helpers shared by the engine's .cu files: conversions to and
// from the accumulation type, 16-byte packs, grid sizes and error strings.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "worker/engine/kernels/kernel_dtype.h"

namespace diffsearch::engine::kernels {

template <typename T> __device__ __forceinline__ float to_float(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float to_float<__half>(__half v) { return __half2float(v); }
template <> __device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

// The value in the accumulation type A (float, or double for double).
template <typename A, typename T> __device__ __forceinline__ A to_acc(T v) { return static_cast<A>(to_float(v)); }
template <> __device__ __forceinline__ double to_acc<double, double>(double v) { return v; }

template <typename T> __device__ __forceinline__ T from_acc(float v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
// float64 stays float64 (the one type accumulated in double).
template <typename T> __device__ __forceinline__ T from_acc(double v) { return v; }

// VEC elements loaded or stored as one 16-byte (or narrower) access.
template <typename T, int VEC> struct alignas(sizeof(T) * VEC) Pack {
  T v[VEC];
};

inline const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// Blocks for a grid-stride loop over `total` items.
inline int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

inline size_t element_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::float16:
    case Dtype::bfloat16:
      return 2;
    case Dtype::float32:
      return 4;
    case Dtype::float64:
      return 8;
  }
  return 0;
}

}  // namespace diffsearch::engine::kernels
