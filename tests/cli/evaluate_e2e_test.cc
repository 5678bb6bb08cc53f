// `diffsearch evaluate` as a user runs it: the JSON record, and one-line
// errors with exit code 2 for bad specs and folders.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

using Result = diffsearch::testing::CommandResult;

Result run(const std::string& args) {
  return diffsearch::testing::run_command(std::string(DIFFSEARCH_BIN) + " " + args + " 2>&1");
}

const std::string kModels = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models";
const std::string kBase = "evaluate --model " + kModels + "/tiny-sd15 --clip " + kModels +
                          "/tiny-clip --sampler dpmsolver++ --steps 6 --height 64 --width 64 "
                          "--num-samples 2 --batch-size 2 ";

}  // namespace

TEST(EvaluateCli, PrintsTheRecordAsJson) {
  Result r = run(kBase + "--accel tome:ratio=0.5,use_rand=false --accel deepcache:cache_interval=2 --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_GT(j["speedup_macs"].get<double>(), 1.0);
  EXPECT_EQ(j["base"]["clip"].size(), 2u);
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_TRUE(j.contains("score_loss"));
  EXPECT_TRUE(j.contains("ssim_mean"));
}

TEST(EvaluateCli, ReportsTheLossByTheQualityAskedFor) {
  Result r = run(kBase + "--accel deepcache:cache_interval=2 --quality ssim --json --log-level warn");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["quality"], "ssim");
  EXPECT_NEAR(j["loss"].get<double>(), 1.0 - j["ssim_mean"].get<double>(), 1e-12);
  EXPECT_EQ(j["batch_size"], 2);  // the CPU holds it: the batch asked for
  r = run(kBase + "--quality lpips");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("--quality \"lpips\""), std::string::npos) << r.out;
}

TEST(EvaluateCli, BadSpecsAndFoldersExitTwoWithOneLine) {
  for (const std::string& bad : {std::string("--accel tome:ratio=1.0"), std::string("--accel warp:speed=9"),
                                 std::string("--accel deepcache:cache_interval=0"),
                                 std::string("--accel tgate:gate_step=50")}) {
    Result r = run(kBase + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.out;
    EXPECT_NE(r.out.find("error: "), std::string::npos) << r.out;
  }
  Result r = run("evaluate --model /nonexistent --clip " + kModels + "/tiny-clip --sampler ddim --steps 5");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("/nonexistent"), std::string::npos) << r.out;
}
