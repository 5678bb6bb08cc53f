// The element types the engine's own CUDA kernels take (tome_kernels.h,
// group_norm_kernels.h). A plain enum, so that kernel headers and .cu files
// see no Torch header.
#pragma once

namespace diffsearch::engine::kernels {

enum class Dtype { float16, bfloat16, float32, float64 };

}  // namespace diffsearch::engine::kernels
