// GroupNorm's NHWC CUDA kernel (group_norm_kernels.cu, through GroupNorm in
// nn.cc) against at::group_norm in float64: every dtype, channel counts that
// take one or several rows per thread block, means far from zero, and the
// fused time-embedding add and SiLU. Its tests exist only in builds with the
// kernels (DIFFSEARCH_WITH_CUDA_KERNELS) and skip without a GPU.
#include "worker/engine/kernels/group_norm_kernels.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/engine/rel_err.h"
#include "worker/engine/kernels/cuda_kernels.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"

namespace diffsearch::engine {
namespace {

#ifdef DIFFSEARCH_WITH_CUDA_KERNELS
using testing::rel_err;

// A norm as GroupNorm::load leaves it on CUDA: the affine parameters also in
// the accumulation type.
GroupNorm cuda_norm(int64_t groups, int64_t channels, at::ScalarType dtype) {
  GroupNorm g;
  const auto options = at::TensorOptions().dtype(at::kDouble);
  g.weight = at::linspace(0.5, 1.5, channels, options).to(at::kCUDA, dtype);
  g.bias = at::linspace(-0.3, 0.2, channels, options).to(at::kCUDA, dtype);
  const auto acc = dtype == at::kDouble ? at::kDouble : at::kFloat;
  g.weight_acc = g.weight.to(acc);
  g.bias_acc = g.bias.to(acc);
  g.groups = groups;
  g.eps = 1e-6;
  return g;
}

TEST(NormKernels, FitsOnlyWholeVectorsAndGroups) {
  using group_norm_kernels::Dtype;
  using group_norm_kernels::fits;
  EXPECT_TRUE(fits(320, 32, Dtype::float16));
  EXPECT_TRUE(fits(2560, 32, Dtype::float16));  // 320 threads of 8 channels
  EXPECT_FALSE(fits(20, 4, Dtype::float16));    // not a multiple of 8 halves
  EXPECT_TRUE(fits(20, 4, Dtype::float32));
  EXPECT_FALSE(fits(320, 30, Dtype::float32));  // groups must divide the channels
  EXPECT_FALSE(fits(2560, 32, Dtype::float64)); // 1280 threads of 2 doubles
}

struct Case {
  std::vector<int64_t> shape;
  int64_t groups;
  double offset;  // a mean far from zero: the variance must not cancel away
};

TEST(NormKernels, MatchAtGroupNormWithAddAndSilu) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  const std::vector<Case> cases = {
      {{2, 320, 64, 64}, 32, 0.0},   // SD1.5's first resnets: 40 threads a row
      {{2, 640, 8, 8}, 32, 3.0},     {{1, 128, 33, 17}, 32, -1.0},  // odd pixel counts
      {{3, 2560, 4, 4}, 32, 0.0},    // more channels than 256 threads hold
      {{2, 96, 5, 7}, 32, 300.0},    // three channels a group, far from zero
      {{1, 24, 3, 3}, 8, 0.5},
  };
  for (const Case& c : cases) {
    const int64_t batch = c.shape[0], channels = c.shape[1];
    at::manual_seed(static_cast<uint64_t>(channels));
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    const at::Tensor x64 = at::randn(c.shape, f64) * 1.7 + c.offset;
    const at::Tensor add64 = at::randn({batch, channels}, f64) * 2.0;
    for (auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16}) {
      const auto kernel_dtype = kernels::dtype_of(at::empty({0}, dtype));
      if (!group_norm_kernels::fits(channels, c.groups, kernel_dtype)) continue;
      const GroupNorm g = cuda_norm(c.groups, channels, dtype);
      const auto options = at::TensorOptions().dtype(dtype).device(at::kCUDA);
      const at::Tensor x = x64.to(options).contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor add = add64.to(options);
      // The exact result of the rounded inputs and parameters (less the
      // offset, which a norm ignores, so that the reference keeps every digit).
      const at::Tensor xr = x.to(at::kCPU, at::kDouble) - c.offset, addr = add.to(at::kCPU, at::kDouble);
      const at::Tensor w = g.weight.to(at::kCPU, at::kDouble), b = g.bias.to(at::kCPU, at::kDouble);
      const at::Tensor plain = at::group_norm(xr, c.groups, w, b, g.eps);
      const at::Tensor fused =
          at::silu(at::group_norm(xr + addr.view({batch, channels, 1, 1}), c.groups, w, b, g.eps));
      const double bound = dtype == at::kDouble  ? 1e-12
                           : dtype == at::kFloat ? 1e-5
                           : dtype == at::kHalf  ? 2e-3
                                                 : 1.5e-2;
      const std::string what = std::string(c10::toString(dtype)) + " " + std::to_string(channels) +
                               " channels, offset " + std::to_string(c.offset);
      const at::Tensor y = g(x);
      EXPECT_LT(rel_err(y, plain), bound) << what;
      EXPECT_TRUE(y.is_contiguous(at::MemoryFormat::ChannelsLast)) << what;
      EXPECT_EQ(y.scalar_type(), dtype);
      const at::Tensor ys = g.silu(x, add);
      EXPECT_LT(rel_err(ys, fused), bound) << what << ", with add and SiLU";
      EXPECT_LT(rel_err(g.silu(x), at::silu(plain)), bound) << what << ", SiLU";
      // No atomics: a second call repeats every bit.
      EXPECT_TRUE(at::equal(g.silu(x, add), ys)) << what;
      // NCHW input takes ATen's path (group_norm_reduced, whose float sums
      // of squares do lose a far-off mean's variance): the same values.
      if (c.offset < 10.0) {
        const at::Tensor nchw = g.silu(x.contiguous(), add);
        EXPECT_LT(rel_err(nchw, fused), dtype == at::kDouble ? 1e-12 : 2 * bound) << what << ", NCHW";
      }
    }
  }
}

#endif  // DIFFSEARCH_WITH_CUDA_KERNELS

}  // namespace
}  // namespace diffsearch::engine
