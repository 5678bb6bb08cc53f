// Layer loading and forward passes, each adding its multiply-accumulates to
// the per-thread counter.
#include "worker/engine/nn.h"

#include <torch/torch.h>
#include <torch/version.h>

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

at::Tensor Conv2d::operator()(const at::Tensor& x) const {
  at::Tensor y = at::conv2d(x, weight, bias, {stride, stride}, {padding, padding});
  macs::add(y.numel() * weight.size(1) * weight.size(2) * weight.size(3));
  return y;
}

Conv2d Conv2d::load(Weights& w, const std::string& prefix, int64_t in, int64_t out,
                    int64_t kernel, int64_t stride, int64_t padding, bool bias) {
  Conv2d c;
  c.weight = w.get(prefix + ".weight", {out, in, kernel, kernel});
  if (bias) c.bias = w.get(prefix + ".bias", {out});
  c.stride = stride;
  c.padding = padding;
  return c;
}

at::Tensor GroupNorm::operator()(const at::Tensor& x) const {
  return at::group_norm(x, groups, weight, bias, eps);
}

GroupNorm GroupNorm::load(Weights& w, const std::string& prefix, int64_t groups,
                          int64_t channels, double eps) {
  GroupNorm g;
  g.weight = w.get(prefix + ".weight", {channels});
  g.bias = w.get(prefix + ".bias", {channels});
  g.groups = groups;
  g.eps = eps;
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
