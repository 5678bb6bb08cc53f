// Locating and opening the files of a diffusers model folder, with errors that
// say which file is missing and how the folder should look.
#include "io/diffusers_folder.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace fs = std::filesystem;

namespace diffsearch::io {

WeightSet::WeightSet(std::string description, std::vector<std::shared_ptr<SafetensorsFile>> files)
    : description_(std::move(description)), files_(std::move(files)) {}

bool WeightSet::contains(const std::string& name) const {
  return std::any_of(files_.begin(), files_.end(),
                     [&](const auto& f) { return f->contains(name); });
}

const TensorView& WeightSet::tensor(const std::string& name) const {
  for (const auto& f : files_) {
    if (f->contains(name)) return f->tensor(name);
  }
  throw InputError(description_ + ": missing weight '" + name +
                   "' (the checkpoint does not match this architecture's config.json; "
                   "was it saved by a different model class?)");
}

std::vector<std::string> WeightSet::names() const {
  std::set<std::string> all;
  for (const auto& f : files_) {
    for (auto& n : f->names()) all.insert(n);
  }
  return {all.begin(), all.end()};
}

DiffusersFolder::DiffusersFolder(std::string dir) : dir_(std::move(dir)) {
  if (!fs::is_directory(dir_)) {
    throw InputError(dir_ + ": model folder not found (expected a diffusers folder with "
                            "model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)");
  }
  const std::string index_path = (fs::path(dir_) / "model_index.json").string();
  if (!fs::exists(index_path)) {
    throw InputError(index_path + ": missing; " + dir_ +
                     " is not a diffusers model folder (save it with pipe.save_pretrained)");
  }
  index_ = std::make_shared<nlohmann::json>(read_json_file(index_path));
  if (!index_->is_object()) throw InputError(index_path + ": expected a JSON object");
}

const nlohmann::json& DiffusersFolder::model_index() const { return *index_; }

std::string DiffusersFolder::component_dir(const std::string& component) const {
  return (fs::path(dir_) / component).string();
}

bool DiffusersFolder::has_component(const std::string& component) const {
  return index_->contains(component) && fs::is_directory(component_dir(component));
}

nlohmann::json DiffusersFolder::component_config(const std::string& component) const {
  const fs::path folder = component_dir(component);
  if (!fs::is_directory(folder)) {
    throw InputError(folder.string() + ": component folder missing from model " + dir_);
  }
  const fs::path path =
      folder / (component.rfind("scheduler", 0) == 0 ? "scheduler_config.json" : "config.json");
  nlohmann::json config = read_json_file(path.string());
  if (!config.is_object()) throw InputError(path.string() + ": expected a JSON object");
  return config;
}

int DiffusersFolder::native_resolution() const {
  const nlohmann::json unet = component_config("unet");
  const std::string unet_file = component_dir("unet") + "/config.json";
  // sample_size is an integer, or [height, width] in some configs.
  nlohmann::json size = unet.contains("sample_size") ? unet["sample_size"] : nlohmann::json();
  if (size.is_array() && !size.empty()) size = size[0];
  if (!size.is_number_integer() || size.get<int64_t>() < 1 || size.get<int64_t>() > 4096) {
    throw InputError(unet_file + ": field \"sample_size\" must be a positive integer (the latent side); found " +
                     (unet.contains("sample_size") ? unet["sample_size"].dump() : std::string("nothing")) +
                     " (or pass --resolution MODEL=PIXELS)");
  }
  const nlohmann::json vae = component_config("vae");
  const std::string vae_file = component_dir("vae") + "/config.json";
  if (!vae.contains("block_out_channels") || !vae["block_out_channels"].is_array() ||
      vae["block_out_channels"].empty() || vae["block_out_channels"].size() > 8) {
    throw InputError(vae_file + ": field \"block_out_channels\" must be a list of 1 to 8 channel counts " +
                     "(its length sets the VAE's scale factor; or pass --resolution MODEL=PIXELS)");
  }
  const int scale = 1 << (vae["block_out_channels"].size() - 1);
  return static_cast<int>(size.get<int64_t>()) * scale;
}

WeightSet DiffusersFolder::component_weights(const std::string& component, bool prefer_fp16) const {
  const fs::path folder = component_dir(component);
  if (!fs::is_directory(folder)) {
    throw InputError(folder.string() + ": component folder missing from model " + dir_);
  }
  std::vector<std::string> stems = {"diffusion_pytorch_model", "model"};
  std::vector<std::string> variants = prefer_fp16 ? std::vector<std::string>{".fp16", ""}
                                                  : std::vector<std::string>{"", ".fp16"};
  for (const auto& stem : stems) {
    for (const auto& variant : variants) {
      const fs::path single = folder / (stem + variant + ".safetensors");
      if (fs::exists(single)) {
        return WeightSet(single.string(), {SafetensorsFile::open(single.string())});
      }
      const fs::path index = folder / (stem + variant + ".safetensors.index.json");
      if (fs::exists(index)) {
        nlohmann::json idx = read_json_file(index.string());
        if (!idx.contains("weight_map") || !idx["weight_map"].is_object()) {
          throw InputError(index.string() + ": field 'weight_map' missing or not an object");
        }
        std::set<std::string> shards;
        for (const auto& [name, file] : idx["weight_map"].items()) {
          if (!file.is_string()) {
            throw InputError(index.string() + ": weight_map['" + name + "'] is not a file name");
          }
          shards.insert(file.get<std::string>());
        }
        std::vector<std::shared_ptr<SafetensorsFile>> files;
        for (const auto& shard : shards) {
          files.push_back(SafetensorsFile::open((folder / shard).string()));
        }
        return WeightSet(index.string(), std::move(files));
      }
    }
  }
  throw InputError(folder.string() + ": no safetensors weights found (expected " +
                   "diffusion_pytorch_model.safetensors, model.safetensors, their .fp16 "
                   "variants or a sharded *.safetensors.index.json; .bin checkpoints are not "
                   "supported: convert them with save_pretrained(safe_serialization=True))");
}

}  // namespace diffsearch::io
