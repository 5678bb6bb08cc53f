// The layers of nn.cc that differ by device: GroupNorm on CUDA (two float
// reductions and a multiply-add, any memory layout) against at::group_norm
// in float64, the same formula on the CPU, GroupNorm's per-channel add and
// SiLU, a convolution without its bias, and convolution weights kept NHWC
// on CUDA only.
#include "worker/engine/core/nn.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/engine/rel_err.h"
#include "worker/engine/core/device.h"

namespace diffsearch::engine {
namespace {

using testing::rel_err;

GroupNorm make_group_norm(int64_t groups, int64_t channels, double eps) {
  GroupNorm g;
  auto f64 = at::TensorOptions().dtype(at::kDouble);
  g.weight = at::linspace(0.5, 1.5, channels, f64);
  g.bias = at::linspace(-0.3, 0.2, channels, f64);
  g.groups = groups;
  g.eps = eps;
  return g;
}

GroupNorm to(const GroupNorm& g, const at::TensorOptions& options) {
  GroupNorm out = g;
  out.weight = g.weight.to(options);
  out.bias = g.bias.to(options);
  return out;
}

TEST(GroupNormCuda, MatchesAtGroupNormInEveryLayoutAndDtype) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  struct Case {
    std::vector<int64_t> shape;
    int64_t groups;
    double offset;  // a mean far from zero: the variance must not cancel away
  };
  const std::vector<Case> cases = {{{2, 64, 16, 16}, 32, 0.0},
                                   {{1, 128, 64, 64}, 32, 0.0},
                                   {{2, 96, 8, 12}, 3, 4.0},
                                   {{1, 32, 5, 7}, 32, -2.0}};
  for (const Case& c : cases) {
    const GroupNorm g64 = make_group_norm(c.groups, c.shape[1], 1e-6);
    const at::Tensor x64 = at::randn(c.shape, at::TensorOptions().dtype(at::kDouble)) * 1.7 + c.offset;
    const at::Tensor want = at::group_norm(x64, c.groups, g64.weight, g64.bias, g64.eps);
    for (auto dtype : {at::kDouble, at::kFloat, at::kHalf}) {
      for (auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
        const auto options = at::TensorOptions().dtype(dtype).device(at::kCUDA);
        const at::Tensor x = x64.to(options).contiguous(layout);
        const at::Tensor y = to(g64, options)(x);
        EXPECT_EQ(y.scalar_type(), dtype);
        EXPECT_TRUE(y.is_contiguous(layout)) << "the output keeps the input's layout";
        // Against float64 on the CPU, from inputs rounded to this dtype.
        const at::Tensor exact = at::group_norm(x.to(at::kCPU, at::kDouble), c.groups, g64.weight,
                                                g64.bias, g64.eps);
        const double err = rel_err(y, exact);
        const double bound = dtype == at::kDouble ? 1e-12 : dtype == at::kFloat ? 1e-5 : 2e-3;
        EXPECT_LT(err, bound) << c10::toString(dtype) << " " << c.shape[1] << " channels, "
                              << c.groups << " groups, offset " << c.offset;
        if (dtype == at::kDouble) {
          EXPECT_LT(rel_err(y, want), 1e-12);
        }
      }
    }
  }
}

// The same formula on the CPU (where the engine keeps at::group_norm).
TEST(GroupNormReduced, MatchesAtGroupNormOnTheCpu) {
  const GroupNorm g = make_group_norm(4, 16, 1e-5);
  for (double offset : {0.0, 3.0}) {
    const at::Tensor x = at::randn({2, 16, 6, 10}, at::TensorOptions().dtype(at::kDouble)) + offset;
    const at::Tensor want = at::group_norm(x, 4, g.weight, g.bias, g.eps);
    for (auto layout : {at::MemoryFormat::Contiguous, at::MemoryFormat::ChannelsLast}) {
      const at::Tensor y = group_norm_reduced(x.contiguous(layout), 4, g.weight, g.bias, g.eps);
      EXPECT_LT(rel_err(y, want), 1e-12);
      EXPECT_TRUE(y.is_contiguous(layout));
      const auto f32 = at::TensorOptions().dtype(at::kFloat);
      const at::Tensor y32 = group_norm_reduced(x.to(f32).contiguous(layout), 4, g.weight.to(f32),
                                                g.bias.to(f32), g.eps);
      EXPECT_LT(rel_err(y32, want), 1e-5);
    }
  }
  // Without affine parameters: zero mean, unit variance per group.
  const at::Tensor x = at::randn({1, 8, 5, 5}, at::TensorOptions().dtype(at::kDouble)) * 3 + 1;
  const at::Tensor y = group_norm_reduced(x, 2, at::Tensor(), at::Tensor(), 0.0).view({1, 2, -1});
  EXPECT_LT(y.mean(-1).abs().max().item<double>(), 1e-12);
  EXPECT_NEAR(y.var(-1, /*unbiased=*/false).max().item<double>(), 1.0, 1e-12);
}

// What a resnet asks of its second norm on every device: the time embedding
// and conv1's bias added per channel first, SiLU after.
TEST(GroupNormSilu, AddsPerChannelFirstAndActivatesAfter) {
  const GroupNorm g = make_group_norm(4, 16, 1e-5);
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const at::Tensor x = at::randn({2, 16, 5, 6}, f64);
  const at::Tensor add = at::randn({2, 16}, f64) * 3;
  const at::Tensor want = at::silu(at::group_norm(x + add.view({2, 16, 1, 1}), 4, g.weight, g.bias, g.eps));
  EXPECT_LT(rel_err(g.silu(x, add), want), 1e-14);
  // An expanded [C] bias (stride 0 over the batch) is a [B, C] add too.
  const at::Tensor bias = at::randn({16}, f64);
  EXPECT_LT(rel_err(g.silu(x, bias.unsqueeze(0).expand({2, -1})),
                    at::silu(at::group_norm(x + bias.view({1, 16, 1, 1}), 4, g.weight, g.bias, g.eps))),
            1e-14);
  EXPECT_LT(rel_err(g.silu(x), at::silu(g(x))), 1e-15);
  // The add moves the per-group means, so a norm that dropped it would differ.
  EXPECT_GT(rel_err(g.silu(x), want), 1e-2);
}

TEST(Conv2dWithoutBias, IsTheConvolutionLessItsBias) {
  Conv2d c;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  c.weight = at::randn({6, 3, 3, 3}, f64);
  c.bias = at::randn({6}, f64);
  c.padding = 1;
  const at::Tensor x = at::randn({2, 3, 7, 7}, f64);
  macs::reset();
  const at::Tensor with = c(x);
  const int64_t macs_with = macs::total();
  macs::reset();
  const at::Tensor without = c(x, /*with_bias=*/false);
  EXPECT_EQ(macs::total(), macs_with) << "the same multiply-accumulates either way";
  EXPECT_LT(rel_err(without + c.bias.view({1, 6, 1, 1}), with), 1e-14);
  EXPECT_GT(rel_err(without, with), 1e-2);
}

TEST(Conv2dWeights, AreNhwcOnCudaAndNchwOnTheCpu) {
  for (const bool cuda : {false, true}) {
    if (cuda && !cuda_available()) continue;
    RunOptions options;
    options.dtype = at::kDouble;  // float32 convolutions on CUDA may use TF32
    options.device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    Weights w = Weights::synthesize(7, options);
    const Conv2d conv = Conv2d::load(w, "conv", 8, 16, 3, 1, 1);
    EXPECT_EQ(conv.weight.is_contiguous(at::MemoryFormat::ChannelsLast), cuda);
    // Whatever the layout, the convolution is the same.
    const at::Tensor x = at::randn({2, 8, 9, 9}, at::TensorOptions().dtype(at::kDouble)).to(options.device);
    const at::Tensor want = at::conv2d(x.to(at::kCPU), conv.weight.to(at::kCPU).contiguous(),
                                       conv.bias.to(at::kCPU), {1, 1}, {1, 1});
    EXPECT_LT(rel_err(conv(x), want), 1e-12);
  }
}

// Padding a thin convolution's output channels: the same result and MACs,
// the weight zero-padded to the multiple (and left alone where it fits).
TEST(Conv2dWeights, PaddedOutputChannelsGiveTheSameConvolution) {
  for (const bool cuda : {false, true}) {
    if (cuda && !cuda_available()) continue;
    RunOptions options;
    options.dtype = at::kDouble;
    options.device = cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    Weights w = Weights::synthesize(5, options);
    const Conv2d thin = Conv2d::load(w, "conv_out", 16, 4, 3, 1, 1);
    Conv2d padded = thin;
    padded.pad_output_channels(8);
    EXPECT_EQ(padded.weight.size(0), 8);
    EXPECT_EQ(padded.out_channels, 4);
    EXPECT_EQ(padded.weight.is_contiguous(at::MemoryFormat::ChannelsLast), cuda);
    EXPECT_EQ(at::count_nonzero(padded.weight.narrow(0, 4, 4)).item<int64_t>(), 0);
    const at::Tensor x = at::randn({2, 16, 9, 9}, at::TensorOptions().dtype(at::kDouble)).to(options.device);
    macs::reset();
    const at::Tensor want = thin(x);
    const int64_t want_macs = macs::total();
    macs::reset();
    const at::Tensor got = padded(x);
    EXPECT_EQ(got.sizes(), want.sizes());
    EXPECT_LT(rel_err(got, want), 1e-12);
    EXPECT_EQ(macs::total(), want_macs);
    Conv2d fits = Conv2d::load(w, "conv_in", 4, 16, 3, 1, 1);
    const at::Tensor before = fits.weight;
    fits.pad_output_channels(8);
    EXPECT_TRUE(fits.weight.is_same(before));
  }
}

}  // namespace
}  // namespace diffsearch::engine
