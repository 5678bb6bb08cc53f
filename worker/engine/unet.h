// UNet2DConditionModel (SD1.5, SD2.1, SDXL) built from unet/config.json, with
// the hook points that acceleration policies use (unet_hooks.h).
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

#include "io/diffusers_folder.h"
#include "worker/engine/unet_config.h"
#include "worker/engine/unet_hooks.h"
#include "worker/engine/weights.h"

namespace diffsearch::engine {

struct UNetConditioning {
  at::Tensor encoder_hidden_states;  // [B, T, cross_attention_dim]
  at::Tensor text_embeds;            // SDXL pooled [B, D]; undefined otherwise
  at::Tensor time_ids;               // SDXL [B, 6]; undefined otherwise
};

class UNet2DCondition {
 public:
  // Reads unet/config.json and the unet weights (the .fp16 variant first for
  // half-precision runs). Every weight is checked by name and shape.
  static std::unique_ptr<UNet2DCondition> load(const io::DiffusersFolder& folder,
                                               const RunOptions& options);
  static std::unique_ptr<UNet2DCondition> load(const UNetConfig& config, io::WeightSet weights,
                                               const RunOptions& options);
  // From Weights already made (synth-model passes synthesizing ones).
  static std::unique_ptr<UNet2DCondition> load(const UNetConfig& config, Weights& weights);
  ~UNet2DCondition();

  // sample [B, in_channels, H, W]; timesteps [B], [1] or a scalar. Inputs are
  // moved to the run's device and dtype. Returns [B, out_channels, H, W].
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timesteps,
                     const UNetConditioning& cond, UNetHooks* hooks = nullptr) const;

  const UNetConfig& config() const;
  const RunOptions& options() const;
  int num_down_blocks() const;
  int num_up_blocks() const;
  // Structure, for policies that address layers by index.
  int num_resnets(UNetPart part, int block) const;     // mid: 2
  int num_attentions(UNetPart part, int block) const;  // 0 for DownBlock2D / UpBlock2D
  int num_transformer_blocks(UNetPart part, int block, int layer) const;
  bool has_downsampler(int down_block) const;
  bool has_upsampler(int up_block) const;

 private:
  UNet2DCondition();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffsearch::engine
