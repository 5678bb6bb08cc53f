// unet/config.json read into the numbers the UNet is built from, with the
// quirks of diffusers' UNet2DConditionModel resolved once, here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace diffsearch::engine {

// Typed access to the fields of a diffusers config.json. Every error is an
// InputError naming the file, the field, what was expected and what was found.
// A field holding JSON null counts as absent (diffusers writes null for "unset").
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& json, std::string source);

  const std::string& source() const { return source_; }
  bool has(const std::string& key) const;  // present and not null
  const nlohmann::json& at(const std::string& key) const;  // requires has(key)

  int64_t integer(const std::string& key) const;  // required
  int64_t integer(const std::string& key, int64_t fallback) const;
  double number(const std::string& key) const;  // required
  double number(const std::string& key, double fallback) const;
  bool boolean(const std::string& key, bool fallback) const;
  std::string string(const std::string& key) const;  // required
  std::string string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> integers(const std::string& key) const;        // required list
  std::vector<std::string> strings(const std::string& key) const;     // required list
  std::vector<double> numbers(const std::string& key) const;          // required list
  // An integer given once for all blocks, or a list with one per block.
  std::vector<int64_t> per_block(const std::string& key, std::size_t blocks) const;

  // The engine implements only `supported` for this field (absent = `fallback`).
  void require_value(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& supported) const;

  [[noreturn]] void fail(const std::string& key, const std::string& expected,
                         const std::string& found, const std::string& fix = "") const;
  [[noreturn]] void missing(const std::string& key, const std::string& expected) const;

 private:
  const nlohmann::json& json_;
  std::string source_;
};

// The architecture of one UNet2DConditionModel. Per-block vectors are in
// down-block order; the up path uses them reversed, as diffusers does.
struct UNetConfig {
  std::string source;  // the config.json it came from

  int64_t in_channels = 4;
  int64_t out_channels = 4;
  int64_t sample_size = 0;  // latent size the model was trained at (0: not given)
  std::vector<std::string> down_block_types;  // CrossAttnDownBlock2D | DownBlock2D
  std::string mid_block_type;                 // UNetMidBlock2DCrossAttn
  std::vector<std::string> up_block_types;    // CrossAttnUpBlock2D | UpBlock2D
  std::vector<int64_t> block_out_channels;
  std::vector<int64_t> layers_per_block;  // resnets per down block; up blocks have one more
  // Attention heads per down block. diffusers names this `attention_head_dim`
  // in these configs (num_attention_heads = num_attention_heads or attention_head_dim).
  std::vector<int64_t> attention_heads;
  std::vector<int64_t> cross_attention_dim;  // per down block
  // BasicTransformerBlocks per attention layer: [block][layer].
  std::vector<std::vector<int64_t>> down_transformer_layers;
  std::vector<std::vector<int64_t>> up_transformer_layers;  // in up-block order
  int64_t mid_transformer_layers = 1;

  bool use_linear_projection = false;
  bool upcast_attention = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  int64_t time_embed_dim = 0;  // time_embedding_dim, else 4 * block_out_channels[0]

  std::string addition_embed_type;  // "" or "text_time" (SDXL)
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;

  int num_down_blocks() const { return static_cast<int>(down_block_types.size()); }
  int num_up_blocks() const { return static_cast<int>(up_block_types.size()); }
  bool down_has_attention(int block) const;
  bool up_has_attention(int block) const;
  int64_t up_layers(int block) const;  // resnets in up block `block`
  // Per up block (up-block order): heads and cross-attention width.
  int64_t up_heads(int block) const;
  int64_t up_cross_attention_dim(int block) const;
  int64_t up_out_channels(int block) const;
  bool text_time() const { return addition_embed_type == "text_time"; }

  // Throws InputError naming `source` and the field for anything missing,
  // malformed, inconsistent or not implemented by this engine.
  static UNetConfig from_json(const nlohmann::json& json, const std::string& source);
};

}  // namespace diffsearch::engine
