// DDIM (eta 0), as diffusers' DDIMScheduler: x0 and eps from the model
// output, then x_{t'} = sqrt(abar_t') x0 + sqrt(1 - abar_t') eps.
#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/samplers/sampler_common.h"

namespace diffsearch::engine::sampler_internal {
namespace {

class DdimSampler : public Sampler {
 public:
  DdimSampler(nlohmann::json config, const std::string& source) : source_(source) {
    config_ = std::move(config);
    ConfigReader c(config_, source_);
    schedule_ = make_train_schedule(c);
    prediction_type_ = parse_prediction_type(c);
    spacing_ = c.choice("timestep_spacing", {"leading", "linspace", "trailing"});
    steps_offset_ = c.integer("steps_offset");
    clip_sample_ = c.boolean("clip_sample");
    clip_sample_range_ = c.number("clip_sample_range");
    thresholding_ = c.boolean("thresholding");
    if (thresholding_) {
      threshold_ratio_ = c.number("dynamic_thresholding_ratio");
      threshold_max_ = c.number("sample_max_value");
    }
    // With set_alpha_to_one the step to "before t = 0" lands on abar = 1.
    final_abar_ = c.boolean("set_alpha_to_one") ? 1.0f : schedule_.abar[0];
  }

  SamplerKind kind() const override { return SamplerKind::ddim; }

  void set_timesteps(int64_t num_steps) override {
    const int64_t train = schedule_.num_train_timesteps;
    check_num_steps(num_steps, train, source_);
    std::vector<int64_t> t;
    if (spacing_ == "leading") {
      const int64_t ratio = train / num_steps;
      for (int64_t i = num_steps - 1; i >= 0; --i) t.push_back(i * ratio + steps_offset_);
    } else if (spacing_ == "linspace") {
      t = rounded_linspace(0, static_cast<double>(train - 1), num_steps);
      std::reverse(t.begin(), t.end());
    } else {
      t = rounded_arange(static_cast<double>(train), 0,
                         -static_cast<double>(train) / static_cast<double>(num_steps));
      for (auto& x : t) x -= 1;
    }
    for (int64_t x : t) {
      if (x < 0 || x >= train) {
        throw InputError(source_ + ": timestep " + std::to_string(x) + " for " +
                         std::to_string(num_steps) + " steps is outside 0.." +
                         std::to_string(train - 1) + " (check steps_offset)");
      }
    }
    timesteps_ = std::move(t);
    step_ratio_ = train / num_steps;
  }

  void reset() override {}

  at::Tensor step(const at::Tensor& model_output, int64_t step_index,
                  const at::Tensor& sample) override {
    DIFFSEARCH_ASSERT(step_index >= 0 && step_index < num_steps());
    const int64_t t = timesteps_[step_index];
    // The previous timestep is t - train/N whatever the spacing (diffusers).
    const int64_t prev = t - step_ratio_;
    // Coefficients in float32, as diffusers computes them on its float32
    // alphas_cumprod, then applied in the latents' dtype.
    const float a = schedule_.abar[t];
    const float a_prev = prev >= 0 ? schedule_.abar[prev] : final_abar_;
    const float b = 1.0f - a;
    const double sqrt_a = std::sqrt(a), sqrt_b = std::sqrt(b);
    const double sqrt_a_prev = std::sqrt(a_prev);
    const double direction = std::sqrt(1.0f - a_prev);
    if (prediction_type_ == PredictionType::epsilon && !thresholding_ && !clip_sample_) {
      // x' = sqrt(a') (x - sqrt(b) eps) / sqrt(a) + sqrt(1 - a') eps, gathered
      // into one coefficient per input: two kernels a step instead of six.
      return at::add(sample * (sqrt_a_prev / sqrt_a), model_output,
                     direction - sqrt_a_prev * sqrt_b / sqrt_a);
    }
    at::Tensor x0, eps;
    switch (prediction_type_) {
      case PredictionType::epsilon:
        x0 = (sample - model_output * sqrt_b) / sqrt_a;
        eps = model_output;
        break;
      case PredictionType::v_prediction:
        x0 = sample * sqrt_a - model_output * sqrt_b;
        eps = model_output * sqrt_a + sample * sqrt_b;
        break;
      case PredictionType::sample:
        x0 = model_output;
        eps = (sample - x0 * sqrt_a) / sqrt_b;
        break;
    }
    if (thresholding_) {
      x0 = threshold_sample(x0, threshold_ratio_, threshold_max_);
    } else if (clip_sample_) {
      x0 = x0.clamp(-clip_sample_range_, clip_sample_range_);
    }
    return x0 * sqrt_a_prev + eps * direction;
  }

 private:
  std::string source_;
  TrainSchedule schedule_;
  std::string spacing_;
  int64_t steps_offset_ = 0;
  bool clip_sample_ = false;
  double clip_sample_range_ = 1.0;
  bool thresholding_ = false;
  double threshold_ratio_ = 0.995, threshold_max_ = 1.0;
  float final_abar_ = 1.0f;
  int64_t step_ratio_ = 1;
};

}  // namespace

std::unique_ptr<Sampler> make_ddim(nlohmann::json config, const std::string& source) {
  return std::make_unique<DdimSampler>(std::move(config), source);
}

}  // namespace diffsearch::engine::sampler_internal
