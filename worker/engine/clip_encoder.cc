// CLIP encoder layer forward pass: layer norm, multi-head self-attention,
// layer norm, MLP (fc1, activation, fc2), counted in the MAC counter.
#include "worker/engine/clip_encoder.h"

#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "io/error.h"

namespace diffsearch::engine {

ClipEncoderLayer ClipEncoderLayer::load(Weights& w, const std::string& p, int64_t c,
                                        int64_t intermediate, int64_t heads,
                                        const std::string& hidden_act, double eps) {
  DIFFSEARCH_ASSERT(heads > 0 && c % heads == 0);
  DIFFSEARCH_ASSERT(hidden_act == "quick_gelu" || hidden_act == "gelu");
  ClipEncoderLayer l;
  l.layer_norm1 = LayerNorm::load(w, p + "layer_norm1", c, eps);
  l.q_proj = Linear::load(w, p + "self_attn.q_proj", c, c);
  l.k_proj = Linear::load(w, p + "self_attn.k_proj", c, c);
  l.v_proj = Linear::load(w, p + "self_attn.v_proj", c, c);
  l.out_proj = Linear::load(w, p + "self_attn.out_proj", c, c);
  l.layer_norm2 = LayerNorm::load(w, p + "layer_norm2", c, eps);
  l.fc1 = Linear::load(w, p + "mlp.fc1", c, intermediate);
  l.fc2 = Linear::load(w, p + "mlp.fc2", intermediate, c);
  l.heads = heads;
  l.quick_gelu = hidden_act == "quick_gelu";
  return l;
}

at::Tensor ClipEncoderLayer::operator()(const at::Tensor& x, const at::Tensor& mask) const {
  const int64_t b = x.size(0), t = x.size(1), c = x.size(2);
  const int64_t d = c / heads;
  at::Tensor h = layer_norm1(x);
  auto split = [&](const at::Tensor& y) { return y.view({b, t, heads, d}).transpose(1, 2); };
  at::Tensor q = split(q_proj(h)), k = split(k_proj(h)), v = split(v_proj(h));
  macs::add(2 * b * heads * t * t * d);
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * (1.0 / std::sqrt(double(d)));
  if (mask.defined()) {
    scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  }
  // Half-precision scores are normalised in float32, as transformers does.
  const bool half = x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16;
  at::Tensor probs = half ? at::softmax(scores, -1, at::kFloat).to(x.scalar_type())
                          : at::softmax(scores, -1);
  at::Tensor a = at::matmul(probs, v).transpose(1, 2).reshape({b, t, c});
  at::Tensor y = x + out_proj(a);
  h = fc1(layer_norm2(y));
  h = quick_gelu ? h * at::sigmoid(h * 1.702) : at::gelu(h);
  return y + fc2(h);
}

}  // namespace diffsearch::engine
