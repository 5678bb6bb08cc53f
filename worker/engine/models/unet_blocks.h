// The layers the UNet and the VAE decoder are assembled from (diffusers'
// ResnetBlock2D, Down/Upsample2D, Attention, BasicTransformerBlock, Transformer2DModel).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "worker/engine/core/nn.h"
#include "worker/engine/models/unet_hooks.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

// A resnet's input cat(h, skip) taken apart: norm1 (whose groups do not
// straddle the two), conv1 and the shortcut each as h's part plus skip's.
// Exact: a group's statistics involve only its own channels, and a
// convolution of a concatenation is the sum of its parts' convolutions.
struct ResnetInputSplit {
  int64_t h_channels = 0;
  GroupNorm norm1_h, norm1_skip;
  Conv2d conv1_h, conv1_skip;  // without conv1's bias (norm2 adds it)
  Conv2d shortcut_h;           // bias: the shortcut's plus conv2's
  Conv2d shortcut_skip;        // no bias
};

// norm1, SiLU, conv1, + time embedding, norm2, SiLU, conv2, + shortcut.
struct ResnetBlock2D {
  GroupNorm norm1, norm2;
  Conv2d conv1, conv2;
  Linear time_emb_proj;  // absent (weight undefined) in the VAE
  Conv2d conv_shortcut;  // 1x1, only when the channel count changes
  double output_scale_factor = 1.0;
  // Made by split_input for the one resnet a policy shares h's work of (the
  // parts are copies of weight slices, so not made for every resnet).
  std::shared_ptr<const ResnetInputSplit> input_split;

  // temb_channels 0: no time embedding (VAE).
  static ResnetBlock2D load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                            int64_t temb_channels, int64_t groups, double eps,
                            double output_scale_factor = 1.0);
  // temb_act: SiLU(time embedding) [B, temb_channels], computed once per
  // forward; undefined when the block has no time embedding.
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& temb_act) const;

  // Makes input_split for inputs cat(h, skip) with h_channels channels of h.
  // False (and nothing made) where norm1's groups straddle h and skip or the
  // block has no shortcut convolution.
  bool split_input(int64_t h_channels);
  // The same result as (*this)(cat(h, skip), temb_act), with h's share taken
  // from `share` when it is filled (and of this batch and size), else
  // computed and kept there. Needs input_split.
  at::Tensor forward_split(const at::Tensor& h, const at::Tensor& skip, const at::Tensor& temb_act,
                           ResnetInputShare& share) const;

 private:
  // norm2's per-channel add [B, C]: the time embedding's projection and
  // conv1's bias; undefined when there is neither.
  at::Tensor norm2_add(const at::Tensor& temb_act, int64_t batch) const;
};

// 3x3 conv with stride 2 (padding 1; padding 0 pads right and bottom first).
struct Downsample2D {
  Conv2d conv;
  static Downsample2D load(Weights& w, const std::string& prefix, int64_t channels,
                           int64_t padding);
  at::Tensor operator()(const at::Tensor& x) const;
};

// Nearest x2 (or to `size` when the skip shapes need it, odd inputs), then 3x3 conv.
struct Upsample2D {
  Conv2d conv;
  static Upsample2D load(Weights& w, const std::string& prefix, int64_t channels);
  at::Tensor operator()(const at::Tensor& x, const std::vector<int64_t>& size = {}) const;
};

// softmax(q k^T / sqrt(d)) v with the channels of [B, N, C] inputs split into
// `heads` heads as diffusers splits them; returns [B, N, C].
at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                int64_t heads, bool upcast);

// diffusers' Attention as the transformer blocks use it (to_q/k/v without bias).
struct Attention {
  Linear to_q, to_k, to_v, to_out;
  int64_t heads = 1;
  bool upcast = false;
  static Attention load(Weights& w, const std::string& prefix, int64_t query_dim,
                        int64_t context_dim, int64_t heads, bool upcast, bool qkv_bias = false);
  // context undefined: self-attention. Output after to_out, [B, N, C].
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& context) const;
};

// GEGLU feed-forward: proj to 2 * 4C, h * gelu(gate), back to C.
struct FeedForward {
  Linear proj, out;
  // proj's two halves (views of its weight): GEGLU's hidden units and gate,
  // each a contiguous product, so the GELU and the product run vectorized.
  Linear hidden, gate;
  static FeedForward load(Weights& w, const std::string& prefix, int64_t dim);
  at::Tensor operator()(const at::Tensor& x) const;
};

struct BasicTransformerBlock {
  LayerNorm norm1, norm2, norm3;
  Attention attn1, attn2;
  FeedForward ff;
  static BasicTransformerBlock load(Weights& w, const std::string& prefix, int64_t dim,
                                    int64_t context_dim, int64_t heads, bool upcast);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context, UNetHooks* hooks,
                     const TransformerLocation& where, int64_t height, int64_t width) const;
};

// GroupNorm (eps 1e-6), proj_in (1x1 conv or linear), transformer blocks,
// proj_out, + input.
struct Transformer2D {
  GroupNorm norm;
  bool linear_projection = false;
  Linear proj_in_linear, proj_out_linear;
  Conv2d proj_in_conv, proj_out_conv;
  // The 1x1 convolutions as [C, C] products (views of their weights): with
  // NHWC activations the tokens are already contiguous rows.
  Linear proj_in_rows, proj_out_rows;
  std::vector<BasicTransformerBlock> blocks;

  static Transformer2D load(Weights& w, const std::string& prefix, int64_t channels,
                            int64_t heads, int64_t context_dim, int64_t depth, int64_t groups,
                            bool linear_projection, bool upcast);
  // where: this Transformer2DModel's location (module UNetModule::attention).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context, UNetHooks* hooks,
                     const UNetLocation& where) const;
};

}  // namespace diffsearch::engine
