// Every whole run of the fixtures through the pipeline: the three samplers at
// both step counts on the three tiny models in float64 (diffusers' float64
// reference within 1e-4), float32 runs (1e-2), and batches.
#include "worker/engine/pipeline/pipeline.h"

#include <cctype>

#include <gtest/gtest.h>

#include "tests/support/engine/pipeline_fixtures.h"

namespace diffsearch::engine {
namespace {

using testing::fixture_request;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

const Pipeline& pipeline(const std::string& model, c10::ScalarType dtype) {
  return testing::cached_pipeline(model, dtype);
}

struct RunCase {
  std::string model;
  std::string name;
};

// Readable test names in ctest's listing instead of the struct's bytes.
void PrintTo(const RunCase& c, std::ostream* os) { *os << c.model << " " << c.name; }

std::vector<RunCase> all_sample_cases() {
  std::vector<RunCase> out;
  for (const char* model : {"tiny-sd15", "tiny-sd21", "tiny-sdxl"}) {
    const auto ref = reference_json(model);
    for (const auto& [name, c] : ref.at("cases").items()) {
      if (name.rfind("sample.", 0) == 0) out.push_back({model, name});
    }
  }
  return out;
}

class PipelineRun : public ::testing::TestWithParam<RunCase> {};

TEST_P(PipelineRun, Float64MatchesDiffusers) {
  const RunCase& rc = GetParam();
  const auto ref = reference_json(rc.model);
  const auto& c = ref.at("cases").at(rc.name);
  SampleResult result = pipeline(rc.model, c10::kDouble).sample(fixture_request(ref, c));
  EXPECT_EQ(result.timesteps, c.at("timesteps").get<std::vector<int64_t>>());
  EXPECT_EQ(result.latents.scalar_type(), c10::kDouble);
  EXPECT_FALSE(result.prompt_truncated);
  EXPECT_LT(rel_err(result.latents, reference_tensor(rc.model, rc.name)), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(AllCases, PipelineRun, ::testing::ValuesIn(all_sample_cases()),
                         [](const ::testing::TestParamInfo<RunCase>& info) {
                           std::string n = info.param.model + "_" + info.param.name;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

class PipelineRunFloat32 : public ::testing::TestWithParam<RunCase> {};

TEST_P(PipelineRunFloat32, Float32IsClose) {
  const RunCase& rc = GetParam();
  const auto ref = reference_json(rc.model);
  SampleResult result =
      pipeline(rc.model, c10::kFloat).sample(fixture_request(ref, ref.at("cases").at(rc.name)));
  EXPECT_EQ(result.latents.scalar_type(), c10::kFloat);
  EXPECT_LT(rel_err(result.latents, reference_tensor(rc.model, rc.name)), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(OnePerSampler, PipelineRunFloat32,
                         ::testing::Values(RunCase{"tiny-sd15", "sample.ddim.20"},
                                           RunCase{"tiny-sd21", "sample.dpmsolver++.10"},
                                           RunCase{"tiny-sdxl", "sample.unipc.20"},
                                           RunCase{"tiny-sdxl", "sample.ddim.10"}));

// A batch of two identical prompts with the fixture's starting latents in
// both rows reproduces the single run in each row.
TEST(PipelineBatch, RowsMatchSingleRuns) {
  for (const char* model : {"tiny-sd15", "tiny-sdxl"}) {
    const auto ref = reference_json(model);
    SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.dpmsolver++.10"));
    r.prompts = {r.prompts[0], r.prompts[0]};
    r.negative_prompts = {"", ""};
    at::Tensor init = reference_tensor(model, "init_latents.float32");
    r.latents = torch::cat({init, init}, 0);
    SampleResult result = pipeline(model, c10::kDouble).sample(r);
    ASSERT_EQ(result.latents.size(0), 2);
    at::Tensor expected = reference_tensor(model, "sample.dpmsolver++.10");
    EXPECT_LT(rel_err(result.latents.slice(0, 0, 1), expected), 1e-4) << model;
    EXPECT_LT(rel_err(result.latents.slice(0, 1, 2), expected), 1e-4) << model;
  }
}

}  // namespace
}  // namespace diffsearch::engine
