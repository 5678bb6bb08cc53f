// CLIP text encoder forward pass: token and position embeddings, pre-norm
// transformer layers under a causal mask, final layer norm, end-token pooling.
#include "worker/engine/clip/clip_text.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"

namespace diffsearch::engine {
namespace {

// The end token is the largest id of CLIP's vocabulary; configs written before
// transformers PR #24773 carry a wrong eos_token_id (2), and transformers then
// pools at the largest id instead. Both rules are kept so either config works.
constexpr int64_t kClipEndTokenId = 49407;

int64_t optional_int(const nlohmann::json& j, const char* key, int64_t fallback,
                     const std::string& source) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  const auto& v = j.at(key);
  if (!v.is_number_integer()) {
    throw InputError(source + ": field '" + key + "' must be an integer, found " + v.dump());
  }
  return v.get<int64_t>();
}

bool names_projection(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>() == "CLIPTextModelWithProjection";
  if (value.is_array()) {
    for (const auto& v : value) {
      if (names_projection(v)) return true;
    }
  }
  return false;
}

}  // namespace

ClipTextConfig ClipTextConfig::from_json(const nlohmann::json& j, const std::string& source,
                                         bool with_projection) {
  const ClipEncoderShape shape = ClipEncoderShape::from_json(j, source, "text");
  ClipTextConfig c;
  c.hidden_size = shape.hidden_size;
  c.intermediate_size = shape.intermediate_size;
  c.num_attention_heads = shape.num_attention_heads;
  c.num_hidden_layers = shape.num_hidden_layers;
  c.hidden_act = shape.hidden_act;
  c.layer_norm_eps = shape.layer_norm_eps;
  // The remaining fields have transformers' CLIPTextConfig defaults.
  c.max_position_embeddings = optional_int(j, "max_position_embeddings", 77, source);
  c.vocab_size = optional_int(j, "vocab_size", 49408, source);
  c.eos_token_id = optional_int(j, "eos_token_id", 2, source);
  if (with_projection) c.projection_dim = optional_int(j, "projection_dim", 512, source);
  return c;
}

ClipTextEncoder ClipTextEncoder::load(const io::DiffusersFolder& folder,
                                      const std::string& component, const RunOptions& options) {
  const nlohmann::json json = folder.component_config(component);
  const std::string source = folder.component_dir(component) + "/config.json";
  bool with_projection = json.contains("architectures") && names_projection(json["architectures"]);
  const auto& index = folder.model_index();
  if (index.contains(component) && names_projection(index[component])) with_projection = true;
  return load(ClipTextConfig::from_json(json, source, with_projection),
              folder.component_weights(component), options);
}

ClipTextEncoder ClipTextEncoder::load(const ClipTextConfig& config, io::WeightSet weight_set,
                                      const RunOptions& options) {
  Weights w(std::move(weight_set), options);
  return load(config, w);
}

ClipTextEncoder ClipTextEncoder::load(const ClipTextConfig& config, Weights& w) {
  const RunOptions& options = w.options();
  ClipTextEncoder e;
  e.config_ = config;
  e.options_ = options;
  
  const std::string prefix =
      w.contains("text_model.embeddings.token_embedding.weight") ||
              // transformers 5 saves CLIPTextModelWithProjection with the
              // prefix and CLIPTextModel without; synthesized weights follow it.
              (w.synthesizing() && config.projection_dim > 0)
          ? "text_model."
          : "";
  const int64_t c = config.hidden_size;
  e.token_embedding_ =
      w.get(prefix + "embeddings.token_embedding.weight", {config.vocab_size, c});
  e.position_embedding_ =
      w.get(prefix + "embeddings.position_embedding.weight", {config.max_position_embeddings, c});
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    const std::string p = prefix + "encoder.layers." + std::to_string(i) + ".";
    e.layers_.push_back(ClipEncoderLayer::load(w, p, c, config.intermediate_size,
                                               config.num_attention_heads, config.hidden_act,
                                               config.layer_norm_eps));
  }
  e.final_layer_norm_ = LayerNorm::load(w, prefix + "final_layer_norm", c, config.layer_norm_eps);
  if (config.projection_dim > 0) {
    e.text_projection_ =
        Linear::load(w, "text_projection", c, config.projection_dim, /*bias=*/false);
  }
  return e;
}

void ClipTextEncoder::check_ids(const at::Tensor& ids_cpu) const {
  DIFFSEARCH_ASSERT(ids_cpu.dim() == 2 && ids_cpu.device().is_cpu());
  const int64_t t = ids_cpu.size(1);
  if (t > config_.max_position_embeddings) {
    throw InputError("text encoder: " + std::to_string(t) + " tokens given but the model has " +
                     std::to_string(config_.max_position_embeddings) +
                     " positions (max_position_embeddings); tokenize with truncation");
  }
  if (ids_cpu.numel() > 0 &&
      (ids_cpu.min().item<int64_t>() < 0 || ids_cpu.max().item<int64_t>() >= config_.vocab_size)) {
    throw InputError("text encoder: token id outside the vocabulary of " +
                     std::to_string(config_.vocab_size) +
                     " (was the prompt tokenized with this model's tokenizer?)");
  }
}

at::Tensor ClipTextEncoder::pooling_positions(const at::Tensor& ids_cpu) const {
  DIFFSEARCH_ASSERT(ids_cpu.dim() == 2 && ids_cpu.device().is_cpu());
  const at::Tensor ids = ids_cpu.to(at::kLong);
  // As before the split: when every row's highest id is CLIP's end token,
  // pool at the highest id; otherwise at the first eos_token_id.
  const bool legacy = (std::get<0>(ids.max(-1)) == kClipEndTokenId).all().item<bool>();
  const at::Tensor where = legacy ? ids.to(at::kInt).argmax(-1)
                                  : (ids == config_.eos_token_id).to(at::kInt).argmax(-1);
  return where.to(at::kLong);
}

ClipTextOutput ClipTextEncoder::forward(const at::Tensor& input_ids) const {
  DIFFSEARCH_ASSERT(input_ids.dim() == 2);
  const at::Tensor ids_cpu = input_ids.to(at::kCPU, at::kLong).contiguous();
  check_ids(ids_cpu);
  return forward_on_device(ids_cpu.to(options_.device), pooling_positions(ids_cpu).to(options_.device));
}

ClipTextOutput ClipTextEncoder::forward_on_device(const at::Tensor& ids,
                                                  const at::Tensor& positions) const {
  DIFFSEARCH_ASSERT(ids.dim() == 2 && positions.dim() == 1 && positions.size(0) == ids.size(0));
  const int64_t b = ids.size(0), t = ids.size(1);
  at::Tensor x = token_embedding_.index_select(0, ids.reshape({-1})).view({b, t, -1}) +
                 position_embedding_.slice(0, 0, t).unsqueeze(0);
  // True above the diagonal: a token never attends to later tokens.
  at::Tensor mask = at::ones({t, t}, at::TensorOptions().dtype(at::kBool).device(options_.device))
                        .triu(1);
  ClipTextOutput out;
  out.hidden_states.push_back(x);
  for (const auto& layer : layers_) {
    x = layer(x, mask);
    out.hidden_states.push_back(x);
  }
  out.last_hidden_state = final_layer_norm_(x);
  out.penultimate = out.hidden_states[out.hidden_states.size() - 2];
  out.pooled = out.last_hidden_state.index(
      {at::arange(b, at::TensorOptions().dtype(at::kLong).device(options_.device)), positions});
  if (text_projection_.weight.defined()) out.text_embeds = text_projection_(out.pooled);
  return out;
}

}  // namespace diffsearch::engine
