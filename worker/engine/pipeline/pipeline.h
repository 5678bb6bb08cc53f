// Text-to-image pipelines (StableDiffusionPipeline, StableDiffusionXLPipeline)
// over a diffusers folder: prompt encoding, seeded latents, the CFG loop with
// its per-step policy hooks, and decoding to images.
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "worker/engine/samplers/sampler.h"
#include "worker/engine/models/unet_hooks.h"
#include "worker/engine/core/weights.h"

namespace diffsearch::engine {

class UNet2DCondition;
class VaeDecoder;

enum class ModelFamily { sd, sdxl };  // SD1.x / SD2.x, or SDXL (two text encoders)

std::string model_family_name(ModelFamily family);  // "sd" or "sdxl"

// What the UNet is conditioned on, for B prompts.
struct PromptEmbeddings {
  at::Tensor positive;           // [B, 77, D]
  at::Tensor negative;           // [B, 77, D] (SDXL, no negative prompt: zeros)
  at::Tensor positive_pooled;    // SDXL [B, P]; undefined for SD
  at::Tensor negative_pooled;    // SDXL [B, P]
  at::Tensor time_ids;           // SDXL [B, 6] (orig h, w, crop top, left, target h, w)
  bool truncated = false;        // some prompt was longer than the tokenizer's 77 ids
};

// Which UNet evaluation a step makes. `guided` is classifier-free guidance,
// one batch with the negative half first; the others run the UNet once on one
// set of embeddings and take its output as the noise prediction (T-GATE drops
// CFG after its gate step conditioned on the negative embeddings).
enum class StepBranch { guided, negative_only, positive_only };

struct StepInfo {
  int64_t step_index = 0;
  int64_t num_steps = 0;
  int64_t timestep = 0;
};

struct StepPlan {
  StepBranch branch = StepBranch::guided;
};

// A per-step policy of the sampling loop (T-GATE and the like): it may change
// how each step evaluates the UNet. UNet-internal caching goes through
// UNetHooks instead; a policy may implement both.
class StepPolicy {
 public:
  virtual ~StepPolicy() = default;
  // Before the first step, with the timesteps the sampler chose.
  virtual void begin_run(const std::vector<int64_t>& timesteps) {}
  // Before each step's UNet evaluation; `plan` arrives with the default
  // (guided when guidance_scale > 1, else positive_only).
  virtual void plan_step(const StepInfo& step, StepPlan& plan) {}
  // After the sampler step, with the new latents.
  virtual void end_step(const StepInfo& step, const at::Tensor& latents) {}
  // Before each replay of a run captured as a CUDA graph with this policy
  // (SampleRunner): fill the device tensors that the policy would have
  // copied from the host during the run (see capturing_graph()), as a run
  // seeded `seed` would have filled them.
  virtual void refill_for_replay(uint64_t seed) {}
};

struct SampleRequest {
  std::vector<std::string> prompts;           // one image each
  // Empty: no negative prompt (diffusers' negative_prompt=None; SDXL then
  // conditions on zeros when force_zeros_for_empty_prompt). Else one per
  // prompt, each encoded, "" included (negative_prompt="", as the fixtures).
  std::vector<std::string> negative_prompts;
  SamplerKind sampler = SamplerKind::ddim;
  int64_t steps = 50;
  double guidance_scale = 7.5;  // CFG when > 1, as diffusers
  int64_t height = 0;           // pixels; 0: the UNet's sample_size * vae scale factor
  int64_t width = 0;
  uint64_t seed = 0;
  // Starting latents [B, C, height/8, width/8] of any float dtype, used
  // instead of the seeded noise when defined.
  at::Tensor latents;
  std::vector<StepPolicy*> policies;  // not owned, applied in order
  UNetHooks* unet_hooks = nullptr;    // not owned; passed to every UNet forward
};

// The host half of encode_prompts: each text encoder's token ids, positive
// prompts first then negative ones, and everything else the device half needs.
// to() moves it to the run device; encode_tokens (the device half) then never
// waits on the host, so a CUDA graph can capture it.
struct PromptTokens {
  std::vector<at::Tensor> ids;        // per text encoder: [B or 2B, 77] long
  std::vector<at::Tensor> positions;  // per text encoder: [B or 2B] long, the pooling position
  int64_t batch = 0;                  // B
  bool zero_negatives = false;        // SDXL, no negative prompt: zeros, nothing encoded
  at::Tensor time_ids;                // SDXL [B, 6] float64; undefined for SD
  bool truncated = false;             // some prompt was longer than 77 ids

  PromptTokens to(const c10::Device& device) const;
};

struct SampleResult {
  at::Tensor latents;  // final latents (before the VAE), run dtype and device
  std::vector<int64_t> timesteps;
  bool prompt_truncated = false;
};

class Pipeline {
 public:
  // Loads tokenizer(s), text encoder(s), UNet, VAE decoder and the scheduler
  // config of a diffusers folder; SDXL when model_index.json names
  // text_encoder_2. Throws InputError for a missing folder, component, file,
  // weight or config field.
  static std::unique_ptr<Pipeline> load(const std::string& model_dir, const RunOptions& options);
  ~Pipeline();

  ModelFamily family() const;
  const RunOptions& options() const;
  const std::string& model_dir() const;
  int64_t vae_scale_factor() const;  // 8 for every SD model
  int64_t latent_channels() const;
  int64_t default_height() const;  // sample_size * vae_scale_factor
  int64_t default_width() const;
  const nlohmann::json& scheduler_config() const;

  // The sampler of `kind` made from this model's scheduler config.
  std::unique_ptr<Sampler> make_sampler(SamplerKind kind) const;

  // Throws InputError unless both are positive multiples of the VAE scale factor.
  void check_size(int64_t height, int64_t width) const;
  PromptEmbeddings encode_prompts(const std::vector<std::string>& prompts,
                                  const std::vector<std::string>& negative_prompts,
                                  int64_t height, int64_t width) const;
  // encode_prompts in its host and device halves (PromptTokens).
  PromptTokens tokenize_prompts(const std::vector<std::string>& prompts,
                                const std::vector<std::string>& negative_prompts,
                                int64_t height, int64_t width) const;
  PromptEmbeddings encode_tokens(const PromptTokens& tokens_on_device) const;
  // The request's image size (0: the model's default), checked.
  std::pair<int64_t, int64_t> image_size(const SampleRequest& request) const;
  // The request's starting latents (given, or seeded noise), checked and in
  // the run dtype on the run device, before the sampler's initial scaling.
  at::Tensor starting_latents(const SampleRequest& request) const;
  // torch.randn((batch, C, h/8, w/8), generator=torch.Generator().manual_seed(seed))
  // on the CPU in float32, then moved to the run dtype and device.
  at::Tensor seeded_latents(int64_t batch, int64_t height, int64_t width, uint64_t seed) const;

  SampleResult sample(const SampleRequest& request) const;
  // The sampling loop alone, from prepared embeddings and starting latents.
  at::Tensor denoise(const PromptEmbeddings& embeddings, at::Tensor latents, Sampler& sampler,
                     int64_t steps, double guidance_scale,
                     const std::vector<StepPolicy*>& policies, UNetHooks* unet_hooks) const;

  // Latents to images [B, 3, H, W] in about [-1, 1] (not clamped), in the
  // run dtype (float32 for fp16 SDXL, whose VAE diffusers upcasts).
  at::Tensor decode(const at::Tensor& latents) const;

  const UNet2DCondition& unet() const;
  const VaeDecoder& vae() const;

 private:
  Pipeline();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The images as users save them: (x / 2 + 0.5) clamped to [0, 1], times 255,
// rounded; CPU uint8 [B, H, W, 3] (diffusers' postprocess to PIL).
at::Tensor images_to_uint8(const at::Tensor& images);

// The standard normal stream of torch.randn(shape, generator=
// torch.Generator().manual_seed(seed)) on the CPU, float32.
at::Tensor seeded_randn(const std::vector<int64_t>& shape, uint64_t seed);

}  // namespace diffsearch::engine
