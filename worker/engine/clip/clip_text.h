// The CLIP text encoder (transformers' CLIPTextModel and
// CLIPTextModelWithProjection) driven by its config.json.
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

struct ClipTextConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_attention_heads = 0;
  int64_t num_hidden_layers = 0;
  int64_t max_position_embeddings = 77;
  int64_t vocab_size = 49408;
  std::string hidden_act = "quick_gelu";  // quick_gelu or gelu
  double layer_norm_eps = 1e-5;
  int64_t eos_token_id = 49407;
  // 0 when the model has no text_projection (CLIPTextModel).
  int64_t projection_dim = 0;

  // Reads a CLIPTextConfig JSON; `source` names the file in errors. The
  // projection is taken when `with_projection` (CLIPTextModelWithProjection).
  static ClipTextConfig from_json(const nlohmann::json& json, const std::string& source,
                                  bool with_projection);
};

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, T, C], after the final layer norm
  // hidden_states[0] is the embedding output, hidden_states[i] the output of
  // layer i (before the final layer norm), as transformers returns them.
  std::vector<at::Tensor> hidden_states;
  at::Tensor penultimate;  // hidden_states[-2], what SDXL conditions on
  at::Tensor pooled;       // [B, C] last_hidden_state at the end token
  at::Tensor text_embeds;  // [B, P] pooled through text_projection; undefined without one
};

class ClipTextEncoder {
 public:
  // A diffusers component folder (text_encoder/, text_encoder_2/): the
  // projection is used when config.json's architectures names
  // CLIPTextModelWithProjection or model_index.json does.
  static ClipTextEncoder load(const io::DiffusersFolder& folder, const std::string& component,
                              const RunOptions& options);
  // Weights named `text_model.embeddings...` or `embeddings...` (both layouts
  // exist in saved checkpoints; the one present is used).
  static ClipTextEncoder load(const ClipTextConfig& config, io::WeightSet weights,
                              const RunOptions& options);
  // From Weights already made (synth-model passes synthesizing ones).
  static ClipTextEncoder load(const ClipTextConfig& config, Weights& weights);

  // input_ids: [B, T] integer ids, T <= max_position_embeddings.
  ClipTextOutput forward(const at::Tensor& input_ids) const;

  // forward() in two halves, so the device half can be captured in a CUDA
  // graph (it never waits on the host). check_ids throws InputError for ids
  // the model cannot embed; pooling_positions gives, per row of host ids, the
  // end token's position (what `pooled` takes).
  void check_ids(const at::Tensor& ids_cpu) const;
  at::Tensor pooling_positions(const at::Tensor& ids_cpu) const;
  // ids [B, T] and positions [B] already on the run device, both long.
  ClipTextOutput forward_on_device(const at::Tensor& ids, const at::Tensor& positions) const;

  const ClipTextConfig& config() const { return config_; }
  const RunOptions& options() const { return options_; }

 private:
  ClipTextConfig config_;
  RunOptions options_;
  at::Tensor token_embedding_;     // [vocab, C]
  at::Tensor position_embedding_;  // [max_positions, C]
  std::vector<ClipEncoderLayer> layers_;
  LayerNorm final_layer_norm_;
  Linear text_projection_;  // no bias; weight undefined without projection
};

}  // namespace diffsearch::engine
