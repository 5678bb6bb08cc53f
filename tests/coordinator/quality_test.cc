// The quality measures: names, per-prompt scores and the losses of rows and
// records, including a row's CLIP loss passing through exactly.
#include "coordinator/quality.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "io/error.h"

namespace diffsearch::coordinator {
namespace {

TEST(Quality, ParsesNamesAndRefusesOthersWithTheChoices) {
  EXPECT_EQ(parse_quality("clip"), Quality::Clip);
  EXPECT_EQ(parse_quality("SSIM"), Quality::Ssim);
  EXPECT_EQ(parse_quality("psnr"), Quality::Psnr);
  EXPECT_EQ(quality_name(parse_quality("Ssim")), "ssim");
  try {
    parse_quality("lpips");
    FAIL() << "lpips accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("--quality \"lpips\""), std::string::npos) << what;
    EXPECT_NE(what.find("clip"), std::string::npos) << what;
    EXPECT_NE(what.find("ssim"), std::string::npos) << what;
    EXPECT_NE(what.find("psnr"), std::string::npos) << what;
  }
}

TEST(Quality, SsimLossIsOneMinusTheMeanSsim) {
  const double loss = record_loss(Quality::Ssim, {30, 31}, {29, 30}, {25, 35}, {0.9, 0.7});
  EXPECT_NEAR(loss, 1 - (0.9 + 0.7) / 2, 1e-15);
}

TEST(Quality, PsnrLossIsTheMeanNormalisedSquaredError) {
  // 20 dB: MSE/255^2 = 0.01; 30 dB: 0.001; identical images: none.
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_NEAR(record_loss(Quality::Psnr, {}, {}, {20, 30, inf}, {}), (0.01 + 0.001 + 0) / 3, 1e-15);
  // A missing score is not a perfect one.
  EXPECT_TRUE(std::isnan(record_loss(Quality::Psnr, {}, {}, {20, std::nan("")}, {})));
}

TEST(Quality, ClipLossIsTheRelativeDropOfTheMeans) {
  EXPECT_NEAR(record_loss(Quality::Clip, {30, 20}, {27, 18}, {}, {}), (50.0 - 45.0) / 50.0, 1e-15);
}

TEST(Quality, RowLossUsesThePromptsAndPassesClipThrough) {
  io::EvaluationRow row;
  row.score_loss = 0.0123;  // the evaluator's own number: kept bit for bit
  row.ssim = 0.5;           // a mean that disagrees with the prompts: the prompts win
  row.prompts = {{0, 30, 29, 20, 0.8}, {1, 30, 30, 40, 0.6}};
  EXPECT_EQ(row_loss(Quality::Clip, row), 0.0123);
  EXPECT_NEAR(row_loss(Quality::Ssim, row), 0.3, 1e-15);
  EXPECT_NEAR(row_loss(Quality::Psnr, row), (0.01 + 1e-4) / 2, 1e-15);
  row.prompts.clear();  // no per-prompt scores: the means
  EXPECT_NEAR(row_loss(Quality::Ssim, row), 0.5, 1e-15);
}

}  // namespace
}  // namespace diffsearch::coordinator
