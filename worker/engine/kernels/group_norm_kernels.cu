// GroupNorm over NHWC activations in three kernels (see group_norm_kernels.h).
// Built where DIFFSEARCH_CUDA_KERNELS allows (CMakeLists.txt); nn.cc falls back to
// group_norm_reduced otherwise.
#include "worker/engine/kernels/group_norm_kernels.h"

#include <cmath>
#include <type_traits>

#include "worker/engine/kernels/kernel_common.cuh"

namespace diffsearch::engine::group_norm_kernels {
namespace {

using kernels::element_size;
using kernels::from_acc;
using kernels::grid_for;
using kernels::last_error;
using kernels::Pack;
using kernels::to_acc;

constexpr int kThreads = 256;
// Blocks of the first kernel per call, about two per multiprocessor of an
// H100/H200. A constant rather than the device's count, so that the order of
// the sums (and so every bit of the result) is the same on any GPU.
constexpr int64_t kMomentBlocks = 256;
constexpr size_t kMaxShared = 48 * 1024;

// How the first kernel splits the pixels: each block reads rows_per_chunk
// pixel rows of one sample, rows_per_pass at a time (one row per group of
// `lanes` threads, each thread VEC channels).
struct Layout {
  int vec = 1, lanes = 1, rows_per_pass = 1, threads = 1;
  int64_t chunks = 1, rows_per_chunk = 1;
  size_t shared_bytes = 0;
};

size_t acc_size(Dtype dtype) { return dtype == Dtype::float64 ? sizeof(double) : sizeof(float); }

Layout layout_for(int64_t batch, int64_t pixels, int64_t channels, Dtype dtype) {
  Layout l;
  l.vec = static_cast<int>(16 / element_size(dtype));
  l.lanes = static_cast<int>(channels / l.vec);
  l.rows_per_pass = l.lanes >= kThreads ? 1 : kThreads / l.lanes;
  l.threads = l.lanes * l.rows_per_pass;
  const int64_t passes = (pixels + l.rows_per_pass - 1) / l.rows_per_pass;
  const int64_t wanted = (kMomentBlocks + batch - 1) / batch;
  l.chunks = wanted < passes ? wanted : passes;
  if (l.chunks < 1) l.chunks = 1;
  l.rows_per_chunk = (pixels + l.chunks - 1) / l.chunks;
  l.chunks = pixels > 0 ? (pixels + l.rows_per_chunk - 1) / l.rows_per_chunk : 1;
  l.shared_bytes = static_cast<size_t>(l.rows_per_pass) * 2 * channels * acc_size(dtype);
  return l;
}

// Block (chunk, b): the sums and sums of squares of each channel over its
// pixel rows, less the channel's value at the first pixel, written to
// partial[b][chunk][2][channels].
template <typename T, typename A, int VEC>
__global__ void channel_moments_kernel(const T* __restrict__ x, int64_t pixels, int channels,
                                       int64_t rows_per_chunk, A* __restrict__ partial) {
  extern __shared__ unsigned char shared[];
  A* rows = reinterpret_cast<A*>(shared);  // [rows_per_pass][2][channels]
  const int lanes = channels / VEC;
  const int rows_per_pass = blockDim.x / lanes;
  const int lane = threadIdx.x % lanes, row = threadIdx.x / lanes;
  const int64_t b = blockIdx.y, chunk = blockIdx.x;
  const int64_t begin = chunk * rows_per_chunk;
  const int64_t end = begin + rows_per_chunk < pixels ? begin + rows_per_chunk : pixels;
  A sum[VEC], square[VEC], origin[VEC];
  const T* base = x + b * pixels * channels + lane * VEC;
  // Sums of x - x[first pixel], so that a channel whose mean is far from
  // zero keeps its variance (the float sums of x^2 would round it away).
  const Pack<T, VEC> first = *reinterpret_cast<const Pack<T, VEC>*>(base);
#pragma unroll
  for (int v = 0; v < VEC; ++v) {
    sum[v] = square[v] = A(0);
    origin[v] = to_acc<A>(first.v[v]);
  }
  for (int64_t r = begin + row; r < end; r += rows_per_pass) {
    const Pack<T, VEC> p = *reinterpret_cast<const Pack<T, VEC>*>(base + r * channels);
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      const A a = to_acc<A>(p.v[v]) - origin[v];
      sum[v] += a;
      square[v] += a * a;
    }
  }
  A* mine = rows + static_cast<int64_t>(row) * 2 * channels + lane * VEC;
#pragma unroll
  for (int v = 0; v < VEC; ++v) {
    mine[v] = sum[v];
    mine[channels + v] = square[v];
  }
  __syncthreads();
  A* out = partial + (b * gridDim.x + chunk) * 2 * channels;
  for (int c = threadIdx.x; c < channels; c += blockDim.x) {
    A s = A(0), q = A(0);
    for (int r = 0; r < rows_per_pass; ++r) {
      s += rows[r * 2 * channels + c];
      q += rows[r * 2 * channels + channels + c];
    }
    out[c] = s;
    out[channels + c] = q;
  }
}

template <typename T> __device__ __forceinline__ double to_double(T v) { return to_acc<double>(v); }

// Block (g, b): group g's mean and variance from the partial sums (in
// float64), then each of its channels' scale and shift, so that
// y = x * scale + shift = (x + add - mean) * rstd * weight + bias.
template <typename T, typename A>
__global__ void group_scale_shift_kernel(const T* __restrict__ x, const A* __restrict__ partial,
                                         int64_t chunks, int64_t pixels, int channels, int groups, double eps,
                                         const A* __restrict__ weight, const A* __restrict__ bias,
                                         const T* __restrict__ channel_add, A* __restrict__ scale,
                                         A* __restrict__ shift) {
  __shared__ double reduce_sum[kThreads / 32], reduce_square[kThreads / 32];
  __shared__ double mean_rstd[2];
  const int g = blockIdx.x;
  const int64_t b = blockIdx.y;
  const int per_group = channels / groups, first = g * per_group;
  const double n = static_cast<double>(pixels);
  // Channel c's partial sums are of d = x - x0[c] (its first pixel); the
  // norm's input is x + add. Moments are taken about o = the group's first
  // channel's x0 + add, so that they too stay small:
  // x + add - o = d + u with u = x0[c] + add[c] - o, and
  // sum (d + u)^2 = sum d^2 + 2 u sum d + n u^2, chunk by chunk.
  auto origin = [&](int c) {
    double v = to_double(x[b * pixels * channels + c]);
    if (channel_add != nullptr) v += to_double(channel_add[b * channels + c]);
    return v;
  };
  const double o = origin(first);
  double s = 0.0, q = 0.0;
  for (int64_t i = threadIdx.x; i < chunks * per_group; i += blockDim.x) {
    const int64_t k = i / per_group;
    const int c = first + static_cast<int>(i % per_group);
    const A* p = partial + (b * chunks + k) * 2 * channels;
    const double ps = p[c], pq = p[channels + c];
    const double u = origin(c) - o;
    q += pq + 2.0 * u * ps + (k == 0 ? n * u * u : 0.0);
    s += ps + (k == 0 ? n * u : 0.0);
  }
  for (int offset = 16; offset > 0; offset >>= 1) {
    s += __shfl_down_sync(0xffffffffu, s, offset);
    q += __shfl_down_sync(0xffffffffu, q, offset);
  }
  if (threadIdx.x % 32 == 0) {
    reduce_sum[threadIdx.x / 32] = s;
    reduce_square[threadIdx.x / 32] = q;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0.0, total_square = 0.0;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) {
      total += reduce_sum[w];
      total_square += reduce_square[w];
    }
    const double count = n * per_group;
    const double shifted_mean = total / count;
    const double var = total_square / count - shifted_mean * shifted_mean;
    mean_rstd[0] = o + shifted_mean;
    mean_rstd[1] = 1.0 / sqrt((var > 0.0 ? var : 0.0) + eps);
  }
  __syncthreads();
  const double mean = mean_rstd[0], rstd = mean_rstd[1];
  for (int j = threadIdx.x; j < per_group; j += blockDim.x) {
    const int c = first + j;
    const double sc = rstd * (weight != nullptr ? static_cast<double>(weight[c]) : 1.0);
    double sh = (bias != nullptr ? static_cast<double>(bias[c]) : 0.0) - mean * sc;
    if (channel_add != nullptr) sh += to_double(channel_add[b * channels + c]) * sc;
    scale[b * channels + c] = static_cast<A>(sc);
    shift[b * channels + c] = static_cast<A>(sh);
  }
}

// y = x * scale + shift [then SiLU], in A, rounded once.
template <typename T, typename A, int VEC, bool SILU>
__global__ void scale_shift_kernel(const T* __restrict__ x, const A* __restrict__ scale,
                                   const A* __restrict__ shift, int64_t pixels, int channels,
                                   int64_t vectors, T* __restrict__ out) {
  const int lanes = channels / VEC;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < vectors; i += stride) {
    const int lane = static_cast<int>(i % lanes);
    const int64_t b = i / (pixels * lanes);
    const Pack<T, VEC> p = reinterpret_cast<const Pack<T, VEC>*>(x)[i];
    const Pack<A, VEC> sc = *reinterpret_cast<const Pack<A, VEC>*>(scale + b * channels + lane * VEC);
    const Pack<A, VEC> sh = *reinterpret_cast<const Pack<A, VEC>*>(shift + b * channels + lane * VEC);
    Pack<T, VEC> o;
#pragma unroll
    for (int v = 0; v < VEC; ++v) {
      A y = to_acc<A>(p.v[v]) * sc.v[v] + sh.v[v];
      if (SILU) y = y / (A(1) + exp(-y));
      o.v[v] = from_acc<T>(y);
    }
    reinterpret_cast<Pack<T, VEC>*>(out)[i] = o;
  }
}

template <typename T>
const char* launch(const Params& p, cudaStream_t stream) {
  using A = std::conditional_t<std::is_same<T, double>::value, double, float>;
  constexpr int VEC = 16 / sizeof(T);
  const Layout l = layout_for(p.batch, p.pixels, p.channels, p.dtype);
  A* partial = static_cast<A*>(p.workspace);
  A* scale = partial + p.batch * l.chunks * 2 * p.channels;
  A* shift = scale + p.batch * p.channels;
  const int channels = static_cast<int>(p.channels), groups = static_cast<int>(p.groups);
  const T* x = static_cast<const T*>(p.x);
  const dim3 moment_grid(static_cast<unsigned>(l.chunks), static_cast<unsigned>(p.batch));
  channel_moments_kernel<T, A, VEC><<<moment_grid, l.threads, l.shared_bytes, stream>>>(
      x, p.pixels, channels, l.rows_per_chunk, partial);
  const dim3 group_grid(static_cast<unsigned>(groups), static_cast<unsigned>(p.batch));
  group_scale_shift_kernel<T, A><<<group_grid, kThreads, 0, stream>>>(
      x, partial, l.chunks, p.pixels, channels, groups, p.eps, static_cast<const A*>(p.weight),
      static_cast<const A*>(p.bias), static_cast<const T*>(p.channel_add), scale, shift);
  const int64_t vectors = p.batch * p.pixels * (p.channels / VEC);
  auto* apply = p.silu ? scale_shift_kernel<T, A, VEC, true> : scale_shift_kernel<T, A, VEC, false>;
  apply<<<grid_for(vectors, kThreads), kThreads, 0, stream>>>(x, scale, shift, p.pixels, channels, vectors,
                                                              static_cast<T*>(p.out));
  return last_error();
}

}  // namespace

bool fits(int64_t channels, int64_t groups, Dtype dtype) {
  const int64_t vec = static_cast<int64_t>(16 / element_size(dtype));
  if (channels <= 0 || groups <= 0 || channels % groups != 0 || channels % vec != 0) return false;
  if (channels / vec > 1024 || groups > 65535) return false;
  // The first kernel's shared rows (at most one pass of 256 threads' worth).
  const int64_t lanes = channels / vec;
  const int64_t rows_per_pass = lanes >= kThreads ? 1 : kThreads / lanes;
  return static_cast<size_t>(rows_per_pass * 2 * channels) * acc_size(dtype) <= kMaxShared;
}

int64_t workspace_elements(int64_t batch, int64_t pixels, int64_t channels, Dtype dtype) {
  const Layout l = layout_for(batch, pixels, channels, dtype);
  return batch * l.chunks * 2 * channels + 2 * batch * channels;
}

const char* group_norm_nhwc(const Params& p, void* stream) {
  if (p.batch == 0 || p.pixels == 0) return nullptr;
  if (!fits(p.channels, p.groups, p.dtype)) return "group_norm_kernels: shape not supported (check fits())";
  if (reinterpret_cast<uintptr_t>(p.x) % 16 != 0 || reinterpret_cast<uintptr_t>(p.out) % 16 != 0) {
    return "group_norm_kernels: x and out must be 16-byte aligned";
  }
  if (p.batch > 65535) return "group_norm_kernels: batch above 65535";
  auto s = static_cast<cudaStream_t>(stream);
  switch (p.dtype) {
    case Dtype::float16:
      return launch<__half>(p, s);
    case Dtype::bfloat16:
      return launch<__nv_bfloat16>(p, s);
    case Dtype::float32:
      return launch<float>(p, s);
    case Dtype::float64:
      return launch<double>(p, s);
  }
  return "group_norm_kernels: unknown dtype";
}

}  // namespace diffsearch::engine::group_norm_kernels
