// Tests of CLIP scoring against the tiny-clip fixture (transformers 5 on the
// same fp16 weights): preprocessing, both towers, scores, missing-tower errors.
#include "worker/engine/metrics/clip_score.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "io/error.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "tests/support/test_support.h"
#include "worker/engine/core/nn.h"

namespace diffsearch::engine {
namespace {

namespace fs = std::filesystem;
using testing::model_dir;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

// The fixture stores its images channel-first; users' images are HWC.
at::Tensor fixture_images_hwc() {
  return reference_tensor("tiny-clip", "images_uint8").permute({0, 2, 3, 1}).contiguous();
}

std::vector<std::string> fixture_texts() {
  return reference_json("tiny-clip").at("texts").get<std::vector<std::string>>();
}

struct Case {
  c10::ScalarType dtype;
  double tolerance;        // relative error of pixels and embeddings
  double score_tolerance;  // absolute, in score points (0..100)
};

class ClipScoreFixture : public ::testing::TestWithParam<Case> {};

TEST_P(ClipScoreFixture, PreprocessingMatchesReference) {
  const Case& c = GetParam();
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c.dtype, c10::Device(c10::kCPU)});
  at::Tensor pixels = scorer->preprocess(fixture_images_hwc());
  EXPECT_EQ(pixels.scalar_type(), c.dtype);
  at::Tensor ref = reference_tensor("tiny-clip", "pixel_values");
  ASSERT_EQ(pixels.sizes(), ref.sizes());
  EXPECT_LT(rel_err(pixels, ref), c.tolerance);
}

TEST_P(ClipScoreFixture, EmbeddingsAndScoresMatchReference) {
  const Case& c = GetParam();
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c.dtype, c10::Device(c10::kCPU)});
  at::Tensor image = scorer->image_embeds(fixture_images_hwc());
  at::Tensor text = scorer->text_embeds(fixture_texts());
  EXPECT_EQ(image.scalar_type(), c.dtype);
  EXPECT_LT(rel_err(image, reference_tensor("tiny-clip", "image_embeds")), c.tolerance);
  EXPECT_LT(rel_err(text, reference_tensor("tiny-clip", "text_embeds")), c.tolerance);

  const std::vector<double> scores = scorer->scores(fixture_images_hwc(), fixture_texts());
  at::Tensor ref = reference_tensor("tiny-clip", "clip_score");
  ASSERT_EQ(scores.size(), std::size_t(ref.numel()));
  for (std::size_t i = 0; i < scores.size(); ++i) {
    EXPECT_NEAR(scores[i], ref[i].item<double>(), c.score_tolerance) << "pair " << i;
    EXPECT_GE(scores[i], 0.0);
  }
  // The fixture's scores include clamped pairs, so the clamp is exercised.
  EXPECT_EQ(scores[0], 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ClipScoreFixture,
                         ::testing::Values(Case{c10::kDouble, 1e-6, 1e-6},
                                           Case{c10::kFloat, 1e-4, 1e-4}));

TEST(ClipScore, TokenizerGivesTheFixtureIds) {
  auto tokenizer = ClipTokenizer::load(model_dir("tiny-clip") + "/tokenizer");
  at::Tensor ref = reference_tensor("tiny-clip", "input_ids");
  const auto texts = fixture_texts();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    const auto ids = tokenizer.encode(texts[i]).ids;
    ASSERT_EQ(int64_t(ids.size()), ref.size(1));
    for (std::size_t j = 0; j < ids.size(); ++j) EXPECT_EQ(ids[j], ref[i][j].item<int64_t>());
  }
}

TEST(ClipScore, ScoringLeavesTheMacCounterAlone) {
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c10::kFloat, c10::Device(c10::kCPU)});
  macs::reset();
  macs::add(12345);
  scorer->scores(fixture_images_hwc(), fixture_texts());
  EXPECT_EQ(macs::total(), 12345);
  macs::reset();
}

TEST(ClipScore, BatchRowsAreIndependentAndPairScoresAgree) {
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c10::kDouble, c10::Device(c10::kCPU)});
  at::Tensor images = fixture_images_hwc();
  at::Tensor all = scorer->image_embeds(images);
  at::Tensor one = scorer->image_embeds(images.slice(0, 1, 2));
  EXPECT_LT(rel_err(one[0], all[1]), 1e-12);
  const auto texts = fixture_texts();
  at::Tensor text = scorer->text_embeds(texts);
  EXPECT_EQ(ClipScorer::pair_scores(all, text), scorer->scores(images, texts));
  // Image 1 against its own prompt, scored through the matrix by hand.
  at::Tensor a = all[1], t = text[1];
  const double cos = (a * t).sum().item<double>() / (a.norm().item<double>() * t.norm().item<double>());
  EXPECT_NEAR(ClipScorer::pair_scores(all, text)[1], std::max(0.0, 100 * cos), 1e-12);
}

TEST(ClipScore, ImagesOfOtherSizesAndAspects) {
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c10::kDouble, c10::Device(c10::kCPU)});
  // Landscape, portrait, exactly the model's size and smaller than it.
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{40, 70}, {77, 33}, {32, 32}, {20, 25}}) {
    at::Tensor img = torch::randint(0, 256, {2, hw.first, hw.second, 3}, torch::kByte);
    at::Tensor px = scorer->preprocess(img);
    EXPECT_EQ(px.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
    EXPECT_TRUE(torch::isfinite(px).all().item<bool>());
  }
  // Already image_size: resizing is the identity, only normalisation remains.
  at::Tensor img = torch::randint(0, 256, {1, 32, 32, 3}, torch::kByte);
  at::Tensor px = scorer->preprocess(img);
  at::Tensor mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}, torch::kDouble).view({1, 3, 1, 1});
  at::Tensor stdev = torch::tensor({0.26862954, 0.26130258, 0.27577711}, torch::kDouble).view({1, 3, 1, 1});
  at::Tensor expected = (img.permute({0, 3, 1, 2}).to(torch::kDouble) / 255.0 - mean) / stdev;
  EXPECT_LT(rel_err(px, expected), 1e-12);
}

TEST(ClipScore, BadInputsAreRejected) {
  auto scorer = ClipScorer::load(model_dir("tiny-clip"), {c10::kFloat, c10::Device(c10::kCPU)});
  EXPECT_THROW(scorer->preprocess(torch::zeros({1, 3, 32, 32}, torch::kByte)), InputError);
  EXPECT_THROW(scorer->preprocess(torch::zeros({1, 32, 32, 3}, torch::kFloat)), InputError);
  EXPECT_THROW(scorer->scores(fixture_images_hwc(), {"one", "two"}), InputError);
  EXPECT_EQ(scorer->text_embeds({}).size(0), 0);
}

// A copy of tiny-clip in a temporary folder, with weights and config edited.
class ClipFolderCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("diffsearch_clip");
    fs::copy(model_dir("tiny-clip"), dir_, fs::copy_options::recursive);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Rewrites model.safetensors without the weights whose names start with `prefix`.
  void drop_weights(const std::string& prefix) {
    const std::string path = (dir_ / "model.safetensors").string();
    std::vector<io::TensorData> kept;
    {
      auto file = io::SafetensorsFile::open(path);
      for (const auto& name : file->names()) {
        if (name.rfind(prefix, 0) == 0) continue;
        kept.push_back(tensor_to_data(name, tensor_copy(file->tensor(name))));
      }
    }
    io::write_safetensors(path, kept);
  }
  void drop_config(const std::string& key) {
    const std::string path = (dir_ / "config.json").string();
    nlohmann::json j = io::read_json_file(path);
    j.erase(key);
    std::ofstream(path) << j.dump(2);
  }
  std::string load_error() {
    try {
      ClipScorer::load(dir_.string(), {c10::kFloat, c10::Device(c10::kCPU)});
    } catch (const InputError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected InputError";
    return "";
  }
  static bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
  }

  fs::path dir_;
};

TEST_F(ClipFolderCopy, CopyLoads) {
  EXPECT_NO_THROW(ClipScorer::load(dir_.string(), {c10::kFloat, c10::Device(c10::kCPU)}));
}

TEST_F(ClipFolderCopy, MissingVisionWeights) {
  drop_weights("vision_model.");
  const std::string e = load_error();
  EXPECT_TRUE(has(e, dir_.string())) << e;
  EXPECT_TRUE(has(e, "vision tower")) << e;
  EXPECT_TRUE(has(e, "CLIPModel")) << e;
}

TEST_F(ClipFolderCopy, MissingVisualProjection) {
  drop_weights("visual_projection");
  const std::string e = load_error();
  EXPECT_TRUE(has(e, "vision tower")) << e;
  EXPECT_TRUE(has(e, "visual_projection.weight")) << e;
}

TEST_F(ClipFolderCopy, MissingVisionConfig) {
  drop_config("vision_config");
  const std::string e = load_error();
  EXPECT_TRUE(has(e, dir_.string())) << e;
  EXPECT_TRUE(has(e, "vision tower")) << e;
  EXPECT_TRUE(has(e, "vision_config")) << e;
}

TEST_F(ClipFolderCopy, MissingTextWeights) {
  drop_weights("text_model.");
  const std::string e = load_error();
  EXPECT_TRUE(has(e, dir_.string())) << e;
  EXPECT_TRUE(has(e, "text tower")) << e;
  EXPECT_TRUE(has(e, "CLIPModel")) << e;
}

TEST_F(ClipFolderCopy, MissingTextConfig) {
  drop_config("text_config");
  const std::string e = load_error();
  EXPECT_TRUE(has(e, "text tower")) << e;
  EXPECT_TRUE(has(e, "text_config")) << e;
}

TEST_F(ClipFolderCopy, MissingWeightsFileAndTokenizer) {
  fs::remove(dir_ / "model.safetensors");
  EXPECT_TRUE(has(load_error(), "model.safetensors"));
  fs::remove_all(dir_);
  EXPECT_TRUE(has(load_error(), "not found"));
}

TEST_F(ClipFolderCopy, TokenizerAtTheTopLevelIsFound) {
  for (const auto& entry : fs::directory_iterator(dir_ / "tokenizer")) {
    fs::rename(entry.path(), dir_ / entry.path().filename());
  }
  fs::remove_all(dir_ / "tokenizer");
  auto scorer = ClipScorer::load(dir_.string(), {c10::kDouble, c10::Device(c10::kCPU)});
  EXPECT_LT(rel_err(scorer->text_embeds(fixture_texts()),
                    reference_tensor("tiny-clip", "text_embeds")),
            1e-6);
  fs::remove(dir_ / "vocab.json");
  EXPECT_TRUE(has(load_error(), "tokenizer"));
}

}  // namespace
}  // namespace diffsearch::engine
