// The frontier's combination speed model: composing speedups with a fixed
// share of time no method shortens, and fitting that share from held-out
// error.
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

}  // namespace
}  // namespace diffsearch::coordinator
