// The Sampler interface (DDIM, DPM-Solver++, UniPC) and its factory, which
// builds a sampler from a model's scheduler config as diffusers' from_config.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

namespace diffsearch::engine {

enum class SamplerKind { ddim, dpmsolver_pp, unipc };

// "ddim", "dpmsolver++", "unipc" (the CLI's and the fixtures' names).
std::string sampler_slug(SamplerKind kind);
// Throws InputError naming the accepted slugs.
SamplerKind parse_sampler_kind(const std::string& slug);
// The diffusers class each kind mirrors ("DDIMScheduler", ...).
std::string sampler_class_name(SamplerKind kind);

enum class PredictionType { epsilon, v_prediction, sample };

class Sampler {
 public:
  virtual ~Sampler() = default;

  virtual SamplerKind kind() const = 0;
  // Chooses the timesteps for `num_steps` steps and clears the state that
  // multistep solvers keep between steps.
  virtual void set_timesteps(int64_t num_steps) = 0;
  // Clears the multistep state only (same timesteps), to sample again.
  virtual void reset() = 0;
  // One denoising step: model_output is the (guided) UNet output at
  // timesteps()[step_index] for `sample`; returns the sample at the next
  // timestep. Steps must run in order 0, 1, ... after set_timesteps/reset.
  virtual at::Tensor step(const at::Tensor& model_output, int64_t step_index,
                          const at::Tensor& sample) = 0;

  const std::vector<int64_t>& timesteps() const { return timesteps_; }
  int64_t num_steps() const { return static_cast<int64_t>(timesteps_.size()); }
  PredictionType prediction_type() const { return prediction_type_; }
  // The starting latents are N(0, 1) times this (1 for all three samplers).
  double init_noise_sigma() const { return 1.0; }
  // The resolved config: the sampler's defaults, overridden by the model's keys.
  const nlohmann::json& config() const { return config_; }

 protected:
  std::vector<int64_t> timesteps_;
  PredictionType prediction_type_ = PredictionType::epsilon;
  nlohmann::json config_;
};

// The sampler's own defaults overridden by every key the model's scheduler
// config writes (keys starting with '_' aside), as diffusers'
// `Sampler.from_config(pipe.scheduler.config)` resolves them: a key the model's
// JSON does not write keeps the new sampler's default (DPM-Solver++ and UniPC
// default to linspace spacing, DDIM to leading). `source` names the file in
// errors. Unsupported settings (Karras sigmas, SDE variants, ...) throw
// InputError naming the field.
nlohmann::json resolve_sampler_config(SamplerKind kind, const nlohmann::json& model_config);
std::unique_ptr<Sampler> make_sampler(SamplerKind kind, const nlohmann::json& model_config,
                                      const std::string& source = "scheduler_config.json");
std::unique_ptr<Sampler> make_sampler(const std::string& slug, const nlohmann::json& model_config,
                                      const std::string& source = "scheduler_config.json");

}  // namespace diffsearch::engine
