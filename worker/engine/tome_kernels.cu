// ToMe's fused CUDA kernels (see tome_kernels.h). Built only with
// -DDIFFSEARCH_CUDA_KERNELS=ON; policy_tome.cc falls back to ATen otherwise.
#include "worker/engine/tome_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <type_traits>

namespace diffsearch::engine::tome_kernels {
namespace {

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

const char* last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

// One warp per row: the largest value and the first column holding it (the
// tie rule of at::max). NaNs never win, so the index is always a column.
template <typename T, typename K>
__global__ void row_max_kernel(const T* __restrict__ scores, int64_t rows, int64_t cols,
                               K* __restrict__ keys, int64_t* __restrict__ index) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // the whole warp leaves together
  const T* r = scores + row * cols;
  K best = -INFINITY;
  int64_t best_i = -1;
  for (int64_t c = lane; c < cols; c += 32) {
    const K v = to_acc<K>(r[c]);
    if (best_i < 0 || v > best) {
      best = v;
      best_i = c;
    }
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    const K other = __shfl_down_sync(0xffffffffu, best, offset);
    const int64_t other_i = __shfl_down_sync(0xffffffffu, best_i, offset);
    if (other_i >= 0 && (best_i < 0 || other > best || (other == best && other_i < best_i))) {
      best = other;
      best_i = other_i;
    }
  }
  if (lane == 0) {
    keys[row] = best;
    index[row] = best_i;
  }
}

// The order of a stable descending sort: larger key first, then lower position.
template <typename K>
__device__ __forceinline__ bool before(K key_a, int pos_a, K key_b, int pos_b) {
  return key_a > key_b || (key_a == key_b && pos_a < pos_b);
}

template <typename T> __device__ __forceinline__ T one() { return static_cast<T>(1); }
template <> __device__ __forceinline__ __half one<__half>() { return __float2half(1.0f); }
template <> __device__ __forceinline__ __nv_bfloat16 one<__nv_bfloat16>() { return __float2bfloat16(1.0f); }

// One block per batch row: a bitonic sort of (key, position) pairs in shared
// memory (p, a power of two >= n; the padding sorts last), then everything
// the merge needs from that order.
template <typename K, typename CountT, typename AssignT>
__global__ void select_kernel(const K* __restrict__ keys, const int64_t* __restrict__ node_index,
                              const int64_t* __restrict__ dst_pos, int64_t n, int64_t num_dst,
                              int64_t r, int p, int64_t* __restrict__ order,
                              int64_t* __restrict__ src_to_dst, int64_t* __restrict__ map,
                              CountT* __restrict__ counts, AssignT* __restrict__ assign) {
  extern __shared__ unsigned char shared[];
  K* skey = reinterpret_cast<K*>(shared);
  int* spos = reinterpret_cast<int*>(skey + p);
  int* joined = spos + p;  // sources per destination
  const int64_t b = blockIdx.x;
  const K* row_keys = keys + b * n;
  for (int i = threadIdx.x; i < p; i += blockDim.x) {
    skey[i] = i < n ? row_keys[i] : static_cast<K>(-INFINITY);
    spos[i] = i;
  }
  for (int j = threadIdx.x; j < num_dst; j += blockDim.x) joined[j] = 0;
  __syncthreads();
  // Destinations never merge: they sort after every source, in position order.
  for (int j = threadIdx.x; j < num_dst; j += blockDim.x) skey[dst_pos[j]] = static_cast<K>(-INFINITY);
  __syncthreads();
  for (int k = 2; k <= p; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < p; i += blockDim.x) {
        const int l = i ^ j;
        if (l <= i) continue;
        const K key_i = skey[i], key_l = skey[l];
        const int pos_i = spos[i], pos_l = spos[l];
        const bool ascending = (i & k) == 0;  // this run ends up in `before` order
        if (ascending ? before(key_l, pos_l, key_i, pos_i) : before(key_i, pos_i, key_l, pos_l)) {
          skey[i] = key_l;
          skey[l] = key_i;
          spos[i] = pos_l;
          spos[l] = pos_i;
        }
      }
      __syncthreads();
    }
  }
  const int64_t num_unmerged = n - num_dst - r;
  for (int k = threadIdx.x; k < n; k += blockDim.x) {
    const int64_t pos = spos[k];
    order[b * n + k] = pos;
    if (k < r) {
      const int64_t d = node_index[b * n + pos];
      src_to_dst[b * r + k] = d;
      map[b * n + pos] = num_unmerged + d;
      atomicAdd(&joined[d], 1);  // an integer count: the same whatever the order
      assign[(b * num_dst + d) * r + k] = one<AssignT>();
    } else {
      map[b * n + pos] = k - r;
    }
  }
  __syncthreads();
  for (int j = threadIdx.x; j < num_dst; j += blockDim.x) {
    counts[b * num_dst + j] = static_cast<CountT>(1 + joined[j]);
  }
}

// A copy of whole rows in units V (16 bytes when the rows allow it).
template <typename V>
__global__ void gather_rows_kernel(const V* __restrict__ x, const int64_t* __restrict__ order,
                                   int64_t n, int64_t units, int64_t r, V* __restrict__ src,
                                   V* __restrict__ kept, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t u = e % units, row = e / units;  // row = b * n + k
    const int64_t b = row / n, k = row % n;
    const V v = x[(b * n + order[row]) * units + u];
    if (k < r) {
      src[(b * r + k) * units + u] = v;
    } else {
      kept[(b * (n - r) + (k - r)) * units + u] = v;
    }
  }
}

// Accumulates in A (float, or double for double) and rounds once.
template <typename T, typename A, typename CountT>
__global__ void finish_kernel(T* __restrict__ kept, const T* __restrict__ sums,
                              const CountT* __restrict__ counts, int64_t kept_rows, int64_t num_dst,
                              int64_t channels, int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t c = e % channels, bj = e / channels;  // bj = b * num_dst + j
    const int64_t b = bj / num_dst, j = bj % num_dst;
    T* row = kept + (b * kept_rows + (kept_rows - num_dst) + j) * channels;
    const A v = (to_acc<A>(row[c]) + to_acc<A>(sums[bj * channels + c])) / static_cast<A>(counts[bj]);
    row[c] = from_acc<T>(v);
  }
}

int grid_for(int64_t total, int threads) {
  const int64_t blocks = (total + threads - 1) / threads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

int next_pow2(int64_t n) {
  int p = 1;
  while (p < n) p <<= 1;
  return p;
}

size_t select_shared_bytes(int64_t n, int64_t num_dst, bool float64_keys) {
  const size_t p = static_cast<size_t>(next_pow2(n));
  return p * ((float64_keys ? sizeof(double) : sizeof(float)) + sizeof(int)) +
         static_cast<size_t>(num_dst) * sizeof(int);
}

// Read once: the first call comes from an eager run, before any graph
// capture, and a process drives one GPU.
int max_shared_optin() {
  static const int bytes = [] {
    int device = 0, value = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&value, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) return 0;
    return value;
  }();
  return bytes;
}

template <typename K, typename CountT, typename AssignT>
const char* launch_select(const void* keys, const int64_t* node_index, const int64_t* dst_pos,
                          int64_t batch, int64_t n, int64_t num_dst, int64_t r, int64_t* order,
                          int64_t* src_to_dst, int64_t* map, void* counts, void* assign,
                          cudaStream_t stream) {
  auto* kernel = select_kernel<K, CountT, AssignT>;
  // Raised once, before any graph capture (the first run of a setting is eager).
  static const cudaError_t raised = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared_optin());
  if (raised != cudaSuccess) return cudaGetErrorString(raised);
  const size_t bytes = select_shared_bytes(n, num_dst, sizeof(K) == sizeof(double));
  kernel<<<static_cast<unsigned>(batch), 1024, bytes, stream>>>(
      static_cast<const K*>(keys), node_index, dst_pos, n, num_dst, r, next_pow2(n), order,
      src_to_dst, map, static_cast<CountT*>(counts), static_cast<AssignT*>(assign));
  return last_error();
}

template <typename K, typename CountT>
const char* select_by_assign(Dtype assign_dtype, const void* keys, const int64_t* node_index,
                             const int64_t* dst_pos, int64_t batch, int64_t n, int64_t num_dst,
                             int64_t r, int64_t* order, int64_t* src_to_dst, int64_t* map,
                             void* counts, void* assign, cudaStream_t stream) {
  switch (assign_dtype) {
    case Dtype::float16:
      return launch_select<K, CountT, __half>(keys, node_index, dst_pos, batch, n, num_dst, r, order,
                                              src_to_dst, map, counts, assign, stream);
    case Dtype::bfloat16:
      return launch_select<K, CountT, __nv_bfloat16>(keys, node_index, dst_pos, batch, n, num_dst, r,
                                                     order, src_to_dst, map, counts, assign, stream);
    case Dtype::float32:
      return launch_select<K, CountT, float>(keys, node_index, dst_pos, batch, n, num_dst, r, order,
                                             src_to_dst, map, counts, assign, stream);
    case Dtype::float64:
      return launch_select<K, CountT, double>(keys, node_index, dst_pos, batch, n, num_dst, r, order,
                                              src_to_dst, map, counts, assign, stream);
  }
  return "tome_kernels::order_tokens: unknown assign dtype";
}

template <typename T>
const char* launch_row_max(const void* scores, int64_t rows, int64_t cols, void* keys,
                           int64_t* index, cudaStream_t stream) {
  constexpr int kThreads = 256;  // 8 rows per block
  const int64_t blocks = (rows * 32 + kThreads - 1) / kThreads;
  if constexpr (std::is_same<T, double>::value) {
    row_max_kernel<T, double><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const T*>(scores), rows, cols, static_cast<double*>(keys), index);
  } else {
    row_max_kernel<T, float><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        static_cast<const T*>(scores), rows, cols, static_cast<float*>(keys), index);
  }
  return last_error();
}

template <typename T, typename CountT>
const char* launch_finish(void* kept, const void* sums, const void* counts, int64_t batch,
                          int64_t kept_rows, int64_t num_dst, int64_t channels, cudaStream_t stream) {
  const int64_t total = batch * num_dst * channels;
  if (total == 0) return nullptr;
  constexpr int kThreads = 256;
  using A = std::conditional_t<std::is_same<T, double>::value, double, float>;
  finish_kernel<T, A, CountT><<<grid_for(total, kThreads), kThreads, 0, stream>>>(
      static_cast<T*>(kept), static_cast<const T*>(sums), static_cast<const CountT*>(counts),
      kept_rows, num_dst, channels, total);
  return last_error();
}

size_t element_size(Dtype dtype) {
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

}  // namespace

const char* row_max(const void* scores, Dtype dtype, int64_t rows, int64_t cols, void* keys,
                    int64_t* index, void* stream) {
  if (rows == 0) return nullptr;
  if (cols <= 0) return "tome_kernels::row_max: no columns";
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case Dtype::float16:
      return launch_row_max<__half>(scores, rows, cols, keys, index, s);
    case Dtype::bfloat16:
      return launch_row_max<__nv_bfloat16>(scores, rows, cols, keys, index, s);
    case Dtype::float32:
      return launch_row_max<float>(scores, rows, cols, keys, index, s);
    case Dtype::float64:
      return launch_row_max<double>(scores, rows, cols, keys, index, s);
  }
  return "tome_kernels::row_max: unknown dtype";
}

bool order_fits(int64_t n, int64_t num_dst, bool float64_keys) {
  if (n <= 0 || n > (int64_t{1} << 30)) return false;
  return select_shared_bytes(n, num_dst, float64_keys) <= static_cast<size_t>(max_shared_optin());
}

const char* order_tokens(const void* keys, bool float64_keys, const int64_t* node_index,
                   const int64_t* dst_pos, int64_t batch, int64_t n, int64_t num_dst, int64_t r,
                   int64_t* order, int64_t* src_to_dst, int64_t* map, void* counts,
                   Dtype counts_dtype, void* assign, Dtype assign_dtype, void* stream) {
  if (batch == 0) return nullptr;
  if (r < 0 || num_dst < 1 || r > n - num_dst) return "tome_kernels::order_tokens: r out of range";
  if (!order_fits(n, num_dst, float64_keys)) return "tome_kernels::order_tokens: too many tokens for shared memory";
  auto s = static_cast<cudaStream_t>(stream);
  const bool counts64 = counts_dtype == Dtype::float64;
  if (counts_dtype != Dtype::float32 && !counts64) return "tome_kernels::order_tokens: counts must be float32 or float64";
  if (float64_keys) {
    return counts64 ? select_by_assign<double, double>(assign_dtype, keys, node_index, dst_pos, batch, n,
                                                       num_dst, r, order, src_to_dst, map, counts, assign, s)
                    : select_by_assign<double, float>(assign_dtype, keys, node_index, dst_pos, batch, n,
                                                      num_dst, r, order, src_to_dst, map, counts, assign, s);
  }
  return counts64 ? select_by_assign<float, double>(assign_dtype, keys, node_index, dst_pos, batch, n,
                                                    num_dst, r, order, src_to_dst, map, counts, assign, s)
                  : select_by_assign<float, float>(assign_dtype, keys, node_index, dst_pos, batch, n,
                                                   num_dst, r, order, src_to_dst, map, counts, assign, s);
}

const char* gather_rows(const void* x, Dtype dtype, const int64_t* order, int64_t batch, int64_t n,
                        int64_t channels, int64_t r, void* src, void* kept, void* stream) {
  const size_t row_bytes = static_cast<size_t>(channels) * element_size(dtype);
  auto s = static_cast<cudaStream_t>(stream);
  constexpr int kThreads = 256;
  const bool wide = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(src) % 16 == 0 && reinterpret_cast<uintptr_t>(kept) % 16 == 0;
  if (wide) {
    const int64_t units = static_cast<int64_t>(row_bytes / 16), total = batch * n * units;
    if (total == 0) return nullptr;
    gather_rows_kernel<uint4><<<grid_for(total, kThreads), kThreads, 0, s>>>(
        static_cast<const uint4*>(x), order, n, units, r, static_cast<uint4*>(src),
        static_cast<uint4*>(kept), total);
  } else {
    const int64_t units = static_cast<int64_t>(row_bytes / 2), total = batch * n * units;
    if (total == 0) return nullptr;
    gather_rows_kernel<uint16_t><<<grid_for(total, kThreads), kThreads, 0, s>>>(
        static_cast<const uint16_t*>(x), order, n, units, r, static_cast<uint16_t*>(src),
        static_cast<uint16_t*>(kept), total);
  }
  return last_error();
}

const char* finish_destinations(void* kept, const void* sums, Dtype dtype, const void* counts,
                                Dtype counts_dtype, int64_t batch, int64_t kept_rows,
                                int64_t num_dst, int64_t channels, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const bool counts64 = counts_dtype == Dtype::float64;
  if (counts_dtype != Dtype::float32 && !counts64) return "tome_kernels::finish_destinations: counts must be float32 or float64";
#define DIFFSEARCH_FINISH(T)                                                                        \
  return counts64 ? launch_finish<T, double>(kept, sums, counts, batch, kept_rows, num_dst, channels, s) \
                  : launch_finish<T, float>(kept, sums, counts, batch, kept_rows, num_dst, channels, s)
  switch (dtype) {
    case Dtype::float16:
      DIFFSEARCH_FINISH(__half);
    case Dtype::bfloat16:
      DIFFSEARCH_FINISH(__nv_bfloat16);
    case Dtype::float32:
      DIFFSEARCH_FINISH(float);
    case Dtype::float64:
      DIFFSEARCH_FINISH(double);
  }
#undef DIFFSEARCH_FINISH
  return "tome_kernels::finish_destinations: unknown dtype";
}

}  // namespace diffsearch::engine::tome_kernels
