// `diffsearch search` with the engine on the tiny models, as a user runs it:
// each model at its folder's own size unless --resolution says otherwise,
// the SSIM quality recorded and answered by, and the batch the evaluator used.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::testing::run_command;

class SearchEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("search_engine_e2e");
    const std::string models = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models";
    std::ofstream(path("models.json")) << "{\"SD1.5\": \"" << models << "/tiny-sd15\"}";
    std::ofstream(path("tasks.txt"))
        << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 1.5x "
           "speedup and precision loss not exceeding 0.2\n";
    std::ofstream(path("space.json")) << R"({"deepcache": {"cache_interval": [2, 3], "cache_branch_id": [0]}})";
    base_ = std::string(DIFFSEARCH_BIN) + " search --tasks " + path("tasks.txt") + " --models " +
            path("models.json") + " --clip " + models + "/tiny-clip --space " + path("space.json") +
            " --num-samples 2 --batch-size 2 --speed-measure macs --strategy exhaustive --log-level warn";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
  std::string base_;
};

TEST_F(SearchEngineTest, RunsEachModelAtItsFolderSizeAndAnswersBySsim) {
  const auto r = run_command(base_ + " --quality ssim --out " + path("r.h5") + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto contents = diffsearch::io::read_results(path("r.h5"));
  // The tiny UNet's sample_size 16 times the VAE's scale factor 8, not the
  // 512 px its name would suggest.
  EXPECT_EQ(contents.config.at("resolution").at("SD1.5"), 128);
  EXPECT_EQ(contents.config.at("quality"), "ssim");
  ASSERT_EQ(contents.rows.size(), 2u);
  for (const auto& row : contents.rows) {
    EXPECT_EQ(row.status, "ok") << row.error;
    EXPECT_EQ(row.resolution, 128);
    EXPECT_EQ(row.batch_size, 2);
    ASSERT_EQ(row.prompts.size(), 2u);
    EXPECT_GT(row.prompts[0].ssim, 0.0);
  }
  const auto status = run_command(std::string(DIFFSEARCH_BIN) + " status " + path("r.h5") + " --json");
  ASSERT_EQ(status.code, 0) << status.out;
  EXPECT_EQ(nlohmann::json::parse(status.out).at("quality"), "ssim");
  const auto d = run_command(std::string(DIFFSEARCH_BIN) + " distill " + path("r.h5") + " --tasks " +
                             path("tasks.txt") + " -o " + path("p.json") + " 2>&1");
  ASSERT_EQ(d.code, 0) << d.out;
  std::ifstream in(path("p.json"));
  const auto answers = nlohmann::json::parse(in);
  EXPECT_EQ(answers.at("_quality"), "ssim");
  for (const auto& [key, a] : answers.items()) {
    if (key[0] == '_' || a.at("loss").is_null()) continue;
    // SSIM's loss, not CLIP's: the row's mean SSIM decides it.
    const auto& row = contents.rows.at(a.at("rows")[0].get<std::size_t>());
    EXPECT_NEAR(a.at("loss").get<double>(), 1.0 - row.ssim, 1e-12);
  }
}

TEST_F(SearchEngineTest, ResolutionStillOverridesTheFolder) {
  const auto r = run_command(base_ + " --resolution SD1.5=64 --out " + path("r.h5") + " 2>&1");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto contents = diffsearch::io::read_results(path("r.h5"));
  EXPECT_EQ(contents.config.at("resolution").at("SD1.5"), 64);
  EXPECT_FALSE(contents.config.contains("quality"));  // CLIP, recorded as earlier files had it
}

TEST_F(SearchEngineTest, AnUnknownQualityIsRefusedWithTheChoices) {
  const auto r = run_command(base_ + " --quality lpips --out " + path("r.h5") + " 2>&1");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--quality \"lpips\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ssim"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("r.h5")));
}

}  // namespace
