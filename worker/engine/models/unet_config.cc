// Parsing unet/config.json: diffusers' defaults for optional fields, errors
// for missing structural ones and for features this engine does not implement.
#include "worker/engine/models/unet_config.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace diffsearch::engine {
namespace {

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) s += ", ";
    s += "'" + items[i] + "'";
  }
  return s;
}

bool is_integer(const nlohmann::json& v) {
  if (v.is_number_integer()) return true;
  // Some configs write 8.0 for 8; accept whole floats.
  return v.is_number_float() && std::floor(v.get<double>()) == v.get<double>();
}

}  // namespace

ConfigReader::ConfigReader(const nlohmann::json& json, std::string source)
    : json_(json), source_(std::move(source)) {
  if (!json_.is_object()) {
    throw InputError(source_ + ": expected a JSON object, found " +
                     std::string(json_.type_name()));
  }
}

bool ConfigReader::has(const std::string& key) const {
  auto it = json_.find(key);
  return it != json_.end() && !it->is_null();
}

const nlohmann::json& ConfigReader::at(const std::string& key) const { return json_.at(key); }

void ConfigReader::fail(const std::string& key, const std::string& expected,
                        const std::string& found, const std::string& fix) const {
  std::string msg = source_ + ": field '" + key + "': expected " + expected + ", found " + found;
  if (!fix.empty()) msg += "; " + fix;
  throw InputError(msg);
}

void ConfigReader::missing(const std::string& key, const std::string& expected) const {
  throw InputError(source_ + ": field '" + key + "' is missing (expected " + expected +
                   "); the file is not a complete diffusers config: re-save the model with "
                   "save_pretrained or add the field");
}

int64_t ConfigReader::integer(const std::string& key) const {
  if (!has(key)) missing(key, "an integer");
  const auto& v = json_.at(key);
  if (!is_integer(v)) fail(key, "an integer", v.dump());
  return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}

int64_t ConfigReader::integer(const std::string& key, int64_t fallback) const {
  return has(key) ? integer(key) : fallback;
}

double ConfigReader::number(const std::string& key) const {
  if (!has(key)) missing(key, "a number");
  const auto& v = json_.at(key);
  if (!v.is_number()) fail(key, "a number", v.dump());
  return v.get<double>();
}

double ConfigReader::number(const std::string& key, double fallback) const {
  return has(key) ? number(key) : fallback;
}

bool ConfigReader::boolean(const std::string& key, bool fallback) const {
  if (!has(key)) return fallback;
  const auto& v = json_.at(key);
  if (!v.is_boolean()) fail(key, "true or false", v.dump());
  return v.get<bool>();
}

std::string ConfigReader::string(const std::string& key) const {
  if (!has(key)) missing(key, "a string");
  const auto& v = json_.at(key);
  if (!v.is_string()) fail(key, "a string", v.dump());
  return v.get<std::string>();
}

std::string ConfigReader::string(const std::string& key, const std::string& fallback) const {
  return has(key) ? string(key) : fallback;
}

std::vector<int64_t> ConfigReader::integers(const std::string& key) const {
  if (!has(key)) missing(key, "a list of integers");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, "a list of integers", v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) {
    if (!is_integer(e)) fail(key, "a list of integers", v.dump());
    out.push_back(e.is_number_integer() ? e.get<int64_t>() : static_cast<int64_t>(e.get<double>()));
  }
  return out;
}

std::vector<double> ConfigReader::numbers(const std::string& key) const {
  if (!has(key)) missing(key, "a list of numbers");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, "a list of numbers", v.dump());
  std::vector<double> out;
  for (const auto& e : v) {
    if (!e.is_number()) fail(key, "a list of numbers", v.dump());
    out.push_back(e.get<double>());
  }
  return out;
}

std::vector<std::string> ConfigReader::strings(const std::string& key) const {
  if (!has(key)) missing(key, "a list of strings");
  const auto& v = json_.at(key);
  if (!v.is_array()) fail(key, "a list of strings", v.dump());
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) fail(key, "a list of strings", v.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int64_t> ConfigReader::per_block(const std::string& key, std::size_t blocks) const {
  if (!has(key)) missing(key, "an integer or a list of " + std::to_string(blocks) + " integers");
  const auto& v = json_.at(key);
  if (is_integer(v)) return std::vector<int64_t>(blocks, integer(key));
  std::vector<int64_t> list = integers(key);
  if (list.size() != blocks) {
    fail(key, "an integer or a list of " + std::to_string(blocks) + " integers (one per block)",
         v.dump());
  }
  return list;
}

void ConfigReader::require_value(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& supported) const {
  std::string value = fallback;
  if (has(key)) {
    const auto& v = json_.at(key);
    value = v.is_string() ? v.get<std::string>() : v.dump();
  }
  if (std::find(supported.begin(), supported.end(), value) == supported.end()) {
    fail(key, join(supported), "'" + value + "'",
         "this engine implements the SD1.5, SD2.1 and SDXL architectures only");
  }
}

bool UNetConfig::down_has_attention(int block) const {
  return down_block_types.at(block) == "CrossAttnDownBlock2D";
}

bool UNetConfig::up_has_attention(int block) const {
  return up_block_types.at(block) == "CrossAttnUpBlock2D";
}

int64_t UNetConfig::up_layers(int block) const {
  return layers_per_block.at(layers_per_block.size() - 1 - block) + 1;
}

int64_t UNetConfig::up_heads(int block) const {
  return attention_heads.at(attention_heads.size() - 1 - block);
}

int64_t UNetConfig::up_cross_attention_dim(int block) const {
  return cross_attention_dim.at(cross_attention_dim.size() - 1 - block);
}

int64_t UNetConfig::up_out_channels(int block) const {
  return block_out_channels.at(block_out_channels.size() - 1 - block);
}

namespace {

// One entry of transformer_layers_per_block: an integer for every layer of the
// block, or a list with one per layer.
std::vector<int64_t> layers_entry(const ConfigReader& r, const std::string& key,
                                  const nlohmann::json& v, int64_t layers) {
  if (is_integer(v)) return std::vector<int64_t>(layers, v.get<int64_t>());
  if (v.is_array() && static_cast<int64_t>(v.size()) == layers &&
      std::all_of(v.begin(), v.end(), [](const nlohmann::json& e) { return is_integer(e); })) {
    std::vector<int64_t> out;
    for (const auto& e : v) out.push_back(e.get<int64_t>());
    return out;
  }
  r.fail(key, "an integer or a list of " + std::to_string(layers) + " integers per block",
         v.dump());
}

}  // namespace

UNetConfig UNetConfig::from_json(const nlohmann::json& json, const std::string& source) {
  ConfigReader r(json, source);
  UNetConfig c;
  c.source = source;

  // Features of UNet2DConditionModel that SD1.5/2.1/XL do not use: refuse them
  // rather than silently computing something else.
  r.require_value("time_embedding_type", "positional", {"positional"});
  r.require_value("resnet_time_scale_shift", "default", {"default"});
  r.require_value("act_fn", "silu", {"silu", "swish"});
  r.require_value("attention_type", "default", {"default"});
  r.require_value("class_embed_type", "null", {"null"});
  r.require_value("num_class_embeds", "null", {"null"});
  r.require_value("encoder_hid_dim_type", "null", {"null"});
  r.require_value("encoder_hid_dim", "null", {"null"});
  r.require_value("time_cond_proj_dim", "null", {"null"});
  r.require_value("time_embedding_act_fn", "null", {"null"});
  r.require_value("timestep_post_act", "null", {"null"});
  r.require_value("addition_embed_type", "null", {"null", "text_time"});
  if (r.boolean("dual_cross_attention", false)) {
    r.fail("dual_cross_attention", "false", "true", "dual cross-attention is not implemented");
  }
  if (r.boolean("center_input_sample", false)) {
    r.fail("center_input_sample", "false", "true", "input centering is not implemented");
  }
  if (r.boolean("resnet_skip_time_act", false)) {
    r.fail("resnet_skip_time_act", "false", "true", "skipping the time activation is not implemented");
  }
  if (r.has("only_cross_attention")) {
    const auto& v = r.at("only_cross_attention");
    const bool any = v.is_boolean() ? v.get<bool>()
                     : v.is_array() ? std::any_of(v.begin(), v.end(),
                                                  [](const nlohmann::json& e) {
                                                    return e.is_boolean() && e.get<bool>();
                                                  })
                                    : true;
    if (any) r.fail("only_cross_attention", "false", v.dump(), "only-cross-attention is not implemented");
  }

  c.in_channels = r.integer("in_channels");
  c.out_channels = r.integer("out_channels");
  if (r.has("sample_size")) {
    const auto& v = r.at("sample_size");
    if (is_integer(v)) c.sample_size = v.get<int64_t>();
    else if (v.is_array() && !v.empty() && is_integer(v[0])) c.sample_size = v[0].get<int64_t>();
    else r.fail("sample_size", "an integer", v.dump());
  }

  c.down_block_types = r.strings("down_block_types");
  c.up_block_types = r.strings("up_block_types");
  c.block_out_channels = r.integers("block_out_channels");
  const std::size_t n = c.down_block_types.size();
  if (n == 0) r.fail("down_block_types", "at least one block", "[]");
  for (auto& t : c.down_block_types) {
    if (t.rfind("UNetRes", 0) == 0) t = t.substr(7);  // diffusers strips this prefix too
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D") {
      r.fail("down_block_types", "'CrossAttnDownBlock2D' or 'DownBlock2D'", "'" + t + "'",
             "this block type is not implemented");
    }
  }
  for (auto& t : c.up_block_types) {
    if (t.rfind("UNetRes", 0) == 0) t = t.substr(7);
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D") {
      r.fail("up_block_types", "'CrossAttnUpBlock2D' or 'UpBlock2D'", "'" + t + "'",
             "this block type is not implemented");
    }
  }
  if (c.up_block_types.size() != n) {
    r.fail("up_block_types", std::to_string(n) + " entries (as many as down_block_types)",
           std::to_string(c.up_block_types.size()));
  }
  if (c.block_out_channels.size() != n) {
    r.fail("block_out_channels", std::to_string(n) + " entries (one per down block)",
           std::to_string(c.block_out_channels.size()));
  }
  c.mid_block_type = r.string("mid_block_type", "UNetMidBlock2DCrossAttn");
  if (c.mid_block_type != "UNetMidBlock2DCrossAttn") {
    r.fail("mid_block_type", "'UNetMidBlock2DCrossAttn'", "'" + c.mid_block_type + "'",
           "this block type is not implemented");
  }

  c.layers_per_block = r.per_block("layers_per_block", n);
  // The attention_head_dim quirk: in these configs it holds the number of heads.
  const std::string heads_key = r.has("num_attention_heads") ? "num_attention_heads"
                                                             : "attention_head_dim";
  c.attention_heads = r.per_block(heads_key, n);

  c.norm_num_groups = r.integer("norm_num_groups", 32);
  c.norm_eps = r.number("norm_eps", 1e-5);
  c.use_linear_projection = r.boolean("use_linear_projection", false);
  c.upcast_attention = r.boolean("upcast_attention", false);
  c.flip_sin_to_cos = r.boolean("flip_sin_to_cos", true);
  c.freq_shift = r.number("freq_shift", 0);
  c.downsample_padding = r.integer("downsample_padding", 1);
  c.mid_block_scale_factor = r.number("mid_block_scale_factor", 1.0);
  c.conv_in_kernel = r.integer("conv_in_kernel", 3);
  c.conv_out_kernel = r.integer("conv_out_kernel", 3);
  if (c.conv_in_kernel % 2 == 0) r.fail("conv_in_kernel", "an odd kernel size", std::to_string(c.conv_in_kernel));
  if (c.conv_out_kernel % 2 == 0) r.fail("conv_out_kernel", "an odd kernel size", std::to_string(c.conv_out_kernel));
  if (c.downsample_padding != 0 && c.downsample_padding != 1) {
    r.fail("downsample_padding", "0 or 1", std::to_string(c.downsample_padding));
  }
  for (int64_t ch : c.block_out_channels) {
    if (ch <= 0 || ch % c.norm_num_groups != 0) {
      r.fail("norm_num_groups", "a divisor of every block_out_channels entry",
             std::to_string(c.norm_num_groups) + " (channels " + std::to_string(ch) + ")");
    }
  }
  c.time_embed_dim = r.integer("time_embedding_dim", 4 * c.block_out_channels[0]);

  // The mid block always has cross-attention, so the width is always needed.
  c.cross_attention_dim = r.per_block("cross_attention_dim", n);

  // transformer_layers_per_block: int, or per block an int or a per-layer list.
  c.down_transformer_layers.resize(n);
  if (!r.has("transformer_layers_per_block")) {
    for (std::size_t i = 0; i < n; ++i) c.down_transformer_layers[i].assign(c.layers_per_block[i], 1);
    c.mid_transformer_layers = 1;
  } else {
    const auto& v = r.at("transformer_layers_per_block");
    if (is_integer(v)) {
      for (std::size_t i = 0; i < n; ++i) {
        c.down_transformer_layers[i].assign(c.layers_per_block[i], v.get<int64_t>());
      }
      c.mid_transformer_layers = v.get<int64_t>();
    } else if (v.is_array() && v.size() == n) {
      for (std::size_t i = 0; i < n; ++i) {
        c.down_transformer_layers[i] =
            layers_entry(r, "transformer_layers_per_block", v[i], c.layers_per_block[i]);
      }
      const auto& last = v[n - 1];
      c.mid_transformer_layers = is_integer(last) ? last.get<int64_t>() : last[0].get<int64_t>();
    } else {
      r.fail("transformer_layers_per_block",
             "an integer or a list of " + std::to_string(n) + " entries", v.dump());
    }
  }
  c.up_transformer_layers.resize(n);
  if (r.has("reverse_transformer_layers_per_block")) {
    const auto& v = r.at("reverse_transformer_layers_per_block");
    if (!v.is_array() || v.size() != n) {
      r.fail("reverse_transformer_layers_per_block",
             "a list of " + std::to_string(n) + " entries (one per up block)", v.dump());
    }
    for (std::size_t j = 0; j < n; ++j) {
      c.up_transformer_layers[j] = layers_entry(r, "reverse_transformer_layers_per_block", v[j],
                                                c.up_layers(static_cast<int>(j)));
    }
  } else {
    for (std::size_t j = 0; j < n; ++j) {
      const auto& down = c.down_transformer_layers[n - 1 - j];
      if (std::any_of(down.begin(), down.end(), [&](int64_t t) { return t != down[0]; })) {
        r.fail("reverse_transformer_layers_per_block", "a list (needed when "
               "transformer_layers_per_block differs between the layers of a block)", "nothing");
      }
      c.up_transformer_layers[j].assign(c.up_layers(static_cast<int>(j)), down.empty() ? 1 : down[0]);
    }
  }

  for (std::size_t i = 0; i < n; ++i) {
    const int64_t ch = c.block_out_channels[i];
    if (c.attention_heads[i] <= 0 || ch % c.attention_heads[i] != 0) {
      r.fail(heads_key, "head counts that divide block_out_channels",
             std::to_string(c.attention_heads[i]) + " heads for " + std::to_string(ch) +
                 " channels in block " + std::to_string(i));
    }
    if (c.layers_per_block[i] <= 0) {
      r.fail("layers_per_block", "positive integers", std::to_string(c.layers_per_block[i]));
    }
  }

  const std::string add = r.string("addition_embed_type", "");
  c.addition_embed_type = add;
  if (c.text_time()) {
    c.addition_time_embed_dim = r.integer("addition_time_embed_dim");
    c.projection_class_embeddings_input_dim = r.integer("projection_class_embeddings_input_dim");
    if (c.projection_class_embeddings_input_dim <= 6 * c.addition_time_embed_dim) {
      r.fail("projection_class_embeddings_input_dim",
             "more than 6 * addition_time_embed_dim (pooled text width + six time ids)",
             std::to_string(c.projection_class_embeddings_input_dim));
    }
  }
  return c;
}

}  // namespace diffsearch::engine
