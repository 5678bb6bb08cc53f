// Student's t quantiles against published table values, and the one-sided
// bounds the race eliminates settings by.
#include "coordinator/race_stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace diffsearch::coordinator {
namespace {

TEST(RaceStats, StudentTQuantilesMatchTables) {
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.7062, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.99, 3), 4.5407, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.95, 30), 1.6973, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.999, 7), 4.7853, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.5, 5), 0.0, 1e-7);
  EXPECT_NEAR(student_t_quantile(0.01, 3), -4.5407, 1e-3);
  EXPECT_NEAR(student_t_quantile(0.975, 1000), 1.96234, 1e-4);
  EXPECT_EQ(student_t_quantile(0.975, 100000), student_t_quantile(0.975, 1000));  // capped, on the safe side
}

TEST(RaceStats, MeanBoundsWidenWithSpreadAndConfidence) {
  const MeanBounds tight = mean_bounds({1.0, 1.1, 0.9, 1.0}, 0.99);
  EXPECT_NEAR(tight.mean, 1.0, 1e-12);
  EXPECT_LT(tight.lower, 1.0);
  EXPECT_GT(tight.upper, 1.0);
  const MeanBounds wide = mean_bounds({1.0, 2.0, 0.0, 1.0}, 0.99);
  EXPECT_LT(wide.lower, tight.lower);
  const MeanBounds lax = mean_bounds({1.0, 2.0, 0.0, 1.0}, 0.9);
  EXPECT_GT(lax.lower, wide.lower);
  // sd 0.8165, n 4, t(0.99, 3) 4.5407: half width 1.8537.
  EXPECT_NEAR(wide.upper - wide.mean, 4.5407 * std::sqrt(2.0 / 3.0) / 2, 1e-3);
  const MeanBounds one = mean_bounds({3.0}, 0.99);
  EXPECT_TRUE(std::isinf(one.lower) && std::isinf(one.upper)) << "one prompt says nothing of the spread";
  const MeanBounds same = mean_bounds({2.0, 2.0, 2.0}, 0.99);
  EXPECT_EQ(same.lower, 2.0);
  EXPECT_EQ(same.upper, 2.0);
}

// Bounds on what all prompts will measure: none left at full fidelity,
// narrower than the true-mean bounds before it, and the pooled half width
// is the same formula for a given spread.
TEST(RaceStats, FinalMeanBoundsCloseAtFullFidelity) {
  const std::vector<double> v = {1.0, 2.0, 0.0, 1.0};
  const MeanBounds all = final_mean_bounds(v, 4, 0.99);
  EXPECT_EQ(all.lower, all.mean);
  EXPECT_EQ(all.upper, all.mean);
  const MeanBounds part = final_mean_bounds(v, 32, 0.99);
  const MeanBounds truth = mean_bounds(v, 0.99);
  EXPECT_LT(part.upper - part.mean, truth.upper - truth.mean);
  EXPECT_GT(part.upper, part.mean);
  const double sd = std::sqrt(2.0 / 3.0);
  EXPECT_NEAR(mean_half_width(sd, 4, 32, 3, 0.99, /*final=*/true), part.upper - part.mean, 1e-12);
  EXPECT_NEAR(mean_half_width(sd, 4, 32, 3, 0.99, /*final=*/false), truth.upper - truth.mean, 1e-12);
  EXPECT_EQ(mean_half_width(sd, 32, 32, 3, 0.99, true), 0.0);
  // Many degrees of freedom from pooling: t(0.99, 96) 2.37 against t(0.99, 3)
  // 4.54, so a 4-prompt bound about half as wide.
  EXPECT_NEAR(mean_half_width(sd, 4, 32, 96, 0.99, true) / (part.upper - part.mean), 2.366 / 4.541, 2e-3);
}

}  // namespace
}  // namespace diffsearch::coordinator
