// The frontier's combination model: composing speedups with a fixed share
// of time no method shortens, fitting that share from held-out error, and
// the loss model whose margin grows with the loss.
#include "coordinator/combination_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace diffsearch::coordinator {
namespace {

// A method that leaves fraction u of the shortenable time, with fixed share f.
double speedup_of(double u, double f) { return 1 / (f + (1 - f) * u); }

TEST(CombinationModel, ComposesOnlyTheShortenableTime) {
  EXPECT_NEAR(composed_speedup({2.0, 3.0}, 0.0), 6.0, 1e-12) << "no fixed share: the plain product";
  // f = 0.1, each method halves the rest: each alone 1/0.55, together
  // 1/(0.1 + 0.9 * 0.25), less than the product of the two.
  const double s = speedup_of(0.5, 0.1);
  EXPECT_NEAR(composed_speedup({s, s}, 0.1), 1 / 0.325, 1e-12);
  EXPECT_LT(composed_speedup({s, s}, 0.1), s * s);
  EXPECT_GT(composed_speedup({50.0}, 0.1), 0) << "a component beyond the fixed share's bound is clamped";
}

TEST(CombinationModel, FitFindsTheFixedShareOfItsData) {
  std::vector<std::vector<double>> parts;
  std::vector<double> measured;
  for (double u1 : {0.2, 0.35, 0.5, 0.7, 0.9}) {
    for (double u2 : {0.3, 0.6, 0.95}) {
      parts.push_back({speedup_of(u1, 0.12), speedup_of(u2, 0.12)});
      measured.push_back(speedup_of(u1 * u2, 0.12));
    }
  }
  const SpeedFit fit = fit_speed_model(parts, measured);
  EXPECT_NEAR(fit.fixed_share, 0.12, 1e-9);
  EXPECT_LT(fit.worst_error, 1e-9);
  EXPECT_NEAR(fit.predict({speedup_of(0.4, 0.12), speedup_of(0.5, 0.12)}), speedup_of(0.2, 0.12), 1e-9);
  // The plain product misses the same data by more than the fit allows.
  const double product = parts[0][0] * parts[0][1];
  EXPECT_GT(std::fabs(product / measured[0] - 1), 0.05);
}

TEST(CombinationModel, LineFitLeavesOnePointOut) {
  const std::vector<std::pair<double, double>> points = {{0, 1}, {1, 3}, {2, 5}, {3, 100}};
  const auto [a, b] = line_fit(points, 3);
  EXPECT_NEAR(a, 1, 1e-12);
  EXPECT_NEAR(b, 2, 1e-12);
  const auto flat = line_fit({{1, 2}, {1, 4}}, 2);
  EXPECT_EQ(flat.second, 1.0) << "x that does not vary: slope 1";
}

TEST(CombinationModel, LossFitRecoversAProportionAndItsScale) {
  std::vector<std::pair<double, double>> points;
  for (double raw : {0.0, 0.004, 0.01, 0.02, 0.05, 0.1}) points.push_back({raw, 1.2 * raw});
  const LossFit fit = fit_loss_model(points, 0.02);
  EXPECT_NEAR(fit.b, 1.2, 1e-12);
  EXPECT_NEAR(fit.predict(0.03), 0.036, 1e-12);
  EXPECT_LT(fit.worst_error, 1e-9);
  // The scale: the loss itself above the floor, the square root's shape below.
  EXPECT_NEAR(fit.scale(0.1), std::sqrt(0.102 * 0.1), 1e-12);
  EXPECT_NEAR(fit.scale(0.0), std::sqrt(0.002 * 0.02), 1e-12);
  EXPECT_LT(fit.scale(0.005), fit.scale(0.02));
  EXPECT_GT(fit.scale(0.005), 0.005) << "below the floor the margin shrinks slower than the loss";
}

TEST(CombinationModel, LossMarginGrowsWithTheLossAndIgnoresFarOutliers) {
  // Measured losses 5% off the composed ones, alternately above and below:
  // errors in proportion to the loss.
  std::vector<std::pair<double, double>> points;
  int sign = 1;
  for (double raw : {0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.08, 0.12}) {
    points.push_back({raw, raw * (1 + 0.05 * sign)});
    sign = -sign;
  }
  // A very lossy setting (fast, far beyond any bound) 20% above its
  // composition: the unweighted line bends for it near the bound, the fit
  // here does not.
  points.push_back({0.3, 0.36});
  const LossFit fit = fit_loss_model(points, 0.02);
  const auto [a, b] = line_fit(points, points.size());
  EXPECT_LT(std::fabs(fit.predict(0.02) - 0.02), 0.0006);
  EXPECT_GT(std::fabs(a + b * 0.02 - 0.02), 2 * std::fabs(fit.predict(0.02) - 0.02));
  // Margins are held-out errors times the scale: ten times the loss, more
  // than five times the margin.
  EXPECT_GT(fit.scale(0.2), 5 * fit.scale(0.02));
  EXPECT_GT(fit.worst_error, 0.0);
  EXPECT_GT(fit.rms_error, 0.0);
  EXPECT_LE(fit.rms_error, fit.worst_error);
  // Each held-out error is about the 5% scatter, relative: at most about
  // 0.05 * l / scale(l) < 0.06 scale units; the outlier's own held-out error
  // is larger, and the root mean square lies between.
  EXPECT_LT(fit.rms_error, 0.5 * fit.worst_error + 0.06);
}

TEST(CombinationModel, LossFitHoldsOutItsOnlySmallLossPointCalmly) {
  // One calibration setting of small loss; the rest near and above the
  // bound, 10% scattered. A free intercept fitted without the small one
  // extrapolates below zero; through the origin it cannot.
  const std::vector<std::pair<double, double>> points = {{0.0018, 0.0015}, {0.0205, 0.0168}, {0.0176, 0.018},
                                                         {0.0332, 0.0343}, {0.0238, 0.0225}, {0.0414, 0.0458},
                                                         {0.0373, 0.046},  {0.0644, 0.0717}, {0.0971, 0.1091}};
  const LossFit fit = fit_loss_model(points, 0.02);
  EXPECT_LT(fit.worst_error, 0.3);
  const auto [a, b] = line_fit(points, 0);
  EXPECT_LT(a + b * 0.0018, 0.0) << "the free line held out of the small point goes negative there";
}

}  // namespace
}  // namespace diffsearch::coordinator
