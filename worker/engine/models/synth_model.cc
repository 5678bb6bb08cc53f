// synth-model: configs from data/synth/<like>/, weights enumerated by the
// engine's own model builders in synthesize mode, the VAE encoder (which the
// engine never runs) enumerated here so diffusers can load the folder too.
#include "worker/engine/models/synth_model.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/diffusers_folder.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/safetensors.h"
#include "worker/engine/clip/clip_text.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/models/unet.h"
#include "worker/engine/models/unet_config.h"
#include "worker/engine/models/vae.h"
#include "worker/engine/core/weights.h"

namespace fs = std::filesystem;

namespace diffsearch::engine {
namespace {

c10::ScalarType weight_dtype(const std::string& name) {
  if (name == "fp32") return c10::kFloat;
  if (name == "fp16") return c10::kHalf;
  if (name == "bf16") return c10::kBFloat16;
  throw InputError("--dtype '" + name + "': expected fp32, fp16 or bf16");
}

void write_json(const fs::path& path, const nlohmann::json& json) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path);
  out << json.dump(2) << "\n";
  if (!out) throw InputError(path.string() + ": cannot write");
}

void save_weights(const Weights& w, const fs::path& path) {
  std::vector<io::TensorData> tensors;
  tensors.reserve(w.synthesized().size());
  for (const auto& [name, tensor] : w.synthesized()) tensors.push_back(tensor_to_data(name, tensor));
  fs::create_directories(path.parent_path());
  io::write_safetensors(path.string(), tensors, {{"format", "pt"}});
}

void copy_data_file(const fs::path& from, const fs::path& to) {
  if (!fs::exists(from)) {
    throw InputError(from.string() + ": missing from the data folder (set DIFFSEARCH_DATA_DIR to "
                                     "the project's data/ directory)");
  }
  fs::create_directories(to.parent_path());
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// diffusers' Encoder of AutoencoderKL, which the engine does not run: the
// names and shapes save_pretrained writes, so the folder loads there whole.
void synthesize_vae_encoder(Weights& w, const nlohmann::json& config) {
  const auto channels = config.at("block_out_channels").get<std::vector<int64_t>>();
  const int64_t layers = config.at("layers_per_block").get<int64_t>();
  const int64_t in_channels = config.value("in_channels", 3);
  const int64_t latent = config.value("latent_channels", 4);
  const int64_t groups = config.value("norm_num_groups", 32);
  const double eps = 1e-6;
  auto resnet = [&](const std::string& p, int64_t cin, int64_t cout) {
    GroupNorm::load(w, p + ".norm1", groups, cin, eps);
    Conv2d::load(w, p + ".conv1", cin, cout, 3);
    GroupNorm::load(w, p + ".norm2", groups, cout, eps);
    Conv2d::load(w, p + ".conv2", cout, cout, 3);
    if (cin != cout) Conv2d::load(w, p + ".conv_shortcut", cin, cout, 1);
  };
  Conv2d::load(w, "encoder.conv_in", in_channels, channels[0], 3);
  int64_t cin = channels[0];
  for (std::size_t i = 0; i < channels.size(); ++i) {
    for (int64_t j = 0; j < layers; ++j) {
      resnet("encoder.down_blocks." + std::to_string(i) + ".resnets." + std::to_string(j),
             j == 0 ? cin : channels[i], channels[i]);
    }
    cin = channels[i];
    if (i + 1 < channels.size()) {
      Conv2d::load(w, "encoder.down_blocks." + std::to_string(i) + ".downsamplers.0.conv", cin, cin, 3);
    }
  }
  resnet("encoder.mid_block.resnets.0", cin, cin);
  GroupNorm::load(w, "encoder.mid_block.attentions.0.group_norm", groups, cin, eps);
  for (const char* proj : {"to_q", "to_k", "to_v", "to_out.0"}) {
    Linear::load(w, std::string("encoder.mid_block.attentions.0.") + proj, cin, cin);
  }
  resnet("encoder.mid_block.resnets.1", cin, cin);
  GroupNorm::load(w, "encoder.conv_norm_out", groups, cin, eps);
  Conv2d::load(w, "encoder.conv_out", cin, 2 * latent, 3);
  if (config.value("use_quant_conv", true)) Conv2d::load(w, "quant_conv", 2 * latent, 2 * latent, 1);
}

}  // namespace

std::string default_data_dir() {
  if (const char* env = std::getenv("DIFFSEARCH_DATA_DIR")) return env;
#ifdef DIFFSEARCH_SOURCE_DATA_DIR
  return DIFFSEARCH_SOURCE_DATA_DIR;
#else
  return "data";
#endif
}

void synth_model_write(const SynthModelOptions& options, const std::string& out_dir) {
  if (options.like != "sd15" && options.like != "sd21" && options.like != "sdxl") {
    throw InputError("--like '" + options.like + "': expected sd15, sd21 or sdxl");
  }
  const fs::path out(out_dir);
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out))) {
    throw InputError(out_dir + ": already exists and is not an empty folder (choose a new --out)");
  }
  const fs::path data(options.data_dir.empty() ? default_data_dir() : options.data_dir);
  const fs::path templates = data / "synth" / options.like;
  const std::string size = options.full_size ? "full" : "tiny";
  RunOptions run;
  run.dtype = weight_dtype(options.dtype);
  run.device = c10::Device(c10::kCPU);
  const std::string file_dtype = options.dtype == "fp32" ? "float32" :
                                 options.dtype == "fp16" ? "float16" : "bfloat16";

  fs::create_directories(out);
  copy_data_file(templates / "model_index.json", out / "model_index.json");
  copy_data_file(templates / "scheduler.json", out / "scheduler" / "scheduler_config.json");
  const bool xl = options.like == "sdxl";
  uint64_t seed = options.seed;

  for (const std::string& suffix : {std::string(""), std::string("_2")}) {
    if (!suffix.empty() && !xl) continue;
    const std::string tok = "tokenizer" + suffix;
    copy_data_file(data / "clip-bpe" / "vocab.json", out / tok / "vocab.json");
    copy_data_file(data / "clip-bpe" / "merges.txt", out / tok / "merges.txt");
    copy_data_file(templates / tok / "tokenizer_config.json", out / tok / "tokenizer_config.json");

    const std::string component = "text_encoder" + suffix;
    nlohmann::json config = io::read_json_file((templates / (component + "." + size + ".json")).string());
    config["dtype"] = file_dtype;
    write_json(out / component / "config.json", config);
    const bool projection = !suffix.empty();
    Weights w = Weights::synthesize(seed++, run);
    ClipTextEncoder::load(ClipTextConfig::from_json(config, component, projection), w);
    save_weights(w, out / component / "model.safetensors");
  }

  {
    nlohmann::json config = io::read_json_file((templates / ("unet." + size + ".json")).string());
    write_json(out / "unet" / "config.json", config);
    Weights w = Weights::synthesize(seed++, run);
    UNet2DCondition::load(UNetConfig::from_json(config, "unet/config.json"), w);
    save_weights(w, out / "unet" / "diffusion_pytorch_model.safetensors");
  }
  {
    nlohmann::json config = io::read_json_file((templates / ("vae." + size + ".json")).string());
    write_json(out / "vae" / "config.json", config);
    Weights w = Weights::synthesize(seed++, run);
    synthesize_vae_encoder(w, config);
    VaeDecoder::load(VaeConfig::from_json(config, "vae/config.json"), w);
    save_weights(w, out / "vae" / "diffusion_pytorch_model.safetensors");
  }
  log::info("wrote " + std::string(options.full_size ? "full-size" : "tiny") + " " + options.like +
            " model with random weights to " + out_dir);
}

}  // namespace diffsearch::engine
