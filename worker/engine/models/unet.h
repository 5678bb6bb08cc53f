// UNet2DConditionModel (SD1.5, SD2.1, SDXL) built from unet/config.json, with
// the hook points that acceleration policies use (unet_hooks.h).
#pragma once

#include <memory>

#include <ATen/core/Tensor.h>

#include "io/diffusers_folder.h"
#include "worker/engine/models/unet_config.h"
#include "worker/engine/models/unet_hooks.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

struct UNetConditioning {
  at::Tensor encoder_hidden_states;  // [B, T, cross_attention_dim]
  at::Tensor text_embeds;            // SDXL pooled [B, D]; undefined otherwise
  at::Tensor time_ids;               // SDXL [B, 6]; undefined otherwise
  // Optional: this forward's row of time_embeddings() ([D] or [B, D]). Given,
  // the forward skips the timestep MLP (a run computes all its steps' rows
  // in one product before the loop instead of some 13 small kernels a step).
  at::Tensor time_embedding;
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

  // The timestep MLP (time_embedding.linear_2(SiLU(linear_1(sinusoid(t)))))
  // for each of `timesteps` [S]: [S, time_embed_dim] in the run's dtype. Row k
  // is what forward computes for timestep k (SDXL adds its text-time
  // embedding to it per forward).
  at::Tensor time_embeddings(const at::Tensor& timesteps) const;

  const UNetConfig& config() const;
  const RunOptions& options() const;
  int num_down_blocks() const;
  int num_up_blocks() const;
  // Structure, for policies that address layers by index.
  int num_resnets(UNetPart part, int block) const;     // mid: 2
  int num_attentions(UNetPart part, int block) const;  // 0 for DownBlock2D / UpBlock2D
  int num_transformer_blocks(UNetPart part, int block, int layer) const;
  // Lets the up-block resnet at `where` keep the share of its work that
  // comes from the first part of its input, cat(h, skip), for a policy that
  // hands it the same h again (UNetHooks::resnet_input_share): copies of its
  // weights split at h's channels, made once. False where that resnet cannot
  // be split (then it always runs whole). Call it outside CUDA graph capture.
  bool prepare_input_share(const UNetLocation& where) const;
  bool has_downsampler(int down_block) const;
  bool has_upsampler(int up_block) const;

 private:
  UNet2DCondition();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffsearch::engine
