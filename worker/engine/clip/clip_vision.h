// The CLIP vision tower (transformers' CLIPVisionModel plus CLIPModel's
// visual_projection): a ViT over image patches, pooled at the class token.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "io/diffusers_folder.h"
#include "worker/engine/clip/clip_encoder.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

struct ClipVisionConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_hidden_layers = 0;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  int64_t num_channels = 3;
  std::string hidden_act = "quick_gelu";  // quick_gelu or gelu
  double layer_norm_eps = 1e-5;
  // Width of visual_projection; 0 without one. CLIPModel takes it from its
  // top-level projection_dim, not from vision_config's.
  int64_t projection_dim = 0;

  // Reads a CLIPVisionConfig JSON (CLIPModel's vision_config); `source` names
  // the file and field in errors. Defaults are transformers' CLIPVisionConfig.
  static ClipVisionConfig from_json(const nlohmann::json& json, const std::string& source);
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

struct ClipVisionOutput {
  at::Tensor last_hidden_state;  // [B, 1 + patches, C], encoder output (no final norm)
  at::Tensor pooled;             // [B, C] class token through post_layernorm
  at::Tensor image_embeds;       // [B, P] pooled through visual_projection; undefined without one
};

class ClipVisionEncoder {
 public:
  // Weights named `vision_model.embeddings...` (CLIPModel, CLIPVisionModel)
  // or `embeddings...`; `visual_projection.weight` when projection_dim > 0.
  static ClipVisionEncoder load(const ClipVisionConfig& config, io::WeightSet weights,
                                const RunOptions& options);

  // pixel_values: [B, num_channels, image_size, image_size] normalised pixels,
  // converted to the run dtype and device.
  ClipVisionOutput forward(const at::Tensor& pixel_values) const;

  const ClipVisionConfig& config() const { return config_; }
  const RunOptions& options() const { return options_; }

 private:
  ClipVisionConfig config_;
  RunOptions options_;
  Conv2d patch_embedding_;         // kernel = stride = patch_size, no bias
  at::Tensor class_embedding_;     // [C]
  at::Tensor position_embedding_;  // [1 + patches, C]
  LayerNorm pre_layernorm_;
  std::vector<ClipEncoderLayer> layers_;
  LayerNorm post_layernorm_;
  Linear visual_projection_;  // no bias; weight undefined without projection
};

}  // namespace diffsearch::engine
