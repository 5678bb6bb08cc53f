// Layer loading and forward passes, each adding its multiply-accumulates to
// the per-thread counter.
#include "worker/engine/core/nn.h"

#include <cstdint>
#include <cstdlib>
#include <vector>

#include <torch/torch.h>
#include <torch/version.h>

#include "io/error.h"
#include "worker/engine/kernels/cuda_kernels.h"
#include "worker/engine/core/device.h"
#include "worker/engine/kernels/geglu_kernels.h"
#include "worker/engine/kernels/group_norm_kernels.h"

namespace diffsearch::engine {
namespace macs {
namespace {
thread_local int64_t g_total = 0;
}
void add(int64_t count) { g_total += count; }
int64_t total() { return g_total; }
void reset() { g_total = 0; }
}  // namespace macs

at::Tensor Linear::operator()(const at::Tensor& x) const {
  macs::add(x.numel() / x.size(-1) * weight.size(0) * weight.size(1));
  return bias.defined() ? at::linear(x, weight, bias) : at::linear(x, weight);
}

Linear Linear::load(Weights& w, const std::string& prefix, int64_t in, int64_t out, bool bias) {
  Linear l;
  l.weight = w.get(prefix + ".weight", {out, in});
  if (bias) l.bias = w.get(prefix + ".bias", {out});
  return l;
}

at::Tensor Conv2d::operator()(const at::Tensor& x, bool with_bias) const {
  at::Tensor y = at::conv2d(x, weight, with_bias ? bias : at::Tensor(), {stride, stride}, {padding, padding});
  if (out_channels > 0 && out_channels < y.size(1)) y = y.narrow(1, 0, out_channels);
  macs::add(y.numel() * weight.size(1) * weight.size(2) * weight.size(3));
  return y;
}

void Conv2d::pad_output_channels(int64_t multiple) {
  const int64_t have = weight.size(0);
  if (out_channels == 0) out_channels = have;
  const int64_t want = (have + multiple - 1) / multiple * multiple;
  if (want == have) return;
  const auto format = weight.suggest_memory_format();
  at::Tensor padded = at::zeros({want, weight.size(1), weight.size(2), weight.size(3)}, weight.options());
  padded.narrow(0, 0, have).copy_(weight);
  weight = padded.contiguous(format);
  if (bias.defined()) {
    at::Tensor b = at::zeros({want}, bias.options());
    b.narrow(0, 0, have).copy_(bias);
    bias = b;
  }
}

Conv2d Conv2d::load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                    int64_t kernel, int64_t stride, int64_t padding, bool bias) {
  Conv2d c;
  c.weight = w.get(prefix + ".weight", {out, in, kernel, kernel});
  // NHWC weights beside NHWC activations: cuDNN would transpose them per call.
  if (channels_last_enabled(c.weight.device())) c.weight = c.weight.contiguous(at::MemoryFormat::ChannelsLast);
  if (bias) c.bias = w.get(prefix + ".bias", {out});
  c.stride = stride;
  c.padding = padding;
  return c;
}

// GroupNorm on CUDA as two reductions and one multiply-add, in any memory
// layout. at::group_norm makes its CUDA input NCHW-contiguous (a transpose
// of every NHWC activation) and reduces each group in one thread block,
// which idles most of the GPU when there are few groups of many elements
// (the VAE decoder at 512 px: 32 groups of a million). Statistics are
// accumulated in float32 (float64 for float64) and the result is computed
// in that precision before rounding, as at::group_norm does. Few kernels:
// at the UNet's sizes each small one costs about as much as a pass over x.
at::Tensor group_norm_reduced(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                              const at::Tensor& bias, double eps) {
  const int64_t batch = x.size(0), channels = x.size(1), per_group = channels / groups;
  const double count = static_cast<double>(x.numel() / (batch * groups));
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  std::vector<int64_t> spatial;
  std::vector<int64_t> broadcast = {batch, channels};
  for (int64_t d = 2; d < x.dim(); ++d) {
    spatial.push_back(d);
    broadcast.push_back(1);
  }
  // Per channel first (each reduction reads x once and fills the GPU along
  // the spatial extent), then per group on the small [2, B, C].
  at::Tensor stats = at::empty({2, batch, channels}, x.options().dtype(acc));
  at::Tensor sums = stats[0], squares = stats[1];
  at::sum_out(sums, x, spatial, false, acc);
  at::linalg_vector_norm_out(squares, x, 2, spatial, false, acc);
  squares.square_();
  const at::Tensor moments = stats.view({2, batch, groups, per_group}).sum(-1).div_(count);
  const at::Tensor mean = moments[0].unsqueeze(-1);  // [B, G, 1]
  const at::Tensor rstd = at::addcmul(moments[1].unsqueeze(-1), mean, mean, -1).clamp_min_(0).add_(eps).rsqrt_();
  // y = x * scale + shift, per sample and channel ([B, G, C/G] = [B, C]).
  auto as_acc = [&](const at::Tensor& t) { return t.scalar_type() == acc ? t : t.to(acc); };
  const at::Tensor scale = weight.defined() ? rstd * as_acc(weight).view({groups, per_group})
                                            : rstd.expand({batch, groups, per_group}).contiguous();
  const at::Tensor shift = bias.defined() ? at::addcmul(as_acc(bias).view({groups, per_group}), mean, scale, -1)
                                          : -(mean * scale);
  at::Tensor out = at::empty_like(x);
  at::addcmul_out(out, shift.reshape(broadcast), x, scale.reshape(broadcast));
  return out;
}

bool norm_kernels_enabled(const c10::Device& device) {
  return cuda_kernels_enabled("DIFFSEARCH_NORM_KERNELS", device);
}

bool geglu_kernels_enabled(const c10::Device& device) {
  // Opt-in (=1) until it has been measured on a GPU: unset means ATen.
  const char* value = std::getenv("DIFFSEARCH_GEGLU_KERNELS");
  if (value == nullptr || *value == '\0') return false;
  return cuda_kernels_enabled("DIFFSEARCH_GEGLU_KERNELS", device);
}

bool geglu_kernel_takes(const at::Tensor& x, int64_t width) {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  return x.is_floating_point() && geglu_kernels_enabled(x.device()) &&
         geglu_kernels::fits(width, kernels::dtype_of(x));
#else
  (void)x, (void)width;
  return false;
#endif
}

at::Tensor geglu_kernel(const at::Tensor& projected) {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  const int64_t width = projected.size(-1) / 2;
  if (!geglu_kernel_takes(projected, width) || !projected.is_contiguous() ||
      reinterpret_cast<uintptr_t>(projected.data_ptr()) % 16 != 0) {
    return {};
  }
  std::vector<int64_t> shape = projected.sizes().vec();
  shape.back() = width;
  at::Tensor out = at::empty(shape, projected.options());
  geglu_kernels::Params p;
  p.projected = projected.data_ptr();
  p.out = out.data_ptr();
  p.rows = projected.numel() / (2 * width);
  p.width = width;
  p.dtype = kernels::dtype_of(projected);
  kernels::check(geglu_kernels::geglu(p, kernels::current_stream(projected)), "geglu_kernels::geglu");
  return out;
#else
  (void)projected;
  return {};
#endif
}

namespace {

// The NHWC kernel's result, or undefined where it does not take x: a 4-d
// channels-last CUDA tensor of a shape it fits, with the norm's affine
// parameters in the accumulation type.
at::Tensor group_norm_kernel(const at::Tensor& x, int64_t groups, const at::Tensor& weight_acc,
                             const at::Tensor& bias_acc, double eps, const at::Tensor& channel_add,
                             bool silu) {
#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
  namespace gnk = group_norm_kernels;
  if (x.dim() != 4 || !x.is_floating_point() || !norm_kernels_enabled(x.device()) ||
      !x.is_contiguous(at::MemoryFormat::ChannelsLast) || !weight_acc.defined() || !bias_acc.defined()) {
    return {};
  }
  const int64_t batch = x.size(0), channels = x.size(1), pixels = x.size(2) * x.size(3);
  const gnk::Dtype dtype = kernels::dtype_of(x);
  if (!gnk::fits(channels, groups, dtype) || reinterpret_cast<uintptr_t>(x.data_ptr()) % 16 != 0) return {};
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  DIFFSEARCH_ASSERT(weight_acc.scalar_type() == acc && bias_acc.scalar_type() == acc);
  at::Tensor add;
  if (channel_add.defined()) {
    DIFFSEARCH_ASSERT(channel_add.numel() == batch * channels);
    add = channel_add.to(x.scalar_type()).contiguous();
  }
  at::Tensor out = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  const at::Tensor workspace =
      at::empty({gnk::workspace_elements(batch, pixels, channels, dtype)}, x.options().dtype(acc));
  gnk::Params p;
  p.x = x.data_ptr();
  p.dtype = dtype;
  p.batch = batch;
  p.pixels = pixels;
  p.channels = channels;
  p.groups = groups;
  p.eps = eps;
  p.weight = weight_acc.data_ptr();
  p.bias = bias_acc.data_ptr();
  p.channel_add = add.defined() ? add.data_ptr() : nullptr;
  p.silu = silu;
  p.out = out.data_ptr();
  p.workspace = workspace.data_ptr();
  kernels::check(gnk::group_norm_nhwc(p, kernels::current_stream(x)), "group_norm_kernels::group_norm_nhwc");
  return out;
#else
  (void)x, (void)groups, (void)weight_acc, (void)bias_acc, (void)eps, (void)channel_add, (void)silu;
  return {};
#endif
}

}  // namespace

at::Tensor GroupNorm::operator()(const at::Tensor& x) const { return apply(x, {}, false); }

at::Tensor GroupNorm::silu(const at::Tensor& x, const at::Tensor& channel_add) const {
  return apply(x, channel_add, true);
}

at::Tensor GroupNorm::apply(const at::Tensor& x, const at::Tensor& channel_add, bool silu) const {
  if (x.is_cuda()) {
    at::Tensor y = group_norm_kernel(x, groups, weight_acc, bias_acc, eps, channel_add, silu);
    if (y.defined()) return y;
  }
  at::Tensor in = x;
  if (channel_add.defined()) {
    std::vector<int64_t> shape = {x.size(0), x.size(1)};
    shape.resize(static_cast<std::size_t>(x.dim()), 1);
    in = x + channel_add.reshape(shape);
  }
  at::Tensor y = in.is_cuda() && in.dim() >= 3
                     ? group_norm_reduced(in, groups, weight_acc.defined() ? weight_acc : weight,
                                          bias_acc.defined() ? bias_acc : bias, eps)
                     : at::group_norm(in, groups, weight, bias, eps);
  return silu ? at::silu(y) : y;
}

GroupNorm GroupNorm::load(Weights& w, const std::string& prefix, int64_t groups,
                          int64_t channels, double eps) {
  GroupNorm g;
  g.weight = w.get(prefix + ".weight", {channels});
  g.bias = w.get(prefix + ".bias", {channels});
  g.groups = groups;
  g.eps = eps;
  if (g.weight.is_cuda()) {
    // group_norm_reduced's precision, converted once rather than per call.
    const auto acc = g.weight.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    g.weight_acc = g.weight.to(acc);
    g.bias_acc = g.bias.to(acc);
  }
  return g;
}

at::Tensor LayerNorm::operator()(const at::Tensor& x) const {
  return at::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

LayerNorm LayerNorm::load(Weights& w, const std::string& prefix, int64_t dim, double eps) {
  LayerNorm l;
  l.weight = w.get(prefix + ".weight", {dim});
  l.bias = w.get(prefix + ".bias", {dim});
  l.eps = eps;
  return l;
}

at::Tensor scaled_dot_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                double scale, bool upcast) {
  const int64_t bh = q.numel() / (q.size(-2) * q.size(-1));
  macs::add(2 * bh * q.size(-2) * k.size(-2) * q.size(-1));
#if defined(TORCH_VERSION_MAJOR) && TORCH_VERSION_MAJOR >= 2
  // The fused kernel keeps softmax statistics in fp32 itself, which is what
  // upcast_attention asks for; diffusers' SDPA processor ignores the flag too.
  if (q.is_cuda()) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/false, scale);
  }
#endif
  const auto dtype = q.scalar_type();
  // upcast_attention (SD2.1) means fp32 scores for half types; never downcast fp64.
  const bool to_float = upcast && (dtype == at::kHalf || dtype == at::kBFloat16);
  at::Tensor qq = to_float ? q.to(at::kFloat) : q;
  at::Tensor kk = to_float ? k.to(at::kFloat) : k;
  at::Tensor scores = at::matmul(qq, kk.transpose(-1, -2)) * scale;
  at::Tensor probs = at::softmax(scores, -1).to(dtype);
  return at::matmul(probs, v);
}

}  // namespace diffsearch::engine
