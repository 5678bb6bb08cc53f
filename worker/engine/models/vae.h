// The decoder half of AutoencoderKL (post_quant_conv + Decoder), driven by
// vae/config.json: latents to images in about [-1, 1].
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include "io/diffusers_folder.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

struct VaeConfig {
  std::string source;  // the config.json it came from
  int64_t latent_channels = 4;
  int64_t out_channels = 3;
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 1;  // the decoder's up blocks have one more resnet
  int64_t norm_num_groups = 32;
  double scaling_factor = 0.18215;
  // SDXL-style per-channel statistics (both or neither); empty when null.
  std::vector<double> latents_mean, latents_std;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  // Throws InputError naming `source` and the field.
  static VaeConfig from_json(const nlohmann::json& json, const std::string& source);
};

class VaeDecoder {
 public:
  static std::unique_ptr<VaeDecoder> load(const io::DiffusersFolder& folder,
                                          const RunOptions& options);
  static std::unique_ptr<VaeDecoder> load(const VaeConfig& config, io::WeightSet weights,
                                          const RunOptions& options);
  // From Weights already made (synth-model passes synthesizing ones).
  static std::unique_ptr<VaeDecoder> load(const VaeConfig& config, Weights& weights);
  ~VaeDecoder();

  // latents [B, latent_channels, h, w] as the sampler produces them: divided by
  // scaling_factor first (SDXL-style mean/std when the config has them), then
  // post_quant_conv and the decoder. Returns [B, out_channels, 8h, 8w] in
  // about [-1, 1], not clamped.
  at::Tensor decode(const at::Tensor& latents) const;
  // AutoencoderKL.decode itself: z is already divided by the scaling factor.
  at::Tensor decode_raw(const at::Tensor& z) const;

  double scaling_factor() const;
  const VaeConfig& config() const;

 private:
  VaeDecoder();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffsearch::engine
