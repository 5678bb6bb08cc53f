// Diffusers model folders: model_index.json, each component's config.json and
// its safetensors weights (single file, the .fp16 variant, or sharded).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/json_file.h"
#include "io/safetensors.h"

namespace diffsearch::io {

// The weights of one component, possibly spread over several shards.
class WeightSet {
 public:
  WeightSet() = default;
  WeightSet(std::string description, std::vector<std::shared_ptr<SafetensorsFile>> files);

  bool contains(const std::string& name) const;
  // Throws InputError naming the component and the files searched.
  const TensorView& tensor(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted, over all shards
  const std::string& description() const { return description_; }

 private:
  std::string description_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
};

class DiffusersFolder {
 public:
  // Throws InputError when `dir` or its model_index.json is missing or malformed.
  explicit DiffusersFolder(std::string dir);

  const std::string& dir() const { return dir_; }
  const nlohmann::json& model_index() const;
  // True when model_index.json names the component and its folder exists.
  bool has_component(const std::string& component) const;
  std::string component_dir(const std::string& component) const;
  // `<component>/config.json`, or `scheduler/scheduler_config.json`.
  nlohmann::json component_config(const std::string& component) const;
  // Weights: `<stem>.safetensors`, else `<stem>.fp16.safetensors` (or the
  // reverse with prefer_fp16), else a sharded `<stem>.safetensors.index.json`.
  WeightSet component_weights(const std::string& component, bool prefer_fp16 = false) const;
  // The image side the model was made for, in pixels: the UNet's sample_size
  // times the VAE's scale factor (2^(VAE blocks - 1)), what diffusers'
  // pipelines default to (512 for stable-diffusion-2-1-base, 768 for
  // stable-diffusion-2-1). InputError naming the file and field when either
  // config lacks it.
  int native_resolution() const;

 private:
  std::string dir_;
  std::shared_ptr<nlohmann::json> index_;
};

}  // namespace diffsearch::io
