// Tests of the CLIP text encoder against the fixtures' float64 reference
// states (transformers 5 on the same fp16 weights), in float64 and float32.
#include "worker/engine/clip/clip_text.h"

#include <gtest/gtest.h>

#include "io/error.h"
#include "tests/support/engine/pipeline_fixtures.h"

namespace diffsearch::engine {
namespace {

using testing::model_dir;
using testing::reference_ids;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

struct Case {
  const char* model;
  c10::ScalarType dtype;
  double tolerance;
};

class ClipTextFixture : public ::testing::TestWithParam<Case> {};

TEST_P(ClipTextFixture, TextEncoderMatchesReference) {
  const Case& c = GetParam();
  io::DiffusersFolder folder(model_dir(c.model));
  const RunOptions options{c.dtype, c10::Device(c10::kCPU)};
  auto encoder = ClipTextEncoder::load(folder, "text_encoder", options);
  const auto ref = reference_json(c.model);
  at::Tensor ids = reference_ids(ref, ref.at("prompt").get<std::string>(), 0);
  ClipTextOutput out = encoder.forward(ids);
  EXPECT_EQ(out.last_hidden_state.scalar_type(), c.dtype);
  EXPECT_FALSE(out.text_embeds.defined());
  EXPECT_EQ(out.hidden_states.size(), std::size_t(encoder.config().num_hidden_layers + 1));
  EXPECT_LT(rel_err(out.last_hidden_state,
                    reference_tensor(c.model, "text_encoder.last_hidden_state")),
            c.tolerance);
  EXPECT_LT(rel_err(out.penultimate,
                    reference_tensor(c.model, "text_encoder.penultimate_hidden_state")),
            c.tolerance);
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, ClipTextFixture,
    ::testing::Values(Case{"tiny-sd15", c10::kDouble, 1e-6}, Case{"tiny-sd21", c10::kDouble, 1e-6},
                      Case{"tiny-sdxl", c10::kDouble, 1e-6}, Case{"tiny-sd15", c10::kFloat, 1e-4},
                      Case{"tiny-sd21", c10::kFloat, 1e-4}, Case{"tiny-sdxl", c10::kFloat, 1e-4}));

class ClipTextProjection : public ::testing::TestWithParam<Case> {};

TEST_P(ClipTextProjection, SecondSdxlEncoderMatchesReference) {
  const Case& c = GetParam();
  io::DiffusersFolder folder(model_dir("tiny-sdxl"));
  auto encoder = ClipTextEncoder::load(folder, "text_encoder_2", {c.dtype, c10::Device(c10::kCPU)});
  ASSERT_EQ(encoder.config().projection_dim, 16);
  const auto ref = reference_json("tiny-sdxl");
  // The fixture ran text_encoder_2 on tokenizer 1's ids (padded with the end
  // token); the pipeline feeds it tokenizer_2's ids (padded with "!", id 0),
  // which changes the states after the end token but not the pooled output.
  at::Tensor ids = reference_ids(ref, ref.at("prompt").get<std::string>(), 0);
  ClipTextOutput out = encoder.forward(ids);
  ASSERT_TRUE(out.text_embeds.defined());
  EXPECT_LT(rel_err(out.text_embeds, reference_tensor("tiny-sdxl", "text_encoder_2.text_embeds")),
            c.tolerance);
  EXPECT_LT(rel_err(out.penultimate,
                    reference_tensor("tiny-sdxl", "text_encoder_2.penultimate_hidden_state")),
            c.tolerance);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ClipTextProjection,
                         ::testing::Values(Case{"tiny-sdxl", c10::kDouble, 1e-6},
                                           Case{"tiny-sdxl", c10::kFloat, 1e-4}));

// The end token is found by id, whatever the padding token: tokenizer_2 pads
// with "!" (id 0) and tokenizer 1 with the end token itself.
TEST(ClipText, PoolsAtFirstEndTokenWhateverThePadding) {
  io::DiffusersFolder folder(model_dir("tiny-sdxl"));
  auto encoder = ClipTextEncoder::load(folder, "text_encoder_2", {c10::kDouble, c10::kCPU});
  at::Tensor padded_with_end = torch::full({1, 77}, 49407, torch::kLong);
  at::Tensor padded_with_zero = torch::zeros({1, 77}, torch::kLong);
  const std::vector<int64_t> head = {49406, 320, 1125, 49407};
  for (int i = 0; i < 4; ++i) {
    padded_with_end[0][i] = head[i];
    padded_with_zero[0][i] = head[i];
  }
  auto a = encoder.forward(padded_with_end);
  auto b = encoder.forward(padded_with_zero);
  // Causal attention: states up to the end token do not see the padding.
  EXPECT_LT(rel_err(a.pooled, a.last_hidden_state.select(1, 3)), 1e-15);
  EXPECT_LT(rel_err(b.pooled, b.last_hidden_state.select(1, 3)), 1e-15);
  EXPECT_LT(rel_err(a.pooled, b.pooled), 1e-12);
}

TEST(ClipText, BatchRowsAreIndependent) {
  io::DiffusersFolder folder(model_dir("tiny-sd15"));
  auto encoder = ClipTextEncoder::load(folder, "text_encoder", {c10::kDouble, c10::kCPU});
  const auto ref = reference_json("tiny-sd15");
  at::Tensor p = reference_ids(ref, ref.at("prompt").get<std::string>(), 0);
  at::Tensor e = reference_ids(ref, "", 0);
  auto both = encoder.forward(torch::cat({e, p}, 0));
  auto single = encoder.forward(p);
  EXPECT_LT(rel_err(both.last_hidden_state[1], single.last_hidden_state[0]), 1e-12);
}

TEST(ClipText, ConfigErrorsNameTheField) {
  nlohmann::json j = {{"hidden_size", 16}, {"intermediate_size", 32}, {"num_attention_heads", 4}};
  try {
    ClipTextConfig::from_json(j, "te/config.json", false);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("te/config.json"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("num_hidden_layers"), std::string::npos);
  }
  j["num_hidden_layers"] = 2;
  j["hidden_act"] = "relu";
  EXPECT_THROW(ClipTextConfig::from_json(j, "te/config.json", false), InputError);
  j["hidden_act"] = "gelu";
  EXPECT_EQ(ClipTextConfig::from_json(j, "te/config.json", true).projection_dim, 512);
}

TEST(ClipText, TooManyTokensIsAnInputError) {
  io::DiffusersFolder folder(model_dir("tiny-sd15"));
  auto encoder = ClipTextEncoder::load(folder, "text_encoder", {c10::kFloat, c10::kCPU});
  EXPECT_THROW(encoder.forward(torch::zeros({1, 78}, torch::kLong)), InputError);
  EXPECT_THROW(encoder.forward(torch::full({1, 77}, 50000, torch::kLong)), InputError);
}

}  // namespace
}  // namespace diffsearch::engine
