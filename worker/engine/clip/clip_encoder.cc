// CLIP encoder layer forward pass: layer norm, multi-head self-attention,
// layer norm, MLP (fc1, activation, fc2), counted in the MAC counter.
#include "worker/engine/clip/clip_encoder.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"

namespace diffsearch::engine {

ClipEncoderShape ClipEncoderShape::from_json(const nlohmann::json& j, const std::string& source,
                                             const std::string& tower) {
  if (!j.is_object()) throw InputError(source + ": expected a JSON object, found " + j.dump());
  auto positive = [&](const char* key) -> int64_t {
    if (!j.contains(key) || j.at(key).is_null()) {
      throw InputError(source + ": field '" + key + "' is missing (expected a positive integer; is this a CLIP " +
                       tower + " config?)");
    }
    const auto& v = j.at(key);
    if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
      throw InputError(source + ": field '" + key + "' must be a positive integer, found " + v.dump());
    }
    return v.get<int64_t>();
  };
  ClipEncoderShape s;
  s.hidden_size = positive("hidden_size");
  s.intermediate_size = positive("intermediate_size");
  s.num_attention_heads = positive("num_attention_heads");
  s.num_hidden_layers = positive("num_hidden_layers");
  if (j.contains("hidden_act")) {
    if (!j["hidden_act"].is_string()) {
      throw InputError(source + ": field 'hidden_act' must be a string, found " + j["hidden_act"].dump());
    }
    s.hidden_act = j["hidden_act"].get<std::string>();
  }
  if (s.hidden_act != "quick_gelu" && s.hidden_act != "gelu") {
    throw InputError(source + ": field 'hidden_act' is '" + s.hidden_act + "', expected 'quick_gelu' or 'gelu'");
  }
  if (j.contains("layer_norm_eps")) {
    if (!j["layer_norm_eps"].is_number()) {
      throw InputError(source + ": field 'layer_norm_eps' must be a number, found " +
                       j["layer_norm_eps"].dump());
    }
    s.layer_norm_eps = j["layer_norm_eps"].get<double>();
  }
  if (s.hidden_size % s.num_attention_heads != 0) {
    throw InputError(source + ": hidden_size " + std::to_string(s.hidden_size) +
                     " is not divisible by num_attention_heads " + std::to_string(s.num_attention_heads));
  }
  return s;
}

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
