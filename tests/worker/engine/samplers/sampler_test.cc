// Tests of the samplers: timesteps and resolved configs against every case of
// the fixtures (from_config semantics), spacings, and the solvers' algebra on
// a model whose data distribution is a single point (every sampler must land
// on it exactly).
#include "worker/engine/samplers/sampler.h"

#include <cmath>

#include <gtest/gtest.h>

#include "io/error.h"
#include "tests/support/engine/pipeline_fixtures.h"

namespace diffsearch::engine {
namespace {

using testing::model_dir;
using testing::reference_json;

const char* const kModels[] = {"tiny-sd15", "tiny-sd21", "tiny-sdxl"};

// JSON values as the fixture writes them (-Infinity arrives as a string).
double as_number(const nlohmann::json& v) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "-Infinity") return -INFINITY;
    if (s == "Infinity") return INFINITY;
  }
  return v.get<double>();
}

void expect_same_value(const std::string& where, const nlohmann::json& mine,
                       const nlohmann::json& theirs) {
  if (theirs.is_number() || (theirs.is_string() && mine.is_number())) {
    ASSERT_TRUE(mine.is_number()) << where << ": " << mine.dump();
    EXPECT_EQ(as_number(mine), as_number(theirs)) << where;
  } else {
    EXPECT_EQ(mine, theirs) << where;
  }
}

TEST(SamplerFixtures, TimestepsOfEveryCaseFromItsSchedulerConfig) {
  int checked = 0;
  for (const char* model : kModels) {
    const auto ref = reference_json(model);
    for (const auto& [name, c] : ref.at("cases").items()) {
      if (!c.contains("scheduler_config")) continue;
      const std::string slug = c.at("sampler").get<std::string>();
      auto sampler = make_sampler(slug, c.at("scheduler_config"));
      sampler->set_timesteps(c.at("steps").get<int64_t>());
      EXPECT_EQ(sampler->timesteps(), c.at("timesteps").get<std::vector<int64_t>>())
          << model << " " << name;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 18);
}

// The model folder's own scheduler config (PNDM, DDIM, Euler) through
// from_config gives the same timesteps and the same resolved config as
// diffusers recorded, for every case including the accelerated ones.
TEST(SamplerFixtures, FromModelSchedulerConfigMatchesDiffusers) {
  int checked = 0;
  for (const char* model : kModels) {
    io::DiffusersFolder folder(model_dir(model));
    const nlohmann::json model_config = folder.component_config("scheduler");
    const auto ref = reference_json(model);
    for (const auto& [name, c] : ref.at("cases").items()) {
      const std::string slug = c.at("sampler").get<std::string>();
      auto sampler = make_sampler(slug, model_config);
      sampler->set_timesteps(c.at("steps").get<int64_t>());
      EXPECT_EQ(sampler->timesteps(), c.at("timesteps").get<std::vector<int64_t>>())
          << model << " " << name;
      if (c.contains("scheduler_config")) {
        for (const auto& [key, value] : c.at("scheduler_config").items()) {
          if (key[0] == '_') continue;
          ASSERT_TRUE(sampler->config().contains(key)) << model << " " << name << " " << key;
          expect_same_value(std::string(model) + " " + name + " " + key,
                            sampler->config().at(key), value);
        }
        EXPECT_EQ(sampler->config().at("_class_name"), c.at("scheduler_config").at("_class_name"));
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 18);
}

TEST(SamplerFixtures, PredictionTypeComesFromTheModel) {
  io::DiffusersFolder sd21(model_dir("tiny-sd21"));
  io::DiffusersFolder sd15(model_dir("tiny-sd15"));
  for (const char* slug : {"ddim", "dpmsolver++", "unipc"}) {
    EXPECT_EQ(make_sampler(slug, sd21.component_config("scheduler"))->prediction_type(),
              PredictionType::v_prediction);
    EXPECT_EQ(make_sampler(slug, sd15.component_config("scheduler"))->prediction_type(),
              PredictionType::epsilon);
  }
}

nlohmann::json sd_config(const std::string& spacing) {
  return {{"beta_start", 0.00085},      {"beta_end", 0.012},  {"beta_schedule", "scaled_linear"},
          {"num_train_timesteps", 1000}, {"steps_offset", 1}, {"clip_sample", false},
          {"set_alpha_to_one", false},   {"timestep_spacing", spacing}};
}

std::vector<int64_t> timesteps_of(const std::string& slug, const std::string& spacing, int64_t n) {
  auto s = make_sampler(slug, sd_config(spacing));
  s->set_timesteps(n);
  return s->timesteps();
}

TEST(SamplerSpacing, Ddim) {
  EXPECT_EQ(timesteps_of("ddim", "leading", 4), (std::vector<int64_t>{751, 501, 251, 1}));
  EXPECT_EQ(timesteps_of("ddim", "linspace", 10),
            (std::vector<int64_t>{999, 888, 777, 666, 555, 444, 333, 222, 111, 0}));
  EXPECT_EQ(timesteps_of("ddim", "trailing", 3), (std::vector<int64_t>{999, 666, 332}));
  EXPECT_EQ(timesteps_of("ddim", "trailing", 7),
            (std::vector<int64_t>{999, 856, 713, 570, 428, 285, 142}));
  EXPECT_EQ(timesteps_of("ddim", "linspace", 1), (std::vector<int64_t>{0}));
}

TEST(SamplerSpacing, Multistep) {
  for (const char* slug : {"dpmsolver++", "unipc"}) {
    // linspace(0, 999, 11) has 499.5 in the middle: numpy rounds it to 500.
    EXPECT_EQ(timesteps_of(slug, "linspace", 10),
              (std::vector<int64_t>{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}));
    EXPECT_EQ(timesteps_of(slug, "leading", 4), (std::vector<int64_t>{801, 601, 401, 201}));
    EXPECT_EQ(timesteps_of(slug, "trailing", 3), (std::vector<int64_t>{999, 666, 332}));
  }
}

TEST(SamplerConfig, FromConfigKeepsOnlyWrittenKeys) {
  // A DDIM config saved with timestep_spacing at its default lists it in
  // _use_default_values: DPM-Solver++ then uses its own default (linspace).
  nlohmann::json saved = sd_config("leading");
  saved["_use_default_values"] = {"timestep_spacing"};
  saved["_class_name"] = "DDIMScheduler";
  auto dpm = make_sampler(SamplerKind::dpmsolver_pp, saved);
  EXPECT_EQ(dpm->config().at("timestep_spacing"), "linspace");
  EXPECT_EQ(dpm->config().at("_class_name"), "DPMSolverMultistepScheduler");
  auto ddim = make_sampler(SamplerKind::ddim, nlohmann::json::object());
  EXPECT_EQ(ddim->config().at("beta_schedule"), "linear");
  EXPECT_EQ(ddim->config().at("clip_sample"), true);
  // UniPC's bh2 reaching DPM-Solver++ becomes midpoint, as in diffusers.
  nlohmann::json unipc_saved = sd_config("linspace");
  unipc_saved["solver_type"] = "bh2";
  EXPECT_NO_THROW(make_sampler(SamplerKind::dpmsolver_pp, unipc_saved));
}

TEST(SamplerConfig, BadSettingsAreInputErrors) {
  auto expect_error = [](const std::string& slug, nlohmann::json config, const char* field) {
    try {
      make_sampler(slug, config, "model/scheduler/scheduler_config.json")->set_timesteps(10);
      ADD_FAILURE() << "no error for " << field;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("scheduler_config.json"), std::string::npos)
          << e.what();
    }
  };
  nlohmann::json c = sd_config("sideways");
  expect_error("ddim", c, "timestep_spacing");
  c = sd_config("leading");
  c["use_karras_sigmas"] = true;
  expect_error("dpmsolver++", c, "use_karras_sigmas");
  c = sd_config("leading");
  c["algorithm_type"] = "sde-dpmsolver++";
  expect_error("dpmsolver++", c, "algorithm_type");
  c = sd_config("leading");
  c["prediction_type"] = "flow";
  expect_error("unipc", c, "prediction_type");
  c = sd_config("leading");
  c["beta_schedule"] = "exotic";
  expect_error("ddim", c, "beta_schedule");
  c = sd_config("leading");
  c["num_train_timesteps"] = "many";
  expect_error("unipc", c, "num_train_timesteps");
  EXPECT_THROW(make_sampler("euler", sd_config("leading")), InputError);
  EXPECT_THROW(make_sampler("ddim", sd_config("leading"))->set_timesteps(0), InputError);
  EXPECT_THROW(make_sampler("ddim", sd_config("leading"))->set_timesteps(1001), InputError);
}

// A data distribution with one point x0: the exact noise prediction at x_t is
// (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t). Every sampler must end on x0
// (DDIM only when its last step goes below t = 0, where set_alpha_to_one
// applies; 8 trailing steps end at t = 124, one step ratio above).
struct PointCase {
  const char* slug;
  const char* spacing;
  const char* prediction;
  int64_t order;
  int64_t steps;
};

class SamplerOnPointMass : public ::testing::TestWithParam<PointCase> {};

TEST_P(SamplerOnPointMass, LandsOnThePoint) {
  const PointCase& p = GetParam();
  nlohmann::json config = sd_config(p.spacing);
  config["prediction_type"] = p.prediction;
  config["set_alpha_to_one"] = true;
  if (std::string(p.slug) != "ddim") config["solver_order"] = p.order;
  auto sampler = make_sampler(p.slug, config);
  sampler->set_timesteps(p.steps);
  // abar exactly as the schedule has it.
  at::Tensor abar =
      torch::cumprod(1 - torch::linspace(std::sqrt(0.00085), std::sqrt(0.012), 1000,
                                         torch::kFloat)
                             .pow(2),
                     0)
          .to(torch::kDouble);
  torch::manual_seed(3);
  at::Tensor x0 = torch::randn({2, 4, 8, 8}, torch::kDouble);
  at::Tensor x = torch::randn({2, 4, 8, 8}, torch::kDouble);
  for (int64_t k = 0; k < sampler->num_steps(); ++k) {
    const double a = abar[sampler->timesteps()[k]].item<double>();
    at::Tensor eps = (x - std::sqrt(a) * x0) / std::sqrt(1 - a);
    at::Tensor out = eps;
    if (std::string(p.prediction) == "v_prediction") out = std::sqrt(a) * eps - std::sqrt(1 - a) * x0;
    if (std::string(p.prediction) == "sample") out = x0;
    x = sampler->step(out, k, x);
  }
  // The schedule's coefficients are float32 (as in diffusers), and
  // DPM-Solver++ updates a float32 copy of the sample.
  EXPECT_LT(testing::rel_err(x, x0), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(
    AllSamplers, SamplerOnPointMass,
    ::testing::Values(PointCase{"ddim", "leading", "epsilon", 1, 10},
                      PointCase{"ddim", "trailing", "v_prediction", 1, 8},
                      PointCase{"ddim", "linspace", "sample", 1, 5},
                      PointCase{"dpmsolver++", "linspace", "epsilon", 2, 10},
                      PointCase{"dpmsolver++", "leading", "v_prediction", 2, 20},
                      PointCase{"dpmsolver++", "trailing", "epsilon", 3, 12},
                      PointCase{"dpmsolver++", "linspace", "epsilon", 1, 6},
                      PointCase{"unipc", "linspace", "epsilon", 2, 10},
                      PointCase{"unipc", "leading", "v_prediction", 2, 20},
                      PointCase{"unipc", "trailing", "epsilon", 3, 12},
                      PointCase{"unipc", "linspace", "epsilon", 1, 6}));

// The multistep state clears between runs.
TEST(SamplerState, ResetGivesIdenticalRuns) {
  for (const char* slug : {"ddim", "dpmsolver++", "unipc"}) {
    auto sampler = make_sampler(slug, sd_config("linspace"));
    sampler->set_timesteps(8);
    auto run = [&]() {
      torch::manual_seed(5);
      at::Tensor x = torch::randn({1, 4, 4, 4}, torch::kDouble);
      for (int64_t k = 0; k < sampler->num_steps(); ++k) {
        at::Tensor eps = torch::tanh(x) * (1.0 + 0.001 * sampler->timesteps()[k]);
        x = sampler->step(eps, k, x);
      }
      return x;
    };
    at::Tensor a = run();
    sampler->reset();
    at::Tensor b = run();
    EXPECT_TRUE(torch::equal(a, b)) << slug;
    EXPECT_EQ(a.scalar_type(), torch::kDouble);
  }
}

// DDIM's epsilon step gathered into one coefficient per input (no clipping
// or thresholding) is the same step as the x0-then-direction form, which a
// clip range nothing reaches keeps running; both differ from a clipped step.
TEST(SamplerAlgebra, DdimGatheredStepIsTheTwoStageStep) {
  auto gathered = make_sampler("ddim", sd_config("leading"));
  nlohmann::json clipped_config = sd_config("leading");
  clipped_config["clip_sample"] = true;
  clipped_config["clip_sample_range"] = 1e9;
  auto two_stage = make_sampler("ddim", clipped_config);
  clipped_config["clip_sample_range"] = 0.5;
  auto clipped = make_sampler("ddim", clipped_config);
  for (auto* s : {gathered.get(), two_stage.get(), clipped.get()}) s->set_timesteps(10);
  torch::manual_seed(3);
  const at::Tensor x = torch::randn({2, 4, 5, 5}, torch::kDouble);
  const at::Tensor eps = torch::randn({2, 4, 5, 5}, torch::kDouble);
  for (int64_t k = 0; k < 10; ++k) {
    const at::Tensor a = gathered->step(eps, k, x), b = two_stage->step(eps, k, x);
    EXPECT_LT((a - b).abs().max().item<double>(), 1e-12 * (1.0 + b.abs().max().item<double>())) << k;
    EXPECT_GT((a - clipped->step(eps, k, x)).abs().max().item<double>(), 1e-3) << k;
  }
}

TEST(SamplerState, KeepsTheLatentsDtype) {
  for (const char* slug : {"ddim", "dpmsolver++", "unipc"}) {
    auto sampler = make_sampler(slug, sd_config("leading"));
    sampler->set_timesteps(3);
    at::Tensor x = torch::randn({1, 4, 4, 4}, torch::kFloat);
    for (int64_t k = 0; k < 3; ++k) x = sampler->step(torch::tanh(x), k, x);
    EXPECT_EQ(x.scalar_type(), torch::kFloat) << slug;
    EXPECT_TRUE(torch::isfinite(x).all().item<bool>()) << slug;
  }
}

TEST(SamplerNames, SlugsRoundTrip) {
  for (auto k : {SamplerKind::ddim, SamplerKind::dpmsolver_pp, SamplerKind::unipc}) {
    EXPECT_EQ(parse_sampler_kind(sampler_slug(k)), k);
  }
  EXPECT_THROW(parse_sampler_kind("dpmsolver"), InputError);
}

}  // namespace
}  // namespace diffsearch::engine
