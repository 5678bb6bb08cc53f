// ToMe's fused CUDA kernels (worker/engine/kernels/tome_kernels.cu) against the ATen
// matching they replace: the same merge and unmerge for every dtype, grid
// and ratio, including grids that are not a power of two. Skipped where the
// build lacks them (no nvcc beside CUDA libtorch, or DIFFSEARCH_CUDA_KERNELS
// =OFF) or there is no GPU; the switch is checked in cuda_kernels_test.cc.
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/engine/rel_err.h"
#include "tests/support/engine/scoped_env.h"
#include "worker/engine/kernels/cuda_kernels.h"
#include "worker/engine/core/device.h"
#include "worker/engine/accel/policy_tome.h"

namespace diffsearch::engine {
namespace {

using testing::rel_err;
using testing::ScopedEnv;

struct Case {
  int64_t w, h;
  double ratio;
  at::ScalarType dtype;
  double bound;  // merge/unmerge against ATen's
};

TEST(ToMeKernels, MatchAndMergeEqualAtens) {
  if (!cuda_kernels_built() || !cuda_available()) GTEST_SKIP() << "built without the kernels, or no GPU";
  const std::vector<Case> cases = {
      {16, 16, 0.5, at::kDouble, 1e-12}, {12, 20, 0.3, at::kDouble, 1e-12},
      {64, 64, 0.5, at::kFloat, 1e-6},   {30, 18, 0.7, at::kFloat, 1e-6},
      {64, 64, 0.5, at::kHalf, 2e-3},    {32, 32, 0.5, at::kBFloat16, 2e-2},
      // 2, 8 and 16 sort items per thread (the block sort's other sizes).
      {40, 40, 0.5, at::kFloat, 1e-6},   {80, 80, 0.4, at::kDouble, 1e-12},
      {96, 96, 0.5, at::kHalf, 2e-3},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.w) + "x" + std::to_string(c.h) + " ratio " + std::to_string(c.ratio) +
                 " " + c10::toString(c.dtype));
    const int64_t n = c.w * c.h, channels = 40, batch = 2;
    const auto options = at::TensorOptions().dtype(c.dtype).device(at::kCUDA);
    at::manual_seed(static_cast<uint64_t>(n));
    const at::Tensor metric = at::randn({batch, n, channels}, at::TensorOptions().dtype(at::kDouble)).to(options);
    const at::Tensor x = at::randn({batch, n, channels}, at::TensorOptions().dtype(at::kDouble)).to(options);
    const at::Tensor choice = at::randint(4, {c.h / 2, c.w / 2}, at::TensorOptions().dtype(at::kLong));
    const at::Tensor dst = token_partition_2d(c.w, c.h, 2, 2, choice).first.to(at::kCUDA);
    const auto r = static_cast<int64_t>(static_cast<double>(n) * c.ratio);
    TokenMerge aten, fused;
    {
      ScopedEnv env("DIFFSEARCH_TOME_KERNELS", "0");
      aten = TokenMerge::match(metric, dst, r);
    }
    fused = TokenMerge::match(metric, dst, r);
    ASSERT_TRUE(fused.active());
    EXPECT_EQ(fused.merged_tokens(), aten.merged_tokens());
    const at::Tensor merged = fused.merge(x), want = aten.merge(x);
    ASSERT_EQ(merged.sizes(), want.sizes());
    EXPECT_LT(rel_err(merged, want), c.bound);
    // Unmerging the same merged tensor: every position reads the same row.
    EXPECT_TRUE(at::equal(fused.unmerge(want), aten.unmerge(want)));
    // And it repeats exactly.
    EXPECT_TRUE(at::equal(TokenMerge::match(metric, dst, r).merge(x), merged));
  }
}

}  // namespace
}  // namespace diffsearch::engine
