// The pre-norm transformer layer shared by CLIP's text and vision towers
// (transformers' CLIPEncoderLayer): attention and MLP, each with a residual.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "worker/engine/core/nn.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

// The config fields both towers share (CLIPTextConfig, CLIPVisionConfig),
// read and checked in one place.
struct ClipEncoderShape {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_hidden_layers = 0;
  std::string hidden_act = "quick_gelu";  // quick_gelu or gelu
  double layer_norm_eps = 1e-5;

  // `tower` ("text", "vision") goes into messages; InputError names `source`
  // and the field.
  static ClipEncoderShape from_json(const nlohmann::json& json, const std::string& source,
                                    const std::string& tower);
};

struct ClipEncoderLayer {
  LayerNorm layer_norm1, layer_norm2;
  Linear q_proj, k_proj, v_proj, out_proj;
  Linear fc1, fc2;
  int64_t heads = 1;
  bool quick_gelu = true;  // quick_gelu, else exact gelu

  // Weights under `prefix` (for example "text_model.encoder.layers.0.").
  static ClipEncoderLayer load(Weights& w, const std::string& prefix, int64_t hidden,
                               int64_t intermediate, int64_t heads, const std::string& hidden_act,
                               double layer_norm_eps);

  // x: [B, T, C]. mask: bool [T, T], true where a token may not attend
  // (the text tower's causal mask); undefined for full attention (vision).
  at::Tensor operator()(const at::Tensor& x, const at::Tensor& mask) const;
};

}  // namespace diffsearch::engine
