// GEGLU's gate as one CUDA kernel (geglu_kernels.cu): out = hidden *
// gelu(gate), read straight from the feed-forward projection's output,
// whose rows hold [hidden | gate]. ATen takes two kernels and five passes
// over the activation for it (GELU writes a temporary, the product reads it
// back beside the hidden half): at batch 8 they were 6.8% of SD1.5's UNet
// time, memory-bound (docs/engine-gpu.md). The kernel takes three.
//
// Plain types only, so that this header and the .cu see no Torch header:
// every pointer is device memory, `stream` is a cudaStream_t, and the call
// returns nullptr or a description of the CUDA error it met.
#pragma once

#include <cstdint>

#include "worker/engine/kernels/kernel_dtype.h"

namespace diffsearch::engine::geglu_kernels {

using Dtype = kernels::Dtype;

// Whether geglu() takes rows of `width` output elements: whole 16-byte
// vectors (8 halves, 4 floats, 2 doubles).
bool fits(int64_t width, Dtype dtype);

struct Params {
  const void* projected = nullptr;  // [rows, 2 * width]: hidden, then gate; 16-byte aligned
  void* out = nullptr;              // [rows, width], contiguous, 16-byte aligned
  int64_t rows = 0, width = 0;
  Dtype dtype = Dtype::float32;
};

// out = hidden * gelu(gate) with the exact (erf) GELU, computed in float
// (double for double) and rounded once.
const char* geglu(const Params& p, void* stream);

}  // namespace diffsearch::engine::geglu_kernels
