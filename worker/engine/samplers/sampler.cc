// The sampler factory (diffusers' from_config semantics) and the pieces the
// three samplers share: config reads, the training schedule, timestep grids.
#include "worker/engine/samplers/sampler.h"

#include <algorithm>
#include <cfenv>
#include <cmath>
#include <limits>

#include <torch/torch.h>

#include "io/error.h"
#include "worker/engine/samplers/sampler_common.h"

namespace diffsearch::engine {
namespace sampler_internal {

[[noreturn]] void ConfigReader::fail(const char* key, const std::string& expected) const {
  const std::string found = config_.contains(key) ? config_.at(key).dump() : "nothing";
  throw InputError(source_ + ": field '" + key + "' must be " + expected + ", found " + found);
}

int64_t ConfigReader::integer(const char* key) const {
  if (!config_.contains(key)) fail(key, "an integer");
  const auto& v = config_.at(key);
  if (v.is_number_integer()) return v.get<int64_t>();
  // Python writes 1000.0 for a float-typed int now and then.
  if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) {
    return static_cast<int64_t>(v.get<double>());
  }
  fail(key, "an integer");
}

double ConfigReader::number(const char* key) const {
  if (!config_.contains(key)) fail(key, "a number");
  const auto& v = config_.at(key);
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    // Python's json writes float('-inf') as -Infinity, which is not JSON and
    // arrives here as a string when the reader is lenient.
    const std::string s = v.get<std::string>();
    if (s == "-Infinity" || s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "Infinity" || s == "inf") return std::numeric_limits<double>::infinity();
  }
  fail(key, "a number");
}

bool ConfigReader::boolean(const char* key) const {
  if (!config_.contains(key) || !config_.at(key).is_boolean()) fail(key, "true or false");
  return config_.at(key).get<bool>();
}

std::string ConfigReader::string(const char* key) const {
  if (!config_.contains(key) || !config_.at(key).is_string()) fail(key, "a string");
  return config_.at(key).get<std::string>();
}

bool ConfigReader::is_null(const char* key) const {
  return !config_.contains(key) || config_.at(key).is_null();
}

std::string ConfigReader::choice(const char* key, const std::vector<std::string>& allowed) const {
  std::string expected = "one of";
  for (std::size_t i = 0; i < allowed.size(); ++i) {
    expected += (i ? ", '" : " '") + allowed[i] + "'";
  }
  if (!config_.contains(key) || !config_.at(key).is_string()) fail(key, expected);
  const std::string value = config_.at(key).get<std::string>();
  for (const auto& a : allowed) {
    if (a == value) return value;
  }
  fail(key, expected);
}

void ConfigReader::require_off(const char* key) const {
  if (!config_.contains(key)) return;
  const auto& v = config_.at(key);
  if (v.is_null() || (v.is_boolean() && !v.get<bool>())) return;
  throw InputError(source_ + ": field '" + key + "' is " + v.dump() +
                   ", which diffsearch's samplers do not implement (set it to false/null, or "
                   "remove it from the scheduler config)");
}

TrainSchedule make_train_schedule(const ConfigReader& config) {
  TrainSchedule s;
  s.num_train_timesteps = config.integer("num_train_timesteps");
  if (s.num_train_timesteps < 2) config.fail("num_train_timesteps", "at least 2");
  const auto f32 = torch::TensorOptions().dtype(torch::kFloat);
  at::Tensor betas;
  if (!config.is_null("trained_betas")) {
    const auto& tb = config.json().at("trained_betas");
    if (!tb.is_array() || static_cast<int64_t>(tb.size()) != s.num_train_timesteps) {
      config.fail("trained_betas", "a list of num_train_timesteps numbers");
    }
    std::vector<double> values;
    for (const auto& v : tb) {
      if (!v.is_number()) config.fail("trained_betas", "a list of numbers");
      values.push_back(v.get<double>());
    }
    betas = torch::tensor(values, torch::kDouble).to(torch::kFloat);
  } else {
    const std::string schedule =
        config.choice("beta_schedule", {"linear", "scaled_linear", "squaredcos_cap_v2"});
    const double start = config.number("beta_start"), end = config.number("beta_end");
    if (schedule == "linear") {
      betas = torch::linspace(start, end, s.num_train_timesteps, f32);
    } else if (schedule == "scaled_linear") {
      betas = torch::linspace(std::sqrt(start), std::sqrt(end), s.num_train_timesteps, f32).pow(2);
    } else {
      // The cosine schedule of Nichol & Dhariwal, in float64 then stored as float32.
      const double pi = 3.14159265358979323846;
      auto alpha_bar = [&](double t) {
        const double c = std::cos((t + 0.008) / 1.008 * pi / 2);
        return c * c;
      };
      std::vector<double> values;
      const double n = static_cast<double>(s.num_train_timesteps);
      for (int64_t i = 0; i < s.num_train_timesteps; ++i) {
        const double t1 = i / n, t2 = (i + 1) / n;
        values.push_back(std::min(1 - alpha_bar(t2) / alpha_bar(t1), 0.999));
      }
      betas = torch::tensor(values, torch::kDouble).to(torch::kFloat);
    }
  }
  if (config.boolean("rescale_betas_zero_snr")) {
    // Rescale so the last timestep has zero SNR (Lin et al. 2023, algorithm 1).
    at::Tensor abar_sqrt = torch::cumprod(1.0 - betas, 0).sqrt();
    at::Tensor first = abar_sqrt[0].clone(), last = abar_sqrt[-1].clone();
    abar_sqrt = (abar_sqrt - last) * (first / (first - last));
    at::Tensor abar = abar_sqrt.pow(2);
    at::Tensor alphas = torch::cat({abar.slice(0, 0, 1), abar.slice(0, 1) / abar.slice(0, 0, -1)});
    betas = 1 - alphas;
  }
  s.alphas_cumprod = torch::cumprod(1.0 - betas, 0).contiguous();
  const float* p = s.alphas_cumprod.data_ptr<float>();
  s.abar.assign(p, p + s.num_train_timesteps);
  return s;
}

PredictionType parse_prediction_type(const ConfigReader& config) {
  const std::string p = config.choice("prediction_type", {"epsilon", "v_prediction", "sample"});
  if (p == "v_prediction") return PredictionType::v_prediction;
  if (p == "sample") return PredictionType::sample;
  return PredictionType::epsilon;
}

namespace {
int64_t round_half_even(double x) {
  // numpy rounds halves to even; nearbyint does too in the default mode.
  DIFFSEARCH_ASSERT(std::fegetround() == FE_TONEAREST);
  return static_cast<int64_t>(std::nearbyint(x));
}
}  // namespace

std::vector<int64_t> rounded_linspace(double start, double stop, int64_t num) {
  std::vector<int64_t> out;
  if (num <= 0) return out;
  if (num == 1) return {round_half_even(start)};
  const double step = (stop - start) / static_cast<double>(num - 1);
  for (int64_t i = 0; i < num - 1; ++i) out.push_back(round_half_even(i * step + start));
  out.push_back(round_half_even(stop));  // numpy sets the endpoint exactly
  return out;
}

std::vector<int64_t> rounded_arange(double start, double stop, double step) {
  std::vector<int64_t> out;
  const double length = std::ceil((stop - start) / step);
  if (!(length > 0)) return out;
  // numpy fills from the first two values: x_i = x_0 + i * (x_1 - x_0).
  const double delta = (start + step) - start;
  for (int64_t i = 0; i < static_cast<int64_t>(length); ++i) {
    out.push_back(round_half_even(i == 0 ? start : start + i * delta));
  }
  return out;
}

std::vector<int64_t> multistep_timesteps(const std::string& spacing, int64_t num_steps,
                                         int64_t last_timestep, int64_t num_train_timesteps,
                                         int64_t steps_offset) {
  std::vector<int64_t> t;
  if (spacing == "linspace") {
    t = rounded_linspace(0, static_cast<double>(last_timestep - 1), num_steps + 1);
    std::reverse(t.begin(), t.end());
    t.pop_back();
  } else if (spacing == "leading") {
    const int64_t ratio = last_timestep / (num_steps + 1);
    for (int64_t i = num_steps; i >= 1; --i) t.push_back(i * ratio + steps_offset);
  } else {
    const double ratio = static_cast<double>(num_train_timesteps) / static_cast<double>(num_steps);
    t = rounded_arange(static_cast<double>(last_timestep), 0, -ratio);
    for (auto& x : t) x -= 1;
  }
  return t;
}

at::Tensor threshold_sample(const at::Tensor& x0, double ratio, double max_value) {
  const auto dtype = x0.scalar_type();
  at::Tensor x = (dtype == at::kFloat || dtype == at::kDouble) ? x0 : x0.to(at::kFloat);
  const auto shape = x.sizes().vec();
  x = x.reshape({shape[0], -1});
  at::Tensor s = at::quantile(x.abs(), ratio, /*dim=*/1).clamp(1.0, max_value).unsqueeze(1);
  x = at::max(at::min(x, s), -s) / s;
  return x.reshape(shape).to(dtype);
}

AlphaSigma alpha_sigma(float sigma) {
  AlphaSigma r;
  r.alpha = 1.0f / std::sqrt(sigma * sigma + 1.0f);
  r.sigma = sigma * r.alpha;
  r.lambda = std::log(r.alpha) - std::log(r.sigma);
  return r;
}

void check_num_steps(int64_t num_steps, int64_t num_train_timesteps, const std::string& source) {
  if (num_steps < 1 || num_steps > num_train_timesteps) {
    throw InputError("number of steps " + std::to_string(num_steps) +
                     " is outside 1.." + std::to_string(num_train_timesteps) +
                     " (num_train_timesteps of " + source + ")");
  }
}

}  // namespace sampler_internal

std::string sampler_slug(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::ddim: return "ddim";
    case SamplerKind::dpmsolver_pp: return "dpmsolver++";
    case SamplerKind::unipc: return "unipc";
  }
  DIFFSEARCH_ASSERT(false);
  return "";
}

std::string sampler_class_name(SamplerKind kind) {
  switch (kind) {
    case SamplerKind::ddim: return "DDIMScheduler";
    case SamplerKind::dpmsolver_pp: return "DPMSolverMultistepScheduler";
    case SamplerKind::unipc: return "UniPCMultistepScheduler";
  }
  DIFFSEARCH_ASSERT(false);
  return "";
}

SamplerKind parse_sampler_kind(const std::string& slug) {
  for (auto k : {SamplerKind::ddim, SamplerKind::dpmsolver_pp, SamplerKind::unipc}) {
    if (sampler_slug(k) == slug) return k;
  }
  throw InputError("unknown sampler '" + slug + "' (expected ddim, dpmsolver++ or unipc)");
}

namespace {

// Each sampler's constructor defaults, as diffusers' __init__ signatures give them.
nlohmann::json sampler_defaults(SamplerKind kind) {
  nlohmann::json common = {
      {"num_train_timesteps", 1000},   {"beta_start", 0.0001},
      {"beta_end", 0.02},              {"beta_schedule", "linear"},
      {"trained_betas", nullptr},      {"prediction_type", "epsilon"},
      {"thresholding", false},         {"dynamic_thresholding_ratio", 0.995},
      {"sample_max_value", 1.0},       {"steps_offset", 0},
      {"rescale_betas_zero_snr", false}};
  if (kind == SamplerKind::ddim) {
    common.update({{"clip_sample", true},
                   {"set_alpha_to_one", true},
                   {"clip_sample_range", 1.0},
                   {"timestep_spacing", "leading"}});
    return common;
  }
  common.update({{"solver_order", 2},
                 {"lower_order_final", true},
                 {"use_karras_sigmas", false},
                 {"use_exponential_sigmas", false},
                 {"use_beta_sigmas", false},
                 {"use_flow_sigmas", false},
                 {"flow_shift", 1.0},
                 {"final_sigmas_type", "zero"},
                 {"timestep_spacing", "linspace"},
                 {"use_dynamic_shifting", false},
                 {"time_shift_type", "exponential"}});
  if (kind == SamplerKind::dpmsolver_pp) {
    common.update({{"algorithm_type", "dpmsolver++"},
                   {"solver_type", "midpoint"},
                   {"euler_at_final", false},
                   {"use_lu_lambdas", false},
                   {"lambda_min_clipped", -std::numeric_limits<double>::infinity()},
                   {"variance_type", nullptr}});
  } else {
    common.update({{"predict_x0", true},
                   {"solver_type", "bh2"},
                   {"disable_corrector", nlohmann::json::array()},
                   {"solver_p", nullptr},
                   {"sigma_min", nullptr},
                   {"sigma_max", nullptr},
                   {"shift_terminal", nullptr}});
  }
  return common;
}

}  // namespace

nlohmann::json resolve_sampler_config(SamplerKind kind, const nlohmann::json& model_config) {
  nlohmann::json resolved = sampler_defaults(kind);
  if (model_config.is_null()) {
    resolved["_class_name"] = sampler_class_name(kind);
    return resolved;
  }
  if (!model_config.is_object()) {
    throw InputError("scheduler config: expected a JSON object, found " + model_config.dump());
  }
  // Keys the saving class left at its defaults are listed here; from_config
  // gives them the new class's defaults instead.
  std::vector<std::string> use_defaults;
  if (model_config.contains("_use_default_values") &&
      model_config["_use_default_values"].is_array()) {
    for (const auto& k : model_config["_use_default_values"]) {
      if (k.is_string()) use_defaults.push_back(k.get<std::string>());
    }
  }
  for (const auto& [key, value] : model_config.items()) {
    if (!key.empty() && key[0] == '_') continue;
    if (std::find(use_defaults.begin(), use_defaults.end(), key) != use_defaults.end()) continue;
    // Keys this sampler does not know (PNDM's skip_prk_steps, ...) are kept,
    // as diffusers keeps them, but nothing reads them.
    resolved[key] = value;
  }
  if (model_config.contains("_diffusers_version")) {
    resolved["_diffusers_version"] = model_config["_diffusers_version"];
  }
  resolved["_class_name"] = sampler_class_name(kind);
  return resolved;
}

std::unique_ptr<Sampler> make_sampler(SamplerKind kind, const nlohmann::json& model_config,
                                      const std::string& source) {
  nlohmann::json config = resolve_sampler_config(kind, model_config);
  switch (kind) {
    case SamplerKind::ddim: return sampler_internal::make_ddim(std::move(config), source);
    case SamplerKind::dpmsolver_pp:
      return sampler_internal::make_dpmsolver(std::move(config), source);
    case SamplerKind::unipc: return sampler_internal::make_unipc(std::move(config), source);
  }
  DIFFSEARCH_ASSERT(false);
  return nullptr;
}

std::unique_ptr<Sampler> make_sampler(const std::string& slug, const nlohmann::json& model_config,
                                      const std::string& source) {
  return make_sampler(parse_sampler_kind(slug), model_config, source);
}

}  // namespace diffsearch::engine
