// CLIP vision forward pass: patch convolution, class token, position
// embeddings, pre-norm, encoder layers with full attention, class-token pooling.
#include "worker/engine/clip/clip_vision.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"

namespace diffsearch::engine {
namespace {

int64_t positive_int(const nlohmann::json& j, const char* key, const std::string& source,
                     bool required, int64_t fallback) {
  if (!j.contains(key) || j.at(key).is_null()) {
    if (!required) return fallback;
    throw InputError(source + ": field '" + key +
                     "' is missing (expected a positive integer; is this a CLIP vision config?)");
  }
  const auto& v = j.at(key);
  if (!v.is_number_integer() || v.get<int64_t>() <= 0) {
    throw InputError(source + ": field '" + key + "' must be a positive integer, found " +
                     v.dump());
  }
  return v.get<int64_t>();
}

}  // namespace

ClipVisionConfig ClipVisionConfig::from_json(const nlohmann::json& j, const std::string& source) {
  const ClipEncoderShape shape = ClipEncoderShape::from_json(j, source, "vision");
  ClipVisionConfig c;
  c.hidden_size = shape.hidden_size;
  c.intermediate_size = shape.intermediate_size;
  c.num_attention_heads = shape.num_attention_heads;
  c.num_hidden_layers = shape.num_hidden_layers;
  c.hidden_act = shape.hidden_act;
  c.layer_norm_eps = shape.layer_norm_eps;
  c.image_size = positive_int(j, "image_size", source, false, 224);
  c.patch_size = positive_int(j, "patch_size", source, false, 32);
  c.num_channels = positive_int(j, "num_channels", source, false, 3);
  if (c.image_size % c.patch_size != 0) {
    throw InputError(source + ": image_size " + std::to_string(c.image_size) +
                     " is not a multiple of patch_size " + std::to_string(c.patch_size));
  }
  return c;
}

ClipVisionEncoder ClipVisionEncoder::load(const ClipVisionConfig& config,
                                          io::WeightSet weight_set, const RunOptions& options) {
  ClipVisionEncoder e;
  e.config_ = config;
  e.options_ = options;
  Weights w(std::move(weight_set), options);
  const std::string prefix =
      w.contains("vision_model.embeddings.patch_embedding.weight") ? "vision_model." : "";
  const int64_t c = config.hidden_size;
  e.patch_embedding_ = Conv2d::load(w, prefix + "embeddings.patch_embedding", config.num_channels,
                                    c, config.patch_size, /*stride=*/config.patch_size,
                                    /*padding=*/0, /*bias=*/false);
  e.class_embedding_ = w.get(prefix + "embeddings.class_embedding", {c});
  e.position_embedding_ =
      w.get(prefix + "embeddings.position_embedding.weight", {config.num_patches() + 1, c});
  // "pre_layrnorm" is transformers' spelling of the weight name.
  e.pre_layernorm_ = LayerNorm::load(w, prefix + "pre_layrnorm", c, config.layer_norm_eps);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    e.layers_.push_back(ClipEncoderLayer::load(
        w, prefix + "encoder.layers." + std::to_string(i) + ".", c, config.intermediate_size,
        config.num_attention_heads, config.hidden_act, config.layer_norm_eps));
  }
  e.post_layernorm_ = LayerNorm::load(w, prefix + "post_layernorm", c, config.layer_norm_eps);
  if (config.projection_dim > 0) {
    e.visual_projection_ =
        Linear::load(w, "visual_projection", c, config.projection_dim, /*bias=*/false);
  }
  return e;
}

ClipVisionOutput ClipVisionEncoder::forward(const at::Tensor& pixel_values) const {
  const int64_t s = config_.image_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != config_.num_channels ||
      pixel_values.size(2) != s || pixel_values.size(3) != s) {
    throw InputError("CLIP vision tower: expected pixels of shape [B, " +
                     std::to_string(config_.num_channels) + ", " + std::to_string(s) + ", " +
                     std::to_string(s) + "] (vision_config.image_size), found " +
                     shape_string(pixel_values.sizes().vec()) + "; preprocess images first");
  }
  at::Tensor x = pixel_values.to(options_.device, options_.dtype);
  const int64_t b = x.size(0);
  // [B, C, s/p, s/p] -> [B, patches, C], patches in row-major order.
  at::Tensor patches = patch_embedding_(x).flatten(2).transpose(1, 2);
  at::Tensor cls = class_embedding_.view({1, 1, -1}).expand({b, 1, -1});
  at::Tensor h = at::cat({cls, patches}, 1) + position_embedding_.unsqueeze(0);
  h = pre_layernorm_(h);
  for (const auto& layer : layers_) h = layer(h, at::Tensor());
  ClipVisionOutput out;
  out.last_hidden_state = h;
  out.pooled = post_layernorm_(h.select(1, 0));
  if (visual_projection_.weight.defined()) out.image_embeds = visual_projection_(out.pooled);
  return out;
}

}  // namespace diffsearch::engine
