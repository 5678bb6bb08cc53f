// Loading and forward passes of the UNet's and VAE's building blocks, in the
// operation order of diffusers so that float64 results agree to rounding.
#include "worker/engine/models/unet_blocks.h"

#include <cmath>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/core/profile_scope.h"

namespace diffsearch::engine {

ResnetBlock2D ResnetBlock2D::load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                                  int64_t temb_channels, int64_t groups, double eps,
                                  double output_scale_factor) {
  ResnetBlock2D r;
  r.norm1 = GroupNorm::load(w, prefix + ".norm1", groups, in, eps);
  r.conv1 = Conv2d::load(w, prefix + ".conv1", in, out, 3, 1, 1);
  if (temb_channels > 0) r.time_emb_proj = Linear::load(w, prefix + ".time_emb_proj", temb_channels, out);
  r.norm2 = GroupNorm::load(w, prefix + ".norm2", groups, out, eps);
  r.conv2 = Conv2d::load(w, prefix + ".conv2", out, out, 3, 1, 1);
  if (in != out) r.conv_shortcut = Conv2d::load(w, prefix + ".conv_shortcut", in, out, 1);
  r.output_scale_factor = output_scale_factor;
  return r;
}

at::Tensor ResnetBlock2D::norm2_add(const at::Tensor& temb_act, int64_t batch) const {
  at::Tensor add;
  if (time_emb_proj.weight.defined() && temb_act.defined()) add = time_emb_proj(temb_act);
  if (conv1.bias.defined()) {
    add = add.defined() ? add + conv1.bias : conv1.bias.unsqueeze(0).expand({batch, -1});
  }
  return add;
}

at::Tensor ResnetBlock2D::operator()(const at::Tensor& x, const at::Tensor& temb_act) const {
  ProfileScope scope("resnet");
  // conv1's bias and the time embedding are both per-channel adds before
  // norm2, which folds them in: on CUDA cuDNN would add the bias in a strided
  // pass of its own over the NHWC output, and the time embedding in another.
  at::Tensor h = conv1(norm1.silu(x), /*with_bias=*/false);
  h = conv2(norm2.silu(h, norm2_add(temb_act, h.size(0))));
  at::Tensor out = (conv_shortcut.weight.defined() ? conv_shortcut(x) : x) + h;
  if (output_scale_factor != 1.0) out = out / output_scale_factor;
  return out;
}

namespace {

GroupNorm group_norm_part(const GroupNorm& whole, int64_t begin, int64_t end) {
  const int64_t per_group = whole.weight.size(0) / whole.groups;
  GroupNorm part = whole;
  part.groups = (end - begin) / per_group;
  part.weight = whole.weight.slice(0, begin, end).contiguous();
  part.bias = whole.bias.slice(0, begin, end).contiguous();
  if (whole.weight_acc.defined()) {
    part.weight_acc = whole.weight_acc.slice(0, begin, end).contiguous();
    part.bias_acc = whole.bias_acc.slice(0, begin, end).contiguous();
  }
  return part;
}

// Input channels [begin, end) of a convolution, laid out as its weight is.
Conv2d conv_input_part(const Conv2d& whole, int64_t begin, int64_t end, const at::Tensor& bias) {
  Conv2d part = whole;
  part.weight = whole.weight.slice(1, begin, end).contiguous(whole.weight.suggest_memory_format());
  part.bias = bias;
  return part;
}

// conv(x) + addend for a 1x1 convolution: on NHWC activations one matrix
// product that takes the addend as its C operand, else a convolution and an add.
at::Tensor pointwise_conv_add(const Conv2d& conv, const at::Tensor& x, const at::Tensor& addend) {
  const auto nhwc = at::MemoryFormat::ChannelsLast;
  const int64_t out_channels = conv.weight.size(0), in_channels = conv.weight.size(1);
  if (x.dim() == 4 && conv.stride == 1 && conv.padding == 0 && conv.weight.size(2) == 1 &&
      conv.weight.size(3) == 1 && x.is_contiguous(nhwc) && addend.is_contiguous(nhwc) &&
      addend.size(1) == out_channels) {
    const int64_t rows = x.size(0) * x.size(2) * x.size(3);
    macs::add(rows * out_channels * in_channels);
    at::Tensor product = at::addmm(addend.permute({0, 2, 3, 1}).reshape({rows, out_channels}),
                                   x.permute({0, 2, 3, 1}).reshape({rows, in_channels}),
                                   conv.weight.reshape({out_channels, in_channels}).t());
    return product.view({x.size(0), x.size(2), x.size(3), out_channels}).permute({0, 3, 1, 2});
  }
  return conv(x, /*with_bias=*/false) + addend;
}

}  // namespace

bool ResnetBlock2D::split_input(int64_t h_channels) {
  const int64_t channels = norm1.weight.size(0);
  const int64_t per_group = channels / norm1.groups;
  if (h_channels <= 0 || h_channels >= channels || h_channels % per_group != 0 ||
      !conv_shortcut.weight.defined() || conv_shortcut.weight.size(2) != 1 ||
      conv_shortcut.weight.size(3) != 1) {
    return false;
  }
  auto split = std::make_shared<ResnetInputSplit>();
  split->h_channels = h_channels;
  split->norm1_h = group_norm_part(norm1, 0, h_channels);
  split->norm1_skip = group_norm_part(norm1, h_channels, channels);
  split->conv1_h = conv_input_part(conv1, 0, h_channels, {});
  split->conv1_skip = conv_input_part(conv1, h_channels, channels, {});
  at::Tensor residual_bias = conv_shortcut.bias;
  if (conv2.bias.defined()) {
    residual_bias = residual_bias.defined() ? residual_bias + conv2.bias : conv2.bias;
  }
  split->shortcut_h = conv_input_part(conv_shortcut, 0, h_channels, residual_bias);
  split->shortcut_skip = conv_input_part(conv_shortcut, h_channels, channels, {});
  input_split = std::move(split);
  return true;
}

at::Tensor ResnetBlock2D::forward_split(const at::Tensor& h, const at::Tensor& skip,
                                        const at::Tensor& temb_act, ResnetInputShare& share) const {
  ProfileScope scope("resnet");
  DIFFSEARCH_ASSERT(input_split != nullptr);
  const ResnetInputSplit& s = *input_split;
  DIFFSEARCH_ASSERT(h.size(1) == s.h_channels);
  const bool fits = share.filled() && share.conv1.size(0) == skip.size(0) &&
                    share.conv1.size(2) == skip.size(2) && share.conv1.size(3) == skip.size(3);
  if (!fits) {
    share.conv1 = s.conv1_h(s.norm1_h.silu(h));
    share.residual = s.shortcut_h(h);
  }
  at::Tensor h1 = s.conv1_skip(s.norm1_skip.silu(skip)) + share.conv1;
  h1 = conv2(norm2.silu(h1, norm2_add(temb_act, h1.size(0))), /*with_bias=*/false);
  at::Tensor out = pointwise_conv_add(s.shortcut_skip, skip, share.residual) + h1;
  if (output_scale_factor != 1.0) out = out / output_scale_factor;
  return out;
}

Downsample2D Downsample2D::load(Weights& w, const std::string& prefix, int64_t channels,
                                int64_t padding) {
  Downsample2D d;
  d.conv = Conv2d::load(w, prefix + ".conv", channels, channels, 3, 2, padding);
  return d;
}

at::Tensor Downsample2D::operator()(const at::Tensor& x) const {
  ProfileScope scope("downsample");
  if (conv.padding == 0) return conv(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));
  return conv(x);
}

Upsample2D Upsample2D::load(Weights& w, const std::string& prefix, int64_t channels) {
  Upsample2D u;
  u.conv = Conv2d::load(w, prefix + ".conv", channels, channels, 3, 1, 1);
  return u;
}

at::Tensor Upsample2D::operator()(const at::Tensor& x, const std::vector<int64_t>& size) const {
  ProfileScope scope("upsample");
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (size.empty()) {
    options.scale_factor(std::vector<double>{2.0, 2.0});
  } else {
    options.size(size);
  }
  return conv(F::interpolate(x, options));
}

at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                int64_t heads, bool upcast) {
  const int64_t batch = q.size(0);
  const int64_t channels = q.size(2);
  const int64_t head_dim = channels / heads;
  auto split = [&](const at::Tensor& t) {
    return t.reshape({batch, t.size(1), heads, head_dim}).transpose(1, 2);
  };
  ProfileScope scope("sdpa");
  at::Tensor out = scaled_dot_attention(split(q), split(k), split(v),
                                        1.0 / std::sqrt(static_cast<double>(head_dim)), upcast);
  return out.transpose(1, 2).reshape({batch, -1, channels});
}

Attention Attention::load(Weights& w, const std::string& prefix, int64_t query_dim,
                          int64_t context_dim, int64_t heads, bool upcast, bool qkv_bias) {
  Attention a;
  a.to_q = Linear::load(w, prefix + ".to_q", query_dim, query_dim, qkv_bias);
  a.to_k = Linear::load(w, prefix + ".to_k", context_dim, query_dim, qkv_bias);
  a.to_v = Linear::load(w, prefix + ".to_v", context_dim, query_dim, qkv_bias);
  a.to_out = Linear::load(w, prefix + ".to_out.0", query_dim, query_dim);
  a.heads = heads;
  a.upcast = upcast;
  return a;
}

at::Tensor Attention::operator()(const at::Tensor& x, const at::Tensor& context) const {
  const at::Tensor& kv = context.defined() ? context : x;
  return to_out(multi_head_attention(to_q(x), to_k(kv), to_v(kv), heads, upcast));
}

FeedForward FeedForward::load(Weights& w, const std::string& prefix, int64_t dim) {
  FeedForward f;
  f.proj = Linear::load(w, prefix + ".net.0.proj", dim, 8 * dim);
  f.out = Linear::load(w, prefix + ".net.2", 4 * dim, dim);
  f.hidden = {f.proj.weight.narrow(0, 0, 4 * dim), f.proj.bias.narrow(0, 0, 4 * dim)};
  f.gate = {f.proj.weight.narrow(0, 4 * dim, 4 * dim), f.proj.bias.narrow(0, 4 * dim, 4 * dim)};
  return f;
}

at::Tensor FeedForward::operator()(const at::Tensor& x) const {
  // diffusers' GEGLU: proj(x).chunk(2) = (hidden, gate), hidden * gelu(gate).
  if (geglu_kernel_takes(x, proj.weight.size(0) / 2)) {
    // One product, then the gate in one pass over it (geglu_kernels.h).
    at::Tensor gated = geglu_kernel(proj(x));
    DIFFSEARCH_ASSERT(gated.defined());
    return out(gated);
  }
  at::Tensor h = hidden(x);
  return out(h.mul_(at::gelu(gate(x))));
}

BasicTransformerBlock BasicTransformerBlock::load(Weights& w, const std::string& prefix,
                                                  int64_t dim, int64_t context_dim, int64_t heads,
                                                  bool upcast) {
  BasicTransformerBlock b;
  // Transformer2DModel's blocks keep LayerNorm's default eps whatever norm_eps says.
  b.norm1 = LayerNorm::load(w, prefix + ".norm1", dim, 1e-5);
  b.attn1 = Attention::load(w, prefix + ".attn1", dim, dim, heads, upcast);
  b.norm2 = LayerNorm::load(w, prefix + ".norm2", dim, 1e-5);
  b.attn2 = Attention::load(w, prefix + ".attn2", dim, context_dim, heads, upcast);
  b.norm3 = LayerNorm::load(w, prefix + ".norm3", dim, 1e-5);
  b.ff = FeedForward::load(w, prefix + ".ff", dim);
  return b;
}

namespace {

at::Tensor hooked_attention(const Attention& attn, const at::Tensor& x, const at::Tensor& context,
                            UNetHooks* hooks, const AttentionLocation& where) {
  at::Tensor out;
  if (hooks->reuse_attention(where, out)) return out;
  out = attn(x, context);
  hooks->attention_computed(where, out);
  return out;
}

}  // namespace

at::Tensor BasicTransformerBlock::forward(const at::Tensor& x, const at::Tensor& context,
                                          UNetHooks* hooks, const TransformerLocation& where,
                                          int64_t height, int64_t width) const {
  if (hooks == nullptr) {
    at::Tensor h;
    {
      ProfileScope scope("attn1");
      h = attn1(norm1(x), at::Tensor()) + x;
    }
    {
      ProfileScope scope("attn2");
      h = attn2(norm2(h), context) + h;
    }
    ProfileScope scope("ff");
    return ff(norm3(h)) + h;
  }
  {
    ProfileScope scope("transformer_begin");  // the hooks' per-block work (ToMe's matching)
    hooks->transformer_begin(where, x, height, width);
  }
  using S = TokenStage;
  at::Tensor h;
  {
    ProfileScope scope("attn1");
    at::Tensor n = hooks->merge_tokens(where, S::self_attention, norm1(x));
    at::Tensor a = hooked_attention(attn1, n, at::Tensor(), hooks, {where, AttentionKind::self});
    h = hooks->unmerge_tokens(where, S::self_attention, a) + x;
  }
  {
    ProfileScope scope("attn2");
    at::Tensor n = hooks->merge_tokens(where, S::cross_attention, norm2(h));
    at::Tensor a = hooked_attention(attn2, n, context, hooks, {where, AttentionKind::cross});
    h = hooks->unmerge_tokens(where, S::cross_attention, a) + h;
  }
  ProfileScope scope("ff");
  at::Tensor n = hooks->merge_tokens(where, S::feed_forward, norm3(h));
  return hooks->unmerge_tokens(where, S::feed_forward, ff(n)) + h;
}

Transformer2D Transformer2D::load(Weights& w, const std::string& prefix, int64_t channels,
                                  int64_t heads, int64_t context_dim, int64_t depth,
                                  int64_t groups, bool linear_projection, bool upcast) {
  Transformer2D t;
  t.norm = GroupNorm::load(w, prefix + ".norm", groups, channels, 1e-6);
  t.linear_projection = linear_projection;
  if (linear_projection) {
    t.proj_in_linear = Linear::load(w, prefix + ".proj_in", channels, channels);
  } else {
    t.proj_in_conv = Conv2d::load(w, prefix + ".proj_in", channels, channels, 1);
    t.proj_in_rows = {t.proj_in_conv.weight.view({channels, channels}), t.proj_in_conv.bias};
  }
  for (int64_t k = 0; k < depth; ++k) {
    t.blocks.push_back(BasicTransformerBlock::load(
        w, prefix + ".transformer_blocks." + std::to_string(k), channels, context_dim, heads, upcast));
  }
  if (linear_projection) {
    t.proj_out_linear = Linear::load(w, prefix + ".proj_out", channels, channels);
  } else {
    t.proj_out_conv = Conv2d::load(w, prefix + ".proj_out", channels, channels, 1);
    t.proj_out_rows = {t.proj_out_conv.weight.view({channels, channels}), t.proj_out_conv.bias};
  }
  return t;
}

at::Tensor Transformer2D::forward(const at::Tensor& x, const at::Tensor& context,
                                  UNetHooks* hooks, const UNetLocation& where) const {
  ProfileScope scope("transformer");
  const int64_t batch = x.size(0), channels = x.size(1), height = x.size(2), width = x.size(3);
  // Tokens back in the input's layout: for NHWC activations the permuted
  // tokens already are, and no copy is made.
  const auto layout = x.suggest_memory_format();
  at::Tensor h = norm(x);
  // [B, C, H, W] -> [B, H*W, C] tokens; the projection comes before (conv) or
  // after (linear) the reshape, as in diffusers.
  const bool nhwc = layout == at::MemoryFormat::ChannelsLast;
  if (linear_projection || nhwc) {
    const Linear& proj_in = linear_projection ? proj_in_linear : proj_in_rows;
    h = proj_in(h.permute({0, 2, 3, 1}).reshape({batch, height * width, channels}));
  } else {
    h = proj_in_conv(h).permute({0, 2, 3, 1}).reshape({batch, height * width, channels});
  }
  for (std::size_t k = 0; k < blocks.size(); ++k) {
    h = blocks[k].forward(h, context, hooks, {where, static_cast<int>(k)}, height, width);
  }
  if (linear_projection || nhwc) {
    const Linear& proj_out = linear_projection ? proj_out_linear : proj_out_rows;
    h = proj_out(h).reshape({batch, height, width, channels}).permute({0, 3, 1, 2}).contiguous(layout);
  } else {
    h = proj_out_conv(h.reshape({batch, height, width, channels}).permute({0, 3, 1, 2}).contiguous(layout));
  }
  return h + x;
}

}  // namespace diffsearch::engine
