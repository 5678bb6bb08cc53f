// GEGLU's CUDA kernel (geglu_kernels.cu, through FeedForward in
// unet_blocks.cc) against hidden * gelu(gate) in float64: every dtype, the
// UNets' widths and odd row counts, and the feed-forward with the kernel
// against the same block with it switched off. On the CPU (and in builds
// without the kernels) the kernel never takes a tensor, and it runs only
// when DIFFSEARCH_GEGLU_KERNELS=1 (opt-in until measured on a GPU).
#include "worker/engine/kernels/geglu_kernels.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/error.h"
#include "tests/support/engine/rel_err.h"
#include "tests/support/engine/scoped_env.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/kernels/cuda_kernels.h"
#include "worker/engine/models/unet_blocks.h"

namespace diffsearch::engine {
namespace {

using testing::rel_err;
using testing::ScopedEnv;

TEST(GegluKernel, NeverTakesACpuTensor) {
  const at::Tensor x = at::randn({4, 64}, at::kDouble);
  ScopedEnv on("DIFFSEARCH_GEGLU_KERNELS", "1");
  EXPECT_FALSE(geglu_kernel_takes(x, 32));
  EXPECT_FALSE(geglu_kernel(x).defined());
}

TEST(GegluKernel, IsOptInAndItsSwitchIsChecked) {
  const c10::Device cpu(c10::kCPU);
  {
    ScopedEnv unset("DIFFSEARCH_GEGLU_KERNELS", "");  // empty: as if unset
    EXPECT_FALSE(geglu_kernels_enabled(cpu));
    if (cuda_available()) {
      EXPECT_FALSE(geglu_kernels_enabled(c10::Device(c10::kCUDA, 0))) << "off unless asked for";
    }
  }
  {
    ScopedEnv bad("DIFFSEARCH_GEGLU_KERNELS", "fused");
    EXPECT_THROW(geglu_kernels_enabled(cpu), InputError);
  }
  ScopedEnv on("DIFFSEARCH_GEGLU_KERNELS", "1");
  EXPECT_FALSE(geglu_kernels_enabled(cpu));
  if (cuda_available()) {
    EXPECT_EQ(geglu_kernels_enabled(c10::Device(c10::kCUDA, 0)), cuda_kernels_built());
  }
}

#ifdef DIFFSEARCH_WITH_CUDA_KERNELS

at::Tensor reference(const at::Tensor& projected) {
  const at::Tensor p = projected.to(at::kCPU, at::kDouble);
  const auto halves = p.chunk(2, -1);
  return halves[0] * at::gelu(halves[1]);
}

TEST(GegluKernel, FitsOnlyWholeVectors) {
  using geglu_kernels::Dtype;
  EXPECT_TRUE(geglu_kernels::fits(1280, Dtype::float16));
  EXPECT_FALSE(geglu_kernels::fits(12, Dtype::float16));  // not a multiple of 8 halves
  EXPECT_TRUE(geglu_kernels::fits(12, Dtype::float32));
  EXPECT_FALSE(geglu_kernels::fits(3, Dtype::float64));
}

TEST(GegluKernel, MatchesHiddenTimesGeluOfTheGate) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  ScopedEnv on("DIFFSEARCH_GEGLU_KERNELS", "1");
  // SD1.5's widths (4 x 320, 640, 1280), a tiny model's, odd row counts.
  const std::vector<std::vector<int64_t>> shapes = {{2, 4096, 2560}, {2, 77, 5120}, {3, 5, 10240}, {1, 33, 256}};
  for (const auto& shape : shapes) {
    at::manual_seed(static_cast<uint64_t>(shape[1]));
    const at::Tensor p64 = at::randn(shape, at::kDouble) * 2.0;
    for (auto dtype : {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16}) {
      const at::Tensor p = p64.to(at::TensorOptions().dtype(dtype).device(at::kCUDA));
      const std::string what = std::string(c10::toString(dtype)) + " width " + std::to_string(shape[2] / 2);
      ASSERT_TRUE(geglu_kernel_takes(p, shape[2] / 2)) << what;
      const at::Tensor y = geglu_kernel(p);
      ASSERT_TRUE(y.defined()) << what;
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{shape[0], shape[1], shape[2] / 2})) << what;
      EXPECT_EQ(y.scalar_type(), dtype);
      // Against the rounded inputs, computed exactly: one rounding of the result.
      const double bound = dtype == at::kDouble  ? 1e-14
                           : dtype == at::kFloat ? 1e-6
                           : dtype == at::kHalf  ? 1e-3
                                                 : 8e-3;
      EXPECT_LT(rel_err(y, reference(p)), bound) << what;
      ScopedEnv off("DIFFSEARCH_GEGLU_KERNELS", "0");
      EXPECT_FALSE(geglu_kernel_takes(p, shape[2] / 2)) << what;
      EXPECT_FALSE(geglu_kernel(p).defined()) << what;
    }
  }
}

TEST(GegluKernel, FeedForwardMatchesItsAtenPath) {
  if (!cuda_available()) GTEST_SKIP() << "no GPU";
  ScopedEnv on("DIFFSEARCH_GEGLU_KERNELS", "1");
  const int64_t dim = 320;
  at::manual_seed(7);
  FeedForward ff;
  for (auto dtype : {at::kFloat, at::kHalf}) {
    const auto options = at::TensorOptions().dtype(dtype).device(at::kCUDA);
    ff.proj = {at::randn({8 * dim, dim}, at::kDouble).mul_(0.05).to(options), at::randn({8 * dim}, at::kDouble).mul_(0.1).to(options)};
    ff.out = {at::randn({dim, 4 * dim}, at::kDouble).mul_(0.03).to(options), at::randn({dim}, at::kDouble).mul_(0.1).to(options)};
    ff.hidden = {ff.proj.weight.narrow(0, 0, 4 * dim), ff.proj.bias.narrow(0, 0, 4 * dim)};
    ff.gate = {ff.proj.weight.narrow(0, 4 * dim, 4 * dim), ff.proj.bias.narrow(0, 4 * dim, 4 * dim)};
    const at::Tensor x = at::randn({2, 1024, dim}, options);
    const at::Tensor fused = ff(x);
    at::Tensor aten;
    {
      ScopedEnv off("DIFFSEARCH_GEGLU_KERNELS", "0");
      aten = ff(x);
    }
    EXPECT_LT(rel_err(fused, aten), dtype == at::kHalf ? 4e-3 : 1e-5) << c10::toString(dtype);
  }
}

#endif  // DIFFSEARCH_WITH_CUDA_KERNELS

}  // namespace
}  // namespace diffsearch::engine
