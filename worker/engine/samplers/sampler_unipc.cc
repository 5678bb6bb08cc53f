// UniPC (predictor UniP, corrector UniC; bh1/bh2; any order), as diffusers'
// UniPCMultistepScheduler with its defaults (bh2, predict_x0, order 2).
#include <algorithm>
#include <cmath>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/samplers/sampler_common.h"

namespace diffsearch::engine::sampler_internal {
namespace {

class UniPcSampler : public Sampler {
 public:
  UniPcSampler(nlohmann::json config, const std::string& source) : source_(source) {
    config_ = std::move(config);
    ConfigReader c(config_, source_);
    // DPM-Solver's solver types arrive through from_config; diffusers maps them.
    if (c.json().contains("solver_type") && c.json()["solver_type"].is_string()) {
      const std::string st = c.json()["solver_type"].get<std::string>();
      if (st == "midpoint" || st == "heun" || st == "logrho") config_["solver_type"] = "bh2";
    }
    bh1_ = c.choice("solver_type", {"bh1", "bh2"}) == "bh1";
    schedule_ = make_train_schedule(c);
    prediction_type_ = parse_prediction_type(c);
    solver_order_ = c.integer("solver_order");
    if (solver_order_ < 1) c.fail("solver_order", "a positive integer");
    predict_x0_ = c.boolean("predict_x0");
    spacing_ = c.choice("timestep_spacing", {"leading", "linspace", "trailing"});
    steps_offset_ = c.integer("steps_offset");
    lower_order_final_ = c.boolean("lower_order_final");
    final_sigma_zero_ = c.choice("final_sigmas_type", {"zero", "sigma_min"}) == "zero";
    thresholding_ = c.boolean("thresholding");
    if (thresholding_) {
      threshold_ratio_ = c.number("dynamic_thresholding_ratio");
      threshold_max_ = c.number("sample_max_value");
    }
    for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                            "use_flow_sigmas", "use_dynamic_shifting", "solver_p",
                            "shift_terminal"}) {
      c.require_off(key);
    }
    if (c.json().contains("disable_corrector") && !c.json()["disable_corrector"].is_null()) {
      const auto& dc = c.json()["disable_corrector"];
      if (!dc.is_array()) c.fail("disable_corrector", "a list of step indices");
      for (const auto& v : dc) {
        if (!v.is_number_integer()) c.fail("disable_corrector", "a list of step indices");
        disable_corrector_.push_back(v.get<int64_t>());
      }
    }
    if (c.boolean("rescale_betas_zero_snr")) {
      schedule_.alphas_cumprod[-1] = 1.0f / 16777216.0f;
      schedule_.abar.back() = 1.0f / 16777216.0f;
    }
    at::Tensor ac = schedule_.alphas_cumprod;
    at::Tensor sig = ((1 - ac) / ac).pow(0.5).contiguous();
    sigma_table_.assign(sig.data_ptr<float>(), sig.data_ptr<float>() + sig.numel());
  }

  SamplerKind kind() const override { return SamplerKind::unipc; }

  void set_timesteps(int64_t num_steps) override {
    const int64_t train = schedule_.num_train_timesteps;
    check_num_steps(num_steps, train, source_);
    std::vector<int64_t> t = multistep_timesteps(spacing_, num_steps, train, train, steps_offset_);
    sigmas_.clear();
    for (int64_t x : t) {
      if (x < 0 || x >= train) {
        throw InputError(source_ + ": timestep " + std::to_string(x) + " for " +
                         std::to_string(num_steps) + " steps is outside 0.." +
                         std::to_string(train - 1) + " (check steps_offset)");
      }
      sigmas_.push_back(sigma_table_[x]);
    }
    sigmas_.push_back(final_sigma_zero_ ? 0.0f : sigma_table_[0]);
    timesteps_ = std::move(t);
    reset();
  }

  void reset() override {
    outputs_.assign(solver_order_, at::Tensor());
    lower_order_nums_ = 0;
    this_order_ = 0;
    last_sample_ = at::Tensor();
  }

  at::Tensor step(const at::Tensor& model_output, int64_t k, const at::Tensor& sample) override {
    const int64_t n = num_steps();
    DIFFSEARCH_ASSERT(k >= 0 && k < n);
    const bool disabled = std::find(disable_corrector_.begin(), disable_corrector_.end(), k - 1) !=
                          disable_corrector_.end();
    const bool use_corrector = k > 0 && !disabled && last_sample_.defined();
    at::Tensor m = convert(model_output, k, sample);
    at::Tensor x = sample;
    // The corrector refines the current sample with the model output just
    // computed at it, before the predictor moves on.
    if (use_corrector) x = corrector(m, last_sample_, this_order_, k);
    std::rotate(outputs_.begin(), outputs_.begin() + 1, outputs_.end());
    outputs_.back() = m;
    int64_t order = lower_order_final_ ? std::min(solver_order_, n - k) : solver_order_;
    this_order_ = std::min(order, lower_order_nums_ + 1);
    DIFFSEARCH_ASSERT(this_order_ > 0);
    last_sample_ = x;
    at::Tensor prev = predictor(x, this_order_, k);
    lower_order_nums_ = std::min(lower_order_nums_ + 1, solver_order_);
    return prev;
  }

 private:
  at::Tensor convert(const at::Tensor& mo, int64_t k, const at::Tensor& sample) const {
    const AlphaSigma s = alpha_sigma(sigmas_[k]);
    if (predict_x0_) {
      at::Tensor x0;
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
    switch (prediction_type_) {
      case PredictionType::epsilon: return mo;
      case PredictionType::v_prediction: return mo * double(s.alpha) + sample * double(s.sigma);
      case PredictionType::sample: return (sample - mo * double(s.alpha)) / double(s.sigma);
    }
    return mo;
  }

  // The quantities UniP and UniC share for a step from sigma_s0 to sigma_t:
  // h, the ratios r_k of earlier steps, and b_i of the bh1/bh2 variants.
  struct Coefficients {
    AlphaSigma t, s0;
    float h = 0, hh = 0, h_phi_1 = 0, b_h = 0;
    std::vector<float> rks;  // r_1 .. r_{order-1}, then 1
    std::vector<float> b;    // b_1 .. b_order
  };

  Coefficients coefficients(int64_t index_t, int64_t index_s0,
                            const std::vector<int64_t>& earlier, int64_t order) const {
    Coefficients c;
    c.t = alpha_sigma(sigmas_[index_t]);
    c.s0 = alpha_sigma(sigmas_[index_s0]);
    c.h = c.t.lambda - c.s0.lambda;
    for (int64_t si : earlier) {
      const AlphaSigma s = alpha_sigma(sigmas_[si]);
      c.rks.push_back((s.lambda - c.s0.lambda) / c.h);
    }
    c.rks.push_back(1.0f);
    c.hh = predict_x0_ ? -c.h : c.h;
    c.h_phi_1 = std::expm1(c.hh);
    float h_phi_k = c.h_phi_1 / c.hh - 1.0f;
    double factorial = 1;
    c.b_h = bh1_ ? c.hh : std::expm1(c.hh);
    for (int64_t i = 1; i <= order; ++i) {
      c.b.push_back(h_phi_k * static_cast<float>(factorial) / c.b_h);
      factorial *= static_cast<double>(i + 1);
      h_phi_k = h_phi_k / c.hh - static_cast<float>(1.0 / factorial);
    }
    return c;
  }

  // Solves R rho = b with R[i][j] = r_j^i over the first `n` rows/columns, in
  // float32 as diffusers does, then rounds rho to the sample's dtype.
  static std::vector<double> solve(const Coefficients& c, int64_t n, c10::ScalarType dtype) {
    at::Tensor r = torch::empty({n, n}, torch::kFloat);
    at::Tensor b = torch::empty({n}, torch::kFloat);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) r[i][j] = std::pow(c.rks[j], static_cast<float>(i));
      b[i] = c.b[i];
    }
    at::Tensor rho = at::linalg_solve(r, b).to(dtype).to(torch::kDouble).contiguous();
    return {rho.data_ptr<double>(), rho.data_ptr<double>() + n};
  }

  static double in_dtype(double value, c10::ScalarType dtype) {
    return torch::scalar_tensor(value, torch::kDouble).to(dtype).to(torch::kDouble).item<double>();
  }

  at::Tensor predictor(const at::Tensor& x, int64_t order, int64_t k) const {
    const at::Tensor& m0 = outputs_.back();
    std::vector<int64_t> earlier;
    for (int64_t i = 1; i < order; ++i) earlier.push_back(k - i);
    Coefficients c = coefficients(k + 1, k, earlier, order);
    at::Tensor pred_res;
    if (order >= 2) {
      std::vector<double> rho =
          order == 2 ? std::vector<double>{in_dtype(0.5, x.scalar_type())}
                     : solve(c, order - 1, x.scalar_type());
      for (int64_t i = 1; i < order; ++i) {
        const at::Tensor& mi = outputs_[solver_order_ - 1 - i];
        at::Tensor d1 = (mi - m0) / double(c.rks[i - 1]);
        pred_res = pred_res.defined() ? pred_res + d1 * rho[i - 1] : d1 * rho[i - 1];
      }
    }
    at::Tensor out;
    if (predict_x0_) {
      out = x * double(c.t.sigma / c.s0.sigma) - m0 * double(c.t.alpha * c.h_phi_1);
      if (pred_res.defined()) out = out - pred_res * double(c.t.alpha * c.b_h);
    } else {
      out = x * double(c.t.alpha / c.s0.alpha) - m0 * double(c.t.sigma * c.h_phi_1);
      if (pred_res.defined()) out = out - pred_res * double(c.t.sigma * c.b_h);
    }
    return out.to(x.scalar_type());
  }

  // UniC: the step from the previous sample redone with the model output at
  // the current one; the current (uncorrected) sample itself is not needed.
  at::Tensor corrector(const at::Tensor& model_t, const at::Tensor& last_sample, int64_t order,
                       int64_t k) const {
    // outputs_ still ends with the previous step's output here.
    const at::Tensor& m0 = outputs_.back();
    const at::Tensor& x = last_sample;
    std::vector<int64_t> earlier;
    for (int64_t i = 1; i < order; ++i) earlier.push_back(k - (i + 1));
    Coefficients c = coefficients(k, k - 1, earlier, order);
    std::vector<double> rho = order == 1 ? std::vector<double>{in_dtype(0.5, x.scalar_type())}
                                         : solve(c, order, x.scalar_type());
    at::Tensor corr_res;
    for (int64_t i = 1; i < order; ++i) {
      const at::Tensor& mi = outputs_[solver_order_ - 1 - i];
      at::Tensor d1 = (mi - m0) / double(c.rks[i - 1]);
      corr_res = corr_res.defined() ? corr_res + d1 * rho[i - 1] : d1 * rho[i - 1];
    }
    at::Tensor d1_t = model_t - m0;
    at::Tensor inner = corr_res.defined() ? corr_res + d1_t * rho.back() : d1_t * rho.back();
    at::Tensor out;
    if (predict_x0_) {
      out = x * double(c.t.sigma / c.s0.sigma) - m0 * double(c.t.alpha * c.h_phi_1);
      out = out - inner * double(c.t.alpha * c.b_h);
    } else {
      out = x * double(c.t.alpha / c.s0.alpha) - m0 * double(c.t.sigma * c.h_phi_1);
      out = out - inner * double(c.t.sigma * c.b_h);
    }
    return out.to(x.scalar_type());
  }

  std::string source_;
  TrainSchedule schedule_;
  std::vector<float> sigma_table_;
  std::vector<float> sigmas_;
  std::string spacing_;
  int64_t steps_offset_ = 0;
  int64_t solver_order_ = 2;
  bool bh1_ = false;
  bool predict_x0_ = true;
  bool lower_order_final_ = true;
  bool final_sigma_zero_ = true;
  bool thresholding_ = false;
  double threshold_ratio_ = 0.995, threshold_max_ = 1.0;
  std::vector<int64_t> disable_corrector_;
  std::vector<at::Tensor> outputs_;  // converted model outputs, oldest first
  int64_t lower_order_nums_ = 0;
  int64_t this_order_ = 0;
  at::Tensor last_sample_;
};

}  // namespace

std::unique_ptr<Sampler> make_unipc(nlohmann::json config, const std::string& source) {
  return std::make_unique<UniPcSampler>(std::move(config), source);
}

}  // namespace diffsearch::engine::sampler_internal
