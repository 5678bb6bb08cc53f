// Whole runs with accelerations against the fixtures: every `accel.*` case of
// the three tiny models (DeepCache, ToMe, T-GATE, DeepCache+ToMe; DDIM,
// DPM-Solver++, UniPC), float64, as DeepCacheSDHelper, tomesd and T-GATE v2
// computed them on diffusers. Each case was computed on a freshly loaded
// pipeline (tests/data/fixtures/README.md), so each runs here on its own.
#include "worker/engine/accel/accel.h"

#include <algorithm>
#include <cctype>
#include <map>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "tests/support/test_support.h"
#include "worker/engine/pipeline/pipeline.h"

namespace diffsearch::engine {
namespace {

using testing::fixture_request;
using testing::model_dir;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

// The fixture's "accel" (one object, or a list for stacked methods) as specs.
std::vector<AccelSpec> fixture_specs(const nlohmann::json& accel) {
  std::vector<AccelSpec> out;
  const nlohmann::json list = accel.is_array() ? accel : nlohmann::json::array({accel});
  for (const auto& item : list) {
    AccelSpec s;
    s.method = item.at("method").get<std::string>();
    s.params = nlohmann::json::object();
    for (const auto& [key, value] : item.items()) {
      if (key != "method") s.params[key] = value;
    }
    out.push_back(s);
  }
  return out;
}

struct AccelCase {
  std::string model;
  std::string name;
};

void PrintTo(const AccelCase& c, std::ostream* os) { *os << c.model << " " << c.name; }

std::vector<AccelCase> all_accel_cases() {
  std::vector<AccelCase> out;
  for (const char* model : {"tiny-sd15", "tiny-sd21", "tiny-sdxl"}) {
    const auto ref = reference_json(model);
    for (const auto& [name, c] : ref.at("cases").items()) {
      if (name.rfind("accel.", 0) == 0) out.push_back({model, name});
    }
  }
  return out;
}

class AccelRun : public ::testing::TestWithParam<AccelCase> {};

TEST_P(AccelRun, Float64MatchesReference) {
  const AccelCase& ac = GetParam();
  const auto ref = reference_json(ac.model);
  const auto& c = ref.at("cases").at(ac.name);
  const Pipeline& p = testing::cached_pipeline(ac.model, c10::kDouble);

  SampleRequest r = fixture_request(ref, c);
  auto acc = Acceleration::create(fixture_specs(c.at("accel")), p.unet(), r.steps, r.seed);
  r.unet_hooks = acc->unet_hooks();
  r.policies = acc->step_policies();

  SampleResult result = p.sample(r);
  EXPECT_EQ(result.timesteps, c.at("timesteps").get<std::vector<int64_t>>());
  EXPECT_LT(rel_err(result.latents, reference_tensor(ac.model, ac.name)), 1e-4) << ac.model << " " << ac.name;
}

INSTANTIATE_TEST_SUITE_P(AllCases, AccelRun, ::testing::ValuesIn(all_accel_cases()),
                         [](const ::testing::TestParamInfo<AccelCase>& info) {
                           std::string n = info.param.model + "_" + info.param.name;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// ---------------------------------------------------------------- the CLI

using CliResult = diffsearch::testing::CommandResult;

// stdout and stderr together.
CliResult run_cli(const std::string& args) {
  return diffsearch::testing::run_command(std::string("\"") + DIFFSEARCH_BIN + "\" " + args + " 2>&1");
}

std::string cli_sample(const std::string& model, int64_t steps) {
  return "sample --model " + model_dir(model) +
         " --prompt \"a photo of an astronaut riding a horse on mars\" --sampler ddim --steps " +
         std::to_string(steps) + " --seed 0 --dtype float64";
}

at::Tensor saved_latents(const std::string& path) {
  return tensor_copy(io::SafetensorsFile::open(path)->tensor("latents"));
}

// `diffsearch sample --accel ...` runs what the library runs: fixture cases of
// each method, and a combination.
TEST(AccelCli, SampleWithAccelReproducesTheFixtures) {
  const std::string dir = diffsearch::testing::fresh_test_dir("accel_cli").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"deepcache:cache_interval=3,cache_branch_id=0", "accel.deepcache.i3.b0.ddim.20"},
      {"tome:ratio=0.5,max_downsample=1,sx=2,sy=2,use_rand=false", "accel.tome.r0.5.d1.ddim.20"},
      {"tgate:gate_step=10,sp_interval=5,fi_interval=1,warm_up=2", "accel.tgate.g10.sp5.fi1.w2.ddim.20"},
  };
  for (const auto& [spec, name] : cases) {
    const std::string out = dir + "/" + name + ".safetensors";
    const CliResult r = run_cli(cli_sample("tiny-sd21", 20) + " --accel " + spec + " --save-latents " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_LT(rel_err(saved_latents(out), reference_tensor("tiny-sd21", name)), 1e-4) << spec;
  }
  // Two methods stacked, against the library's composition.
  const std::string out = dir + "/stacked.safetensors";
  const CliResult r = run_cli(cli_sample("tiny-sdxl", 8) +
                              " --accel deepcache:cache_interval=2 --accel tome:max_downsample=2,use_rand=false"
                              " --save-latents " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const Pipeline& p = testing::cached_pipeline("tiny-sdxl", c10::kDouble);
  const auto ref = reference_json("tiny-sdxl");
  SampleRequest req = fixture_request(ref, ref.at("cases").at("sample.ddim.20"));
  req.steps = 8;
  auto acc = Acceleration::create({parse_accel_spec("deepcache:cache_interval=2"),
                                   parse_accel_spec("tome:max_downsample=2,use_rand=false")},
                                  p.unet(), 8, 0);
  req.unet_hooks = acc->unet_hooks();
  req.policies = acc->step_policies();
  EXPECT_LT(rel_err(saved_latents(out), p.sample(req).latents), 1e-12);
}

TEST(AccelCli, BadSpecsExitTwoWithOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"blur:x=1", "unknown method 'blur'"},
      {"tome:ratio=1.5", "ratio"},
      {"tome:rate=0.5", "unknown key 'rate'"},
      {"deepcache:cache_interval=0", "cache_interval"},
      {"tgate:gate_step=30", "gate_step"},
  };
  for (const auto& [spec, needle] : cases) {
    const CliResult r = run_cli(cli_sample("tiny-sd15", 20) + " --accel " + spec);
    EXPECT_EQ(r.code, 2) << spec << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(spec), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace diffsearch::engine
