// ToMe's fused CUDA kernels (see tome_kernels.h). Built where
// DIFFSEARCH_CUDA_KERNELS allows; policy_tome.cc falls back to ATen otherwise.
#include "worker/engine/kernels/tome_kernels.h"

#include <cmath>
#include <type_traits>

#include <cub/block/block_radix_sort.cuh>

#include "worker/engine/kernels/kernel_common.cuh"

namespace diffsearch::engine::tome_kernels {
namespace {

using kernels::element_size;
using kernels::from_acc;
using kernels::grid_for;
using kernels::last_error;
using kernels::to_acc;

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

template <typename T> __device__ __forceinline__ T one() { return static_cast<T>(1); }
template <> __device__ __forceinline__ __half one<__half>() { return __float2half(1.0f); }
template <> __device__ __forceinline__ __nv_bfloat16 one<__nv_bfloat16>() { return __float2bfloat16(1.0f); }

constexpr int kSortThreads = 1024;

template <typename K, int ITEMS> using BlockSort = cub::BlockRadixSort<K, kSortThreads, ITEMS, int>;

// One block per batch row: the order of a stable descending sort of the keys
// (larger key first, then lower position, as at::sort(stable=true)), with the
// destinations' keys at -inf so that they sort after every source. A block
// radix sort: the bitonic network it replaced took about 60 us at 4096
// tokens, one __syncthreads per stage.
template <typename K, int ITEMS>
__global__ void __launch_bounds__(kSortThreads)
    sort_kernel(const K* __restrict__ keys, const int64_t* __restrict__ dst_pos, int64_t n,
                int64_t num_dst, int64_t* __restrict__ order) {
  using Sort = BlockSort<K, ITEMS>;
  extern __shared__ __align__(16) unsigned char shared[];
  auto& temp = *reinterpret_cast<typename Sort::TempStorage*>(shared);
  unsigned char* is_dst = shared + sizeof(typename Sort::TempStorage);  // [n]
  const int64_t b = blockIdx.x;
  for (int i = threadIdx.x; i < n; i += blockDim.x) is_dst[i] = 0;
  __syncthreads();
  for (int j = threadIdx.x; j < num_dst; j += blockDim.x) is_dst[dst_pos[j]] = 1;
  __syncthreads();
  K key[ITEMS];
  int pos[ITEMS];
#pragma unroll
  for (int i = 0; i < ITEMS; ++i) {
    const int idx = threadIdx.x * ITEMS + i;  // a blocked arrangement
    pos[i] = idx;
    // Padding past n sorts last too: -inf, at positions after every token.
    key[i] = idx < n && !is_dst[idx] ? keys[b * n + idx] : static_cast<K>(-INFINITY);
  }
  Sort(temp).SortDescending(key, pos);
#pragma unroll
  for (int i = 0; i < ITEMS; ++i) {
    const int rank = threadIdx.x * ITEMS + i;
    if (rank < n) order[b * n + rank] = pos[i];
  }
}

// One block per batch row: everything the merge needs from the order.
template <typename CountT, typename AssignT>
__global__ void assign_kernel(const int64_t* __restrict__ order, const int64_t* __restrict__ node_index,
                              int64_t n, int64_t num_dst, int64_t r, int64_t* __restrict__ src_to_dst,
                              int64_t* __restrict__ map, CountT* __restrict__ counts,
                              AssignT* __restrict__ assign) {
  extern __shared__ int joined[];  // sources per destination
  const int64_t b = blockIdx.x;
  for (int j = threadIdx.x; j < num_dst; j += blockDim.x) joined[j] = 0;
  __syncthreads();
  const int64_t num_unmerged = n - num_dst - r;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
    const int64_t pos = order[b * n + k];
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

// out row (b, k) = x row (b, map[b, k]): unmerging, a copy of whole rows.
template <typename V>
__global__ void rows_by_map_kernel(const V* __restrict__ x, const int64_t* __restrict__ map,
                                   int64_t n, int64_t rows_in, int64_t units, V* __restrict__ out,
                                   int64_t total) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    const int64_t u = e % units, row = e / units;  // row = b * n + k
    const int64_t b = row / n;
    out[e] = x[(b * rows_in + map[row]) * units + u];
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

// Items per thread of the sort for n tokens (1024 threads), or 0 above 16384.
int sort_items(int64_t n) {
  for (int items = 1; items <= 16; items *= 2) {
    if (n <= static_cast<int64_t>(kSortThreads) * items) return items;
  }
  return 0;
}

template <typename K>
size_t sort_shared_bytes(int items, int64_t n) {
  size_t temp = 0;
  switch (items) {
    case 1: temp = sizeof(typename BlockSort<K, 1>::TempStorage); break;
    case 2: temp = sizeof(typename BlockSort<K, 2>::TempStorage); break;
    case 4: temp = sizeof(typename BlockSort<K, 4>::TempStorage); break;
    case 8: temp = sizeof(typename BlockSort<K, 8>::TempStorage); break;
    case 16: temp = sizeof(typename BlockSort<K, 16>::TempStorage); break;
    default: return 0;
  }
  return temp + static_cast<size_t>(n);
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

template <typename K, int ITEMS>
const char* launch_sort(const void* keys, const int64_t* dst_pos, int64_t batch, int64_t n,
                        int64_t num_dst, int64_t* order, cudaStream_t stream) {
  auto* kernel = sort_kernel<K, ITEMS>;
  // Raised once, before any graph capture (the first run of a setting is eager).
  static const cudaError_t raised = cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, max_shared_optin());
  if (raised != cudaSuccess) return cudaGetErrorString(raised);
  kernel<<<static_cast<unsigned>(batch), kSortThreads, sort_shared_bytes<K>(ITEMS, n), stream>>>(
      static_cast<const K*>(keys), dst_pos, n, num_dst, order);
  return last_error();
}

template <typename K>
const char* sort_by_items(const void* keys, const int64_t* dst_pos, int64_t batch, int64_t n,
                          int64_t num_dst, int64_t* order, cudaStream_t stream) {
  switch (sort_items(n)) {
    case 1: return launch_sort<K, 1>(keys, dst_pos, batch, n, num_dst, order, stream);
    case 2: return launch_sort<K, 2>(keys, dst_pos, batch, n, num_dst, order, stream);
    case 4: return launch_sort<K, 4>(keys, dst_pos, batch, n, num_dst, order, stream);
    case 8: return launch_sort<K, 8>(keys, dst_pos, batch, n, num_dst, order, stream);
    case 16: return launch_sort<K, 16>(keys, dst_pos, batch, n, num_dst, order, stream);
  }
  return "tome_kernels::order_tokens: too many tokens";
}

template <typename CountT, typename AssignT>
const char* launch_assign(const int64_t* order, const int64_t* node_index, int64_t batch, int64_t n,
                          int64_t num_dst, int64_t r, int64_t* src_to_dst, int64_t* map, void* counts,
                          void* assign, cudaStream_t stream) {
  assign_kernel<CountT, AssignT><<<static_cast<unsigned>(batch), 1024, num_dst * sizeof(int), stream>>>(
      order, node_index, n, num_dst, r, src_to_dst, map, static_cast<CountT*>(counts),
      static_cast<AssignT*>(assign));
  return last_error();
}

template <typename CountT>
const char* assign_by_dtype(Dtype assign_dtype, const int64_t* order, const int64_t* node_index,
                            int64_t batch, int64_t n, int64_t num_dst, int64_t r, int64_t* src_to_dst,
                            int64_t* map, void* counts, void* assign, cudaStream_t stream) {
  switch (assign_dtype) {
    case Dtype::float16:
      return launch_assign<CountT, __half>(order, node_index, batch, n, num_dst, r, src_to_dst, map, counts,
                                           assign, stream);
    case Dtype::bfloat16:
      return launch_assign<CountT, __nv_bfloat16>(order, node_index, batch, n, num_dst, r, src_to_dst, map,
                                                  counts, assign, stream);
    case Dtype::float32:
      return launch_assign<CountT, float>(order, node_index, batch, n, num_dst, r, src_to_dst, map, counts,
                                          assign, stream);
    case Dtype::float64:
      return launch_assign<CountT, double>(order, node_index, batch, n, num_dst, r, src_to_dst, map, counts,
                                           assign, stream);
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
  const int items = sort_items(n);
  if (n <= 0 || items == 0 || num_dst * sizeof(int) > 48 * 1024) return false;
  const size_t bytes =
      float64_keys ? sort_shared_bytes<double>(items, n) : sort_shared_bytes<float>(items, n);
  return bytes <= static_cast<size_t>(max_shared_optin());
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
  const char* error = float64_keys ? sort_by_items<double>(keys, dst_pos, batch, n, num_dst, order, s)
                                   : sort_by_items<float>(keys, dst_pos, batch, n, num_dst, order, s);
  if (error != nullptr) return error;
  return counts64 ? assign_by_dtype<double>(assign_dtype, order, node_index, batch, n, num_dst, r, src_to_dst,
                                            map, counts, assign, s)
                  : assign_by_dtype<float>(assign_dtype, order, node_index, batch, n, num_dst, r, src_to_dst,
                                           map, counts, assign, s);
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

const char* rows_by_map(const void* x, Dtype dtype, const int64_t* map, int64_t batch,
                        int64_t rows_in, int64_t n, int64_t channels, void* out, void* stream) {
  const size_t row_bytes = static_cast<size_t>(channels) * element_size(dtype);
  auto s = static_cast<cudaStream_t>(stream);
  constexpr int kThreads = 256;
  const bool wide = row_bytes % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(out) % 16 == 0;
  const int64_t units = static_cast<int64_t>(wide ? row_bytes / 16 : row_bytes / 2);
  const int64_t total = batch * n * units;
  if (total == 0) return nullptr;
  if (wide) {
    rows_by_map_kernel<uint4><<<grid_for(total, kThreads), kThreads, 0, s>>>(
        static_cast<const uint4*>(x), map, n, rows_in, units, static_cast<uint4*>(out), total);
  } else {
    rows_by_map_kernel<uint16_t><<<grid_for(total, kThreads), kThreads, 0, s>>>(
        static_cast<const uint16_t*>(x), map, n, rows_in, units, static_cast<uint16_t*>(out), total);
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
