// Fitting the batch to the device: halving after each out-of-memory error,
// remembered per shape, and giving up only below one image.
#include "worker/batch_fit.h"

#include <gtest/gtest.h>

namespace diffsearch::worker {
namespace {

TEST(BatchFit, HalvesUntilOneImageThenGivesUp) {
  BatchFit fit;
  EXPECT_EQ(fit.first_batch("sdxl|1024", 8), 8);
  EXPECT_EQ(fit.after_out_of_memory("sdxl|1024", 8), 4);
  EXPECT_EQ(fit.after_out_of_memory("sdxl|1024", 4), 2);
  EXPECT_EQ(fit.after_out_of_memory("sdxl|1024", 2), 1);
  EXPECT_EQ(fit.after_out_of_memory("sdxl|1024", 1), 0);
}

TEST(BatchFit, RemembersTheSizePerShapeAndNeverGrowsIt) {
  BatchFit fit;
  fit.after_out_of_memory("sdxl|1024", 8);
  EXPECT_EQ(fit.first_batch("sdxl|1024", 8), 4);   // later units start where it fitted
  EXPECT_EQ(fit.first_batch("sdxl|1024", 2), 2);   // a smaller request stays as asked
  EXPECT_EQ(fit.first_batch("sd15|512", 8), 8);    // other shapes are untouched
  fit.after_out_of_memory("sdxl|1024", 16);        // a larger request failing does not raise it
  EXPECT_EQ(fit.first_batch("sdxl|1024", 16), 4);
}

}  // namespace
}  // namespace diffsearch::worker
