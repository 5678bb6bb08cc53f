// What the three samplers share and the factory needs: typed reads of the
// resolved scheduler config, the training noise schedule, timestep spacings.
// Internal to worker/engine (sampler.h is the public interface).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "worker/engine/samplers/sampler.h"

namespace diffsearch::engine::sampler_internal {

// Reads fields of the resolved config; errors name the file and the field.
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& config, std::string source)
      : config_(config), source_(std::move(source)) {}
  int64_t integer(const char* key) const;
  double number(const char* key) const;  // accepts "-Infinity"/"Infinity" strings too
  bool boolean(const char* key) const;
  std::string string(const char* key) const;
  bool is_null(const char* key) const;
  // One of `allowed`, else InputError listing them.
  std::string choice(const char* key, const std::vector<std::string>& allowed) const;
  // The setting must be false/null/absent: features diffusers has that these
  // samplers do not implement are refused rather than silently ignored.
  void require_off(const char* key) const;
  const nlohmann::json& json() const { return config_; }
  const std::string& source() const { return source_; }
  [[noreturn]] void fail(const char* key, const std::string& expected) const;

 private:
  const nlohmann::json& config_;
  std::string source_;
};

// alphas_cumprod over the training timesteps, computed as diffusers does
// (float32 tensors, same operations) so the coefficients match bit for bit.
struct TrainSchedule {
  at::Tensor alphas_cumprod;  // float32, CPU, [num_train_timesteps]
  std::vector<float> abar;    // the same values, for scalar arithmetic
  int64_t num_train_timesteps = 1000;
};
TrainSchedule make_train_schedule(const ConfigReader& config);

PredictionType parse_prediction_type(const ConfigReader& config);

// numpy's round(linspace(start, stop, num)) and round(arange(start, stop, step))
// for float step, reproducing numpy's arithmetic (then rounded half to even).
std::vector<int64_t> rounded_linspace(double start, double stop, int64_t num);
std::vector<int64_t> rounded_arange(double start, double stop, double step);

// Timesteps of the multistep solvers (DPM-Solver++, UniPC): N + 1 points with
// the last dropped, for leading/linspace; N points for trailing.
std::vector<int64_t> multistep_timesteps(const std::string& spacing, int64_t num_steps,
                                         int64_t last_timestep, int64_t num_train_timesteps,
                                         int64_t steps_offset);

// Dynamic thresholding of a predicted x0 (Imagen): per-sample quantile of |x|,
// clamped to [1, max_value], then clamp and rescale.
at::Tensor threshold_sample(const at::Tensor& x0, double ratio, double max_value);

// sigma -> (alpha_t, sigma_t) of the variance-preserving process, in float32
// as diffusers computes them on 0-d float32 tensors.
struct AlphaSigma {
  float alpha;
  float sigma;
  float lambda;  // log alpha - log sigma
};
AlphaSigma alpha_sigma(float sigma);

// Throws InputError when num_steps is outside [1, num_train_timesteps].
void check_num_steps(int64_t num_steps, int64_t num_train_timesteps, const std::string& source);

std::unique_ptr<Sampler> make_ddim(nlohmann::json config, const std::string& source);
std::unique_ptr<Sampler> make_dpmsolver(nlohmann::json config, const std::string& source);
std::unique_ptr<Sampler> make_unipc(nlohmann::json config, const std::string& source);

}  // namespace diffsearch::engine::sampler_internal
