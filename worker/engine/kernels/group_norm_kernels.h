// GroupNorm over channels-last (NHWC) activations as three CUDA kernels
// (group_norm_kernels.cu, built with -DDIFFSEARCH_CUDA_KERNELS=ON), with the
// resnet's per-channel time-embedding add folded in before it and SiLU after
// it. At the UNet's sizes each ATen kernel costs about as much as a pass over
// the activation, and the unfused norm, add and SiLU take about 15 of them.
//
// Plain types only, so that this header and the .cu see no Torch header:
// every pointer is device memory, `stream` is a cudaStream_t, and each call
// returns nullptr or a description of the CUDA error it met.
#pragma once

#include <cstdint>

#include "worker/engine/kernels/kernel_dtype.h"

namespace diffsearch::engine::group_norm_kernels {

using Dtype = kernels::Dtype;

// Whether group_norm_nhwc() takes this shape: channels a multiple of 16
// bytes' worth of elements and of `groups`, and few enough for one block.
bool fits(int64_t channels, int64_t groups, Dtype dtype);

// Elements of the accumulation type (float32, float64 for float64) that
// group_norm_nhwc() needs as `workspace` for this shape.
int64_t workspace_elements(int64_t batch, int64_t pixels, int64_t channels, Dtype dtype);

struct Params {
  const void* x = nullptr;  // [batch, pixels, channels], `dtype`, 16-byte aligned
  Dtype dtype = Dtype::float32;
  int64_t batch = 0, pixels = 0, channels = 0, groups = 0;
  double eps = 1e-5;
  const void* weight = nullptr;       // [channels] in the accumulation type, or null
  const void* bias = nullptr;         // [channels] in the accumulation type, or null
  const void* channel_add = nullptr;  // [batch, channels] in `dtype`, added to x first, or null
  bool silu = false;                  // y = silu(norm(x)) instead of norm(x)
  void* out = nullptr;                // like x
  void* workspace = nullptr;          // workspace_elements() of the accumulation type
};

// y = norm(x + channel_add) [then SiLU]: per-channel sums and squares of x
// less each channel's first value (so that a mean far from zero keeps its
// variance), the group statistics in float64, then one multiply-add (and
// SiLU) in the accumulation type, rounded once. Deterministic: no atomics.
const char* group_norm_nhwc(const Params& p, void* stream);

}  // namespace diffsearch::engine::group_norm_kernels
