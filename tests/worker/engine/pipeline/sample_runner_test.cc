// SampleRunner: on the CPU its runs are the pipeline's own; on CUDA (skipped
// without a GPU) every sampler and acceleration captured as a CUDA graph and
// replayed with other prompts, seeds and latents gives the eager run's images
// and MACs, ToMe's random destinations redrawn from each run's seed.
#include "worker/engine/pipeline/sample_runner.h"

#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/error.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"

namespace diffsearch::engine {
namespace {

std::vector<AccelSpec> specs_of(const std::vector<std::string>& texts) {
  std::vector<AccelSpec> specs;
  for (const auto& t : texts) specs.push_back(parse_accel_spec(t));
  return specs;
}

SampleRequest request(SamplerKind sampler, std::vector<std::string> prompts, uint64_t seed,
                      int64_t steps = 8) {
  SampleRequest r;
  r.prompts = std::move(prompts);
  r.sampler = sampler;
  r.steps = steps;
  r.seed = seed;
  return r;
}

const std::vector<std::vector<std::string>> kSettings = {
    {},
    {"deepcache:cache_interval=3,cache_branch_id=0"},
    {"tome:ratio=0.5"},
    {"tome:ratio=0.5,use_rand=false"},
    {"tgate:gate_step=5,sp_interval=2,fi_interval=1,warm_up=1"},
    {"deepcache:cache_interval=2,cache_branch_id=0", "tome:ratio=0.4"},
    {"tgate:gate_step=5,sp_interval=2,fi_interval=1,warm_up=1", "deepcache:cache_interval=2,cache_branch_id=0"},
};

TEST(SampleRunner, OnTheCpuRunsArePipelineRuns) {
  const Pipeline& pipeline = testing::cached_pipeline("tiny-sd15", c10::kDouble);
  SampleRunner runner(pipeline, /*use_graphs=*/true);
  EXPECT_FALSE(runner.uses_graphs());
  const auto specs = specs_of({"deepcache:cache_interval=3,cache_branch_id=0", "tome:ratio=0.5"});
  const SampleRequest r = request(SamplerKind::dpmsolver_pp, {"a red bicycle", "two cats"}, 5);

  macs::reset();
  const SampleOutput out = runner.run(r, specs, 7);
  const int64_t runner_macs = macs::total();
  EXPECT_FALSE(out.replayed);

  auto acceleration = Acceleration::create(specs, pipeline.unet(), r.steps, 7);
  SampleRequest direct = r;
  direct.policies = acceleration->step_policies();
  direct.unet_hooks = acceleration->unet_hooks();
  macs::reset();
  torch::NoGradGuard no_grad;
  const at::Tensor expected = pipeline.decode(pipeline.sample(direct).latents);
  EXPECT_EQ(macs::total(), runner_macs);
  ASSERT_EQ(out.images.sizes(), expected.sizes());
  EXPECT_TRUE(torch::equal(out.images, expected));

  // Another ToMe seed draws other destinations, so another image.
  const SampleOutput reseeded = runner.run(r, specs, 8);
  EXPECT_FALSE(torch::equal(reseeded.images, expected));
}

TEST(SampleRunner, StartingLatentsAreChecked) {
  const Pipeline& pipeline = testing::cached_pipeline("tiny-sd15", c10::kDouble);
  SampleRunner runner(pipeline, true);
  SampleRequest r = request(SamplerKind::ddim, {"a red bicycle"}, 1);
  r.latents = torch::zeros({2, 4, 3, 3});
  EXPECT_THROW(runner.run(r, {}, 0), InputError);
}

// CUDA: graphs against eager runs in float64. ToMe's matching is a discrete
// choice (best destination, sorted scores): rounding differences of a few
// ulps between kernels can flip a choice and change the image visibly, so
// only float64 tells a wrong replay from rounding. One test per model and
// setting, so ctest runs each in its own process.
class SampleRunnerCuda : public ::testing::TestWithParam<std::tuple<std::string, std::size_t>> {};

TEST_P(SampleRunnerCuda, ReplaysMatchEagerRuns) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  const auto& [model, which] = GetParam();
  const RunOptions options{c10::kDouble, c10::Device(c10::kCUDA, 0)};
  auto pipeline = Pipeline::load(testing::model_dir(model), options);
  SampleRunner graphs(*pipeline, /*use_graphs=*/true, /*max_graphs=*/2);
  SampleRunner eager(*pipeline, /*use_graphs=*/false);
  ASSERT_TRUE(graphs.uses_graphs());
  const auto& setting = kSettings[which];
  const auto specs = specs_of(setting);
  for (SamplerKind sampler : {SamplerKind::ddim, SamplerKind::dpmsolver_pp, SamplerKind::unipc}) {
    std::string name = model + " " + sampler_slug(sampler);
    for (const auto& s : setting) name += " " + s;
    // The first run captures; the others replay with new inputs.
    const std::vector<std::pair<std::vector<std::string>, uint64_t>> runs = {
        {{"a red bicycle", "a lighthouse at dusk"}, 1},
        {{"two cats on a sofa", "a bowl of soup"}, 2},
        {{"a red bicycle", "an old map"}, 3}};
    for (std::size_t k = 0; k < runs.size(); ++k) {
      const SampleRequest r = request(sampler, runs[k].first, runs[k].second);
      // Progress on stderr: a device-side assertion ends the process.
      std::cerr << name << " run " << k << ": eager" << std::endl;
      macs::reset();
      const SampleOutput want = eager.run(r, specs, 100 + runs[k].second);
      device_synchronize(options);
      const int64_t want_macs = macs::total();
      std::cerr << name << " run " << k << ": graph" << std::endl;
      macs::reset();
      const SampleOutput got = graphs.run(r, specs, 100 + runs[k].second);
      device_synchronize(options);
      EXPECT_EQ(macs::total(), want_macs) << name << " run " << k;
      EXPECT_TRUE(got.replayed) << name << " run " << k;
      const double err = testing::rel_err(got.images, want.images);
      EXPECT_LT(err, 1e-9) << name << " run " << k;
    }
  }
  EXPECT_LE(graphs.graphs_held(), 2u);
}

INSTANTIATE_TEST_SUITE_P(ModelsAndSettings, SampleRunnerCuda,
                         ::testing::Combine(::testing::Values("tiny-sd15", "tiny-sdxl"),
                                            ::testing::Range<std::size_t>(0, kSettings.size())),
                         [](const auto& info) {
                           std::string model = std::get<0>(info.param);
                           for (char& c : model) c = c == '-' ? '_' : c;
                           return model + "_setting" + std::to_string(std::get<1>(info.param));
                         });

// ToMe's eager runs repeat bit for bit on CUDA in float32. They did not while
// merging was CUDA's atomic scatter-mean (3.5 % apart on the H200): a
// rounding difference flips a later block's matching.
TEST(SampleRunnerCudaFp32, ToMeEagerRunsRepeat) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  auto pipeline = Pipeline::load(testing::model_dir("tiny-sd15"), {c10::kFloat, c10::Device(c10::kCUDA, 0)});
  SampleRunner eager(*pipeline, false);
  const auto specs = specs_of({"tome:ratio=0.5"});
  const SampleRequest r = request(SamplerKind::ddim, {"a red bicycle", "a lighthouse at dusk"}, 1);
  const SampleOutput first = eager.run(r, specs, 3);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(testing::rel_err(eager.run(r, specs, 3).images, first.images), 0.0) << "repeat " << k;
  }
}

TEST(SampleRunnerCudaFp16, SdxlWithoutNegativePromptAndToMe) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  auto pipeline = Pipeline::load(testing::model_dir("tiny-sdxl"), {c10::kHalf, c10::Device(c10::kCUDA, 0)});
  SampleRunner graphs(*pipeline, true);
  SampleRunner eager(*pipeline, false);
  const auto specs = specs_of({"deepcache:cache_interval=3,cache_branch_id=0", "tome:ratio=0.5"});
  for (uint64_t seed : {4, 5}) {
    SampleRequest r = request(SamplerKind::unipc, {"a cabin in the snow"}, seed);
    const SampleOutput want = eager.run(r, specs, seed);
    const SampleOutput got = graphs.run(r, specs, seed);
    EXPECT_EQ(got.images.scalar_type(), want.images.scalar_type());
    EXPECT_LT(testing::rel_err(got.images, want.images), 1e-3) << "seed " << seed;
  }
}

}  // namespace
}  // namespace diffsearch::engine
