// DPM-Solver++ (multistep, data prediction; midpoint or heun; orders 1-3), as
// diffusers' DPMSolverMultistepScheduler with its defaults.
#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/samplers/sampler_common.h"

namespace diffsearch::engine::sampler_internal {
namespace {

class DpmSolverSampler : public Sampler {
 public:
  DpmSolverSampler(nlohmann::json config, const std::string& source) : source_(source) {
    config_ = std::move(config);
    ConfigReader c(config_, source_);
    // diffusers maps the deprecated "deis" onto dpmsolver++; the first-order
    // (non ++) and SDE variants are not implemented here.
    if (c.json().contains("algorithm_type") && c.json()["algorithm_type"] == "deis") {
      config_["algorithm_type"] = "dpmsolver++";
    }
    c.choice("algorithm_type", {"dpmsolver++"});
    // UniPC's solver types arrive through from_config; diffusers maps them too.
    if (c.json().contains("solver_type") && c.json()["solver_type"].is_string()) {
      const std::string st = c.json()["solver_type"].get<std::string>();
      if (st == "logrho" || st == "bh1" || st == "bh2") config_["solver_type"] = "midpoint";
    }
    heun_ = c.choice("solver_type", {"midpoint", "heun"}) == "heun";
    schedule_ = make_train_schedule(c);
    prediction_type_ = parse_prediction_type(c);
    solver_order_ = c.integer("solver_order");
    if (solver_order_ < 1 || solver_order_ > 3) c.fail("solver_order", "1, 2 or 3");
    spacing_ = c.choice("timestep_spacing", {"leading", "linspace", "trailing"});
    steps_offset_ = c.integer("steps_offset");
    lower_order_final_ = c.boolean("lower_order_final");
    euler_at_final_ = c.boolean("euler_at_final");
    final_sigma_zero_ = c.choice("final_sigmas_type", {"zero", "sigma_min"}) == "zero";
    lambda_min_clipped_ = c.number("lambda_min_clipped");
    thresholding_ = c.boolean("thresholding");
    if (thresholding_) {
      threshold_ratio_ = c.number("dynamic_thresholding_ratio");
      threshold_max_ = c.number("sample_max_value");
    }
    for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                            "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting",
                            "variance_type"}) {
      c.require_off(key);
    }
    if (c.boolean("rescale_betas_zero_snr")) {
      // Zero terminal SNR makes the last sigma infinite; diffusers nudges it.
      schedule_.alphas_cumprod[-1] = 1.0f / 16777216.0f;
      schedule_.abar.back() = 1.0f / 16777216.0f;
    }
    // sigma_t = sqrt((1 - abar) / abar), in float32 tensor arithmetic.
    at::Tensor ac = schedule_.alphas_cumprod;
    at::Tensor sig = ((1 - ac) / ac).pow(0.5).contiguous();
    sigma_table_.assign(sig.data_ptr<float>(), sig.data_ptr<float>() + sig.numel());
    lambda_table_ = (at::log(ac.sqrt()) - at::log((1 - ac).sqrt())).contiguous();
  }

  SamplerKind kind() const override { return SamplerKind::dpmsolver_pp; }

  void set_timesteps(int64_t num_steps) override {
    const int64_t train = schedule_.num_train_timesteps;
    check_num_steps(num_steps, train, source_);
    // Timesteps whose lambda is below lambda_min_clipped are left out.
    const int64_t clipped =
        at::searchsorted(lambda_table_.flip({0}), at::Scalar(lambda_min_clipped_)).item<int64_t>();
    const int64_t last = train - clipped;
    std::vector<int64_t> t = multistep_timesteps(spacing_, num_steps, last, train, steps_offset_);
    sigmas_.clear();
    for (int64_t x : t) {
      if (x < 0 || x >= train) {
        throw InputError(source_ + ": timestep " + std::to_string(x) + " for " +
                         std::to_string(num_steps) + " steps is outside 0.." +
                         std::to_string(train - 1) + " (check steps_offset)");
      }
      sigmas_.push_back(sigma_table_[x]);
    }
    if (t.empty()) throw InputError(source_ + ": no timesteps left for " +
                                    std::to_string(num_steps) + " steps (check lambda_min_clipped)");
    sigmas_.push_back(final_sigma_zero_ ? 0.0f : sigma_table_[0]);
    timesteps_ = std::move(t);
    reset();
  }

  void reset() override {
    outputs_.assign(solver_order_, at::Tensor());
    lower_order_nums_ = 0;
  }

  at::Tensor step(const at::Tensor& model_output, int64_t k, const at::Tensor& sample) override {
    const int64_t n = num_steps();
    DIFFSEARCH_ASSERT(k >= 0 && k < n);
    const bool lower_order_final =
        k == n - 1 && (euler_at_final_ || (lower_order_final_ && n < 15) || final_sigma_zero_);
    const bool lower_order_second = k == n - 2 && lower_order_final_ && n < 15;
    at::Tensor m = to_data_prediction(model_output, k, sample);
    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = m;
    // diffusers runs the update on a float32 copy of the sample (whatever the
    // latents' dtype) and casts the result back.
    at::Tensor x = sample.to(at::kFloat);
    at::Tensor prev;
    if (solver_order_ == 1 || lower_order_nums_ < 1 || lower_order_final) {
      prev = first_order(m, k, x);
    } else if (solver_order_ == 2 || lower_order_nums_ < 2 || lower_order_second) {
      prev = second_order(k, x);
    } else {
      prev = third_order(k, x);
    }
    lower_order_nums_ = std::min(lower_order_nums_ + 1, solver_order_);
    return prev.to(m.scalar_type());
  }

 private:
  at::Tensor to_data_prediction(const at::Tensor& mo, int64_t k, const at::Tensor& sample) const {
    at::Tensor x0;
    const AlphaSigma s = alpha_sigma(sigmas_[k]);
    switch (prediction_type_) {
      case PredictionType::epsilon: x0 = (sample - mo * double(s.sigma)) / double(s.alpha); break;
      case PredictionType::v_prediction:
        x0 = sample * double(s.alpha) - mo * double(s.sigma);
        break;
      case PredictionType::sample: x0 = mo; break;
    }
    if (thresholding_) x0 = threshold_sample(x0, threshold_ratio_, threshold_max_);
    return x0;
  }

  at::Tensor first_order(const at::Tensor& m0, int64_t k, const at::Tensor& x) const {
    const AlphaSigma t = alpha_sigma(sigmas_[k + 1]), s = alpha_sigma(sigmas_[k]);
    const float h = t.lambda - s.lambda;
    const float c = t.alpha * (std::exp(-h) - 1.0f);
    return x * double(t.sigma / s.sigma) - m0 * double(c);
  }

  at::Tensor second_order(int64_t k, const at::Tensor& x) const {
    const AlphaSigma t = alpha_sigma(sigmas_[k + 1]), s0 = alpha_sigma(sigmas_[k]),
                     s1 = alpha_sigma(sigmas_[k - 1]);
    const at::Tensor& m0 = outputs_[solver_order_ - 1];
    const at::Tensor& m1 = outputs_[solver_order_ - 2];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda;
    const float r0 = h0 / h;
    at::Tensor d1 = (m0 - m1) * double(1.0f / r0);
    const float e = std::exp(-h) - 1.0f;
    at::Tensor out = x * double(t.sigma / s0.sigma) - m0 * double(t.alpha * e);
    if (heun_) return out + d1 * double(t.alpha * (e / h + 1.0f));
    return out - d1 * double(0.5f * (t.alpha * e));
  }

  at::Tensor third_order(int64_t k, const at::Tensor& x) const {
    const AlphaSigma t = alpha_sigma(sigmas_[k + 1]), s0 = alpha_sigma(sigmas_[k]),
                     s1 = alpha_sigma(sigmas_[k - 1]), s2 = alpha_sigma(sigmas_[k - 2]);
    const at::Tensor& m0 = outputs_[2];
    const at::Tensor& m1 = outputs_[1];
    const at::Tensor& m2 = outputs_[0];
    const float h = t.lambda - s0.lambda, h0 = s0.lambda - s1.lambda, h1 = s1.lambda - s2.lambda;
    const float r0 = h0 / h, r1 = h1 / h;
    at::Tensor d1_0 = (m0 - m1) * double(1.0f / r0);
    at::Tensor d1_1 = (m1 - m2) * double(1.0f / r1);
    at::Tensor d1 = d1_0 + (d1_0 - d1_1) * double(r0 / (r0 + r1));
    at::Tensor d2 = (d1_0 - d1_1) * double(1.0f / (r0 + r1));
    const float e = std::exp(-h) - 1.0f;
    return x * double(t.sigma / s0.sigma) - m0 * double(t.alpha * e) +
           d1 * double(t.alpha * (e / h + 1.0f)) -
           d2 * double(t.alpha * ((e + h) / (h * h) - 0.5f));
  }

  std::string source_;
  TrainSchedule schedule_;
  std::vector<float> sigma_table_;
  at::Tensor lambda_table_;
  std::vector<float> sigmas_;  // at each timestep, then the final sigma
  std::string spacing_;
  int64_t steps_offset_ = 0;
  int64_t solver_order_ = 2;
  bool heun_ = false;
  bool lower_order_final_ = true;
  bool euler_at_final_ = false;
  bool final_sigma_zero_ = true;
  double lambda_min_clipped_ = 0;
  bool thresholding_ = false;
  double threshold_ratio_ = 0.995, threshold_max_ = 1.0;
  std::vector<at::Tensor> outputs_;  // data predictions, oldest first
  int64_t lower_order_nums_ = 0;
};

}  // namespace

std::unique_ptr<Sampler> make_dpmsolver(nlohmann::json config, const std::string& source) {
  return std::make_unique<DpmSolverSampler>(std::move(config), source);
}

}  // namespace diffsearch::engine::sampler_internal
