// The layers every model is built from (linear, conv, norms), loaded by name
// from Weights, and the multiply-accumulate counter they all report to.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

// Multiply-accumulates of the modules actually executed, summed over every
// layer call on this thread (policies that skip work show up as fewer MACs).
namespace macs {
void add(int64_t count);
int64_t total();
void reset();
}  // namespace macs

struct Linear {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  at::Tensor operator()(const at::Tensor& x) const;
  static Linear load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                     bool bias = true);
};

struct Conv2d {
  at::Tensor weight;  // [out, in, k, k]
  at::Tensor bias;    // [out] or undefined
  int64_t stride = 1;
  int64_t padding = 0;
  // The model's output channels where the weight carries zero padding
  // (pad_output_channels); 0: all of weight's.
  int64_t out_channels = 0;
  // with_bias false: the caller adds the bias itself (folded into a later
  // per-channel add; on CUDA, cuDNN adds it in a pass of its own).
  at::Tensor operator()(const at::Tensor& x, bool with_bias = true) const;
  // Zero-pads weight and bias to a multiple of `multiple` output channels;
  // operator() still returns (and counts MACs of) only the model's. For the
  // thin NHWC output convolutions (4 or 3 channels): cuDNN's tensor-core
  // kernels want multiples of 8, and otherwise pad the operands themselves
  // in kernels of their own on every call.
  void pad_output_channels(int64_t multiple);
  static Conv2d load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                     int64_t kernel, int64_t stride = 1, int64_t padding = 0, bool bias = true);
};

struct GroupNorm {
  at::Tensor weight, bias;
  at::Tensor weight_acc, bias_acc;  // CUDA: in float32 (float64 for float64), or undefined
  int64_t groups = 32;
  double eps = 1e-5;
  // On CUDA the engine's NHWC kernel (group_norm_kernels.h) where built and
  // the layout allows, else group_norm_reduced; elsewhere at::group_norm.
  at::Tensor operator()(const at::Tensor& x) const;
  // silu(norm(x + channel_add[:, :, None, None])), channel_add [B, C] or
  // undefined: a resnet's time embedding and conv bias, its norm and its
  // activation, in one pass on CUDA where the kernel takes them.
  at::Tensor silu(const at::Tensor& x, const at::Tensor& channel_add = {}) const;
  static GroupNorm load(Weights& w, const std::string& prefix, int64_t groups, int64_t channels,
                        double eps);

 private:
  at::Tensor apply(const at::Tensor& x, const at::Tensor& channel_add, bool silu) const;
};

// Whether GroupNorm uses the engine's NHWC kernel for tensors on `device`:
// built (cuda_kernels_built()), CUDA, and not turned off with
// DIFFSEARCH_NORM_KERNELS=0 (anything but 0 or 1 is an InputError).
bool norm_kernels_enabled(const c10::Device& device);

// GEGLU's gate, hidden * gelu(gate), of rows [hidden | gate] (`projected`,
// last dimension 2 * width) in one CUDA kernel (geglu_kernels.h): where
// built, on CUDA, switched on (DIFFSEARCH_GEGLU_KERNELS=1: opt-in until it
// has been measured on a GPU) and for widths of whole 16-byte vectors.
// Undefined where it does not take x: the caller computes the same with ATen.
bool geglu_kernels_enabled(const c10::Device& device);
bool geglu_kernel_takes(const at::Tensor& x, int64_t width);
at::Tensor geglu_kernel(const at::Tensor& projected);

// GroupNorm from per-channel float sums and norms, then one multiply-add:
// keeps any memory layout and fills the GPU with few large groups (see
// nn.cc). Any device; the engine uses it on CUDA.
at::Tensor group_norm_reduced(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                              const at::Tensor& bias, double eps);

struct LayerNorm {
  at::Tensor weight, bias;
  double eps = 1e-5;
  at::Tensor operator()(const at::Tensor& x) const;
  static LayerNorm load(Weights& w, const std::string& prefix, int64_t dim, double eps);
};

// softmax(q k^T * scale) v over [batch, heads, tokens, head_dim], counted in
// macs. Uses the fused kernel where libtorch has it (2.x) and the inputs allow.
at::Tensor scaled_dot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                double scale, bool upcast = false);

}  // namespace diffsearch::engine
