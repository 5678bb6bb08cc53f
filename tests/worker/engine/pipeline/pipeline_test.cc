// Tests of the text-to-image pipeline: seeded latents, one fixture run per
// sampler, the decoded image, step policies and UNet hooks, prompts and bad
// inputs (the whole matrix of fixture runs is in pipeline_e2e_test.cc).
#include "worker/engine/pipeline/pipeline.h"

#include <gtest/gtest.h>

#include "io/error.h"
#include "tests/support/engine/pipeline_fixtures.h"

namespace diffsearch::engine {
namespace {

using testing::fixture_request;
using testing::model_dir;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

const Pipeline& pipeline(const std::string& model, c10::ScalarType dtype) {
  return testing::cached_pipeline(model, dtype);
}

TEST(PipelineLatents, SeededNoiseIsTorchRandn) {
  for (const char* model : {"tiny-sd15", "tiny-sd21", "tiny-sdxl"}) {
    const auto ref = reference_json(model);
    const auto shape = ref.at("init_latents").at("shape").get<std::vector<int64_t>>();
    at::Tensor mine = seeded_randn(shape, ref.at("init_latents").at("seed").get<uint64_t>());
    EXPECT_TRUE(torch::equal(mine, reference_tensor(model, "init_latents.float32"))) << model;
  }
  auto file = io::SafetensorsFile::open(testing::fixtures_dir() + "/reference/init-latents.safetensors");
  EXPECT_TRUE(torch::equal(seeded_randn({1, 4, 16, 16}, 0), tensor_copy(file->tensor("latents"))));
}

TEST(PipelineLoad, FamiliesAndDefaults) {
  EXPECT_EQ(pipeline("tiny-sd15", c10::kDouble).family(), ModelFamily::sd);
  EXPECT_EQ(pipeline("tiny-sd21", c10::kDouble).family(), ModelFamily::sd);
  const Pipeline& xl = pipeline("tiny-sdxl", c10::kDouble);
  EXPECT_EQ(xl.family(), ModelFamily::sdxl);
  EXPECT_EQ(xl.vae_scale_factor(), 8);
  EXPECT_EQ(xl.default_height(), 128);
  EXPECT_EQ(xl.default_width(), 128);
  EXPECT_EQ(xl.latent_channels(), 4);
}

// One float64 run per sampler here; every fixture run (both step counts,
// all three models) and the float32 runs are in pipeline_e2e_test.cc.
TEST(PipelineRun, OneRunPerSamplerMatchesDiffusers) {
  const std::pair<const char*, const char*> cases[] = {{"tiny-sd15", "sample.ddim.10"},
                                                       {"tiny-sd21", "sample.dpmsolver++.10"},
                                                       {"tiny-sdxl", "sample.unipc.10"}};
  for (const auto& [model, name] : cases) {
    const auto ref = reference_json(model);
    const auto& c = ref.at("cases").at(name);
    SampleResult result = pipeline(model, c10::kDouble).sample(fixture_request(ref, c));
    EXPECT_EQ(result.timesteps, c.at("timesteps").get<std::vector<int64_t>>()) << model << name;
    EXPECT_LT(rel_err(result.latents, reference_tensor(model, name)), 1e-4) << model << name;
  }
}

TEST(PipelineDecode, ImageOfDdim20) {
  for (const char* model : {"tiny-sd15", "tiny-sd21", "tiny-sdxl"}) {
    const Pipeline& p = pipeline(model, c10::kDouble);
    at::Tensor image = p.decode(reference_tensor(model, "sample.ddim.20"));
    EXPECT_LT(rel_err(image, reference_tensor(model, "image.ddim.20")), 1e-6) << model;
    at::Tensor u8 = images_to_uint8(image);
    EXPECT_EQ(u8.sizes().vec(), (std::vector<int64_t>{1, 128, 128, 3}));
    EXPECT_EQ(u8.scalar_type(), torch::kByte);
  }
}

TEST(PipelineDecode, Uint8AsUsersSaveThem) {
  at::Tensor x = torch::tensor({-2.0, -1.0, 0.0, 0.5, 1.0, 3.0}, torch::kDouble).view({1, 3, 1, 2});
  at::Tensor u8 = images_to_uint8(x);
  EXPECT_EQ(u8.sizes().vec(), (std::vector<int64_t>{1, 1, 2, 3}));
  // HWC: pixel 0 is channels (x[0], x[2], x[4]), pixel 1 (x[1], x[3], x[5]).
  // 0 maps to 127.5, which rounds half to even: 128.
  std::vector<int> expected = {0, 128, 255, 0, 191, 255};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(u8.flatten()[i].item<int>(), expected[i]) << i;
}

// Given latents replace the seeded noise; with the seeded noise themselves
// the result is the seeded run's.
TEST(PipelineLatents, GivenLatentsAreUsed) {
  const auto ref = reference_json("tiny-sd21");
  SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.ddim.10"));
  r.seed = 12345;  // ignored
  r.latents = reference_tensor("tiny-sd21", "init_latents.float32").to(torch::kHalf).to(torch::kFloat);
  SampleResult a = pipeline("tiny-sd21", c10::kDouble).sample(r);
  // Rounded to fp16 on the way in: close to the run, not identical.
  EXPECT_LT(rel_err(a.latents, reference_tensor("tiny-sd21", "sample.ddim.10")), 1e-2);
  r.latents = reference_tensor("tiny-sd21", "init_latents.float32");
  SampleResult b = pipeline("tiny-sd21", c10::kDouble).sample(r);
  EXPECT_LT(rel_err(b.latents, reference_tensor("tiny-sd21", "sample.ddim.10")), 1e-4);
}

struct CountingHooks : UNetHooks {
  int forwards = 0;
  std::vector<int64_t> batches;
  void begin_forward(const UNetForwardInfo& info) override {
    ++forwards;
    batches.push_back(info.batch);
  }
};

// Drops CFG from step `gate` on, conditioned on the negative embeddings, as
// T-GATE does.
struct DropGuidance : StepPolicy {
  int64_t gate = 0;
  int begun = 0, planned = 0, ended = 0;
  void begin_run(const std::vector<int64_t>& timesteps) override { ++begun; }
  void plan_step(const StepInfo& step, StepPlan& plan) override {
    ++planned;
    if (step.step_index >= gate) plan.branch = StepBranch::negative_only;
  }
  void end_step(const StepInfo& step, const at::Tensor& latents) override { ++ended; }
};

TEST(PipelinePolicies, StepPolicyAndUNetHooksAreCalled) {
  const auto ref = reference_json("tiny-sdxl");
  SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.ddim.10"));
  CountingHooks hooks;
  DropGuidance drop;
  drop.gate = 6;
  r.unet_hooks = &hooks;
  r.policies = {&drop};
  SampleResult with_policy = pipeline("tiny-sdxl", c10::kDouble).sample(r);
  EXPECT_EQ(drop.begun, 1);
  EXPECT_EQ(drop.planned, 10);
  EXPECT_EQ(drop.ended, 10);
  EXPECT_EQ(hooks.forwards, 10);
  EXPECT_EQ(hooks.batches, (std::vector<int64_t>{2, 2, 2, 2, 2, 2, 1, 1, 1, 1}));
  at::Tensor guided = reference_tensor("tiny-sdxl", "sample.ddim.10");
  EXPECT_GT(rel_err(with_policy.latents, guided), 1e-3);
  // A policy that changes nothing leaves the run as it was.
  DropGuidance never;
  never.gate = 1000;
  r.policies = {&never};
  r.unet_hooks = nullptr;
  EXPECT_LT(rel_err(pipeline("tiny-sdxl", c10::kDouble).sample(r).latents, guided), 1e-4);
}

TEST(PipelineGuidance, ScaleOneSkipsTheNegativeHalf) {
  const auto ref = reference_json("tiny-sd15");
  SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.ddim.10"));
  r.guidance_scale = 1.0;
  CountingHooks hooks;
  r.unet_hooks = &hooks;
  pipeline("tiny-sd15", c10::kDouble).sample(r);
  EXPECT_EQ(hooks.batches, std::vector<int64_t>(10, 1));
}

TEST(PipelinePrompts, LongPromptIsTruncatedWithAFlag) {
  const auto ref = reference_json("tiny-sd15");
  SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.ddim.10"));
  std::string long_prompt;
  for (int i = 0; i < 100; ++i) long_prompt += "horse ";
  r.prompts = {long_prompt};
  r.steps = 2;
  EXPECT_TRUE(pipeline("tiny-sd15", c10::kDouble).sample(r).prompt_truncated);
}

TEST(PipelinePrompts, SdxlZeroesOnlyAMissingNegativePrompt) {
  const Pipeline& p = pipeline("tiny-sdxl", c10::kDouble);
  // No negative prompt: zeros (force_zeros_for_empty_prompt).
  PromptEmbeddings zero = p.encode_prompts({"a cat"}, {}, 128, 128);
  EXPECT_EQ(zero.negative.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(zero.negative_pooled.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(zero.positive.sizes().vec(), (std::vector<int64_t>{1, 77, 32}));
  EXPECT_EQ(zero.time_ids.sizes().vec(), (std::vector<int64_t>{1, 6}));
  // A given "" is encoded, as diffusers does for negative_prompt="".
  PromptEmbeddings empty = p.encode_prompts({"a cat"}, {""}, 128, 128);
  EXPECT_GT(empty.negative.abs().sum().item<double>(), 0.0);
  PromptEmbeddings blurry = p.encode_prompts({"a cat"}, {"blurry"}, 128, 96);
  EXPECT_GT(blurry.negative.abs().sum().item<double>(), 0.0);
  EXPECT_EQ(blurry.time_ids[0][1].item<double>(), 96.0);
  EXPECT_EQ(blurry.time_ids[0][4].item<double>(), 128.0);
}

TEST(PipelineErrors, BadInputsAreInputErrors) {
  const Pipeline& p = pipeline("tiny-sd15", c10::kDouble);
  const auto ref = reference_json("tiny-sd15");
  SampleRequest r = fixture_request(ref, ref.at("cases").at("sample.ddim.10"));
  r.steps = 1;
  SampleRequest bad = r;
  bad.height = 100;
  try {
    p.sample(bad);
    FAIL() << "no error for height 100";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("height 100"), std::string::npos) << e.what();
  }
  bad = r;
  bad.latents = torch::zeros({1, 4, 8, 8});
  EXPECT_THROW(p.sample(bad), InputError);
  bad = r;
  bad.negative_prompts = {"a", "b"};
  EXPECT_THROW(p.sample(bad), InputError);
  bad = r;
  bad.steps = 0;
  EXPECT_THROW(p.sample(bad), InputError);
  bad = r;
  bad.prompts = {};
  EXPECT_THROW(p.sample(bad), InputError);
  EXPECT_THROW(Pipeline::load(model_dir("no-such-model"), {}), InputError);
}

}  // namespace
}  // namespace diffsearch::engine
