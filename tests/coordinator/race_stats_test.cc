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

}  // namespace
}  // namespace diffsearch::coordinator
