// Test helpers shared by the text encoder, sampler and pipeline tests: the
// golden fixtures' JSON and tensors, and (from rel_err.h) the relative error
// they are held to.
#pragma once

#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/diffusers_folder.h"
#include "io/safetensors.h"
#include "tests/support/engine/rel_err.h"
#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine::testing {

inline std::string fixtures_dir() { return std::string(DIFFSEARCH_TEST_DATA) + "/fixtures"; }

inline std::string model_dir(const std::string& model) {
  return fixtures_dir() + "/models/" + model;
}

// The reference JSON as written by Python, whose json module spells the
// scheduler's lambda_min_clipped as -Infinity (not JSON); such tokens become
// strings, which the samplers accept for that field.
inline nlohmann::json reference_json(const std::string& model) {
  std::string text;
  {
    const std::string path = fixtures_dir() + "/reference/" + model + ".json";
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error("cannot open " + path);
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
    const std::string bare = std::string(": ") + token;
    const std::string quoted = std::string(": \"") + token + "\"";
    for (std::size_t pos = 0; (pos = text.find(bare, pos)) != std::string::npos;) {
      text.replace(pos, bare.size(), quoted);
      pos += quoted.size();
    }
  }
  return nlohmann::json::parse(text);
}

inline at::Tensor reference_tensor(const std::string& model, const std::string& name) {
  auto file = io::SafetensorsFile::open(fixtures_dir() + "/reference/" + model + ".safetensors");
  return tensor_copy(file->tensor(name));
}

// The ids of `prompt` for tokenizer `which` (0 or 1) from the JSON's list.
inline at::Tensor reference_ids(const nlohmann::json& ref, const std::string& prompt, int which) {
  for (const auto& entry : ref.at("tokenizer")) {
    if (entry.at("prompt").get<std::string>() == prompt) {
      auto ids = entry.at("ids").at(which).get<std::vector<int64_t>>();
      return torch::tensor(ids, torch::kLong).unsqueeze(0);
    }
  }
  throw std::runtime_error("prompt not in the fixture: " + prompt);
}

// The pipeline of a fixture model, loaded once per model and dtype (loading
// is the slow part of a short test).
inline const Pipeline& cached_pipeline(const std::string& model, c10::ScalarType dtype) {
  static std::map<std::pair<std::string, int>, std::unique_ptr<Pipeline>> cache;
  auto& p = cache[{model, static_cast<int>(dtype)}];
  if (!p) p = Pipeline::load(model_dir(model), {dtype, c10::Device(c10::kCPU)});
  return *p;
}

// The request that reproduces fixture case `c` of a model's reference JSON.
inline SampleRequest fixture_request(const nlohmann::json& ref, const nlohmann::json& c) {
  SampleRequest r;
  r.prompts = {ref.at("prompt").get<std::string>()};
  // The fixtures pass negative_prompt="" (encoded, for SDXL too: diffusers
  // zeroes the negative embeddings only for negative_prompt=None).
  r.negative_prompts = {ref.at("negative_prompt").get<std::string>()};
  r.sampler = parse_sampler_kind(c.at("sampler").get<std::string>());
  r.steps = c.at("steps").get<int64_t>();
  r.guidance_scale = ref.at("guidance_scale").get<double>();
  r.height = ref.at("height").get<int64_t>();
  r.width = ref.at("width").get<int64_t>();
  r.seed = ref.at("init_latents").at("seed").get<uint64_t>();
  return r;
}

}  // namespace diffsearch::engine::testing
