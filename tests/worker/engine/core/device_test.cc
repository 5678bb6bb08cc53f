// The run device's helpers: --dtype/--device parsing and its errors, the
// DIFFSEARCH_CUDA_GRAPHS and DIFFSEARCH_CHANNELS_LAST switches, and the
// capture flag policies consult.
#include "worker/engine/core/device.h"

#include <cstdlib>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/error.h"
#include "tests/support/engine/scoped_env.h"

namespace diffsearch::engine {
namespace {

TEST(RunOptions, NamesParseAndBadOnesAreInputErrors) {
  EXPECT_EQ(parse_run_options("fp64", "cpu").dtype, c10::kDouble);
  EXPECT_EQ(parse_run_options("float32", "cpu").device, c10::Device(c10::kCPU));
  EXPECT_THROW(parse_run_options("float8", "cpu"), InputError);
  EXPECT_THROW(parse_run_options("float32", "tpu"), InputError);
  EXPECT_THROW(parse_run_options("float16", "cpu"), InputError);  // half runs only on CUDA
  if (!cuda_available()) {
    EXPECT_THROW(parse_run_options("float32", "cuda:0"), InputError);
  }
}

using testing::ScopedEnv;

TEST(CudaGraphs, SwitchIsCheckedAndNeverOnForTheCpu) {
  const RunOptions cpu = parse_run_options("float32", "cpu");
  {
    ScopedEnv env("DIFFSEARCH_CUDA_GRAPHS", "1");
    EXPECT_FALSE(cuda_graphs_enabled(cpu));
  }
  {
    ScopedEnv env("DIFFSEARCH_CUDA_GRAPHS", "yes");
    try {
      cuda_graphs_enabled(cpu);
      ADD_FAILURE() << "DIFFSEARCH_CUDA_GRAPHS=yes accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("DIFFSEARCH_CUDA_GRAPHS='yes'"), std::string::npos) << e.what();
    }
  }
  if (cuda_available()) {
    const RunOptions cuda = parse_run_options("float32", "cuda");
    ScopedEnv env("DIFFSEARCH_CUDA_GRAPHS", "0");
    EXPECT_FALSE(cuda_graphs_enabled(cuda));
  }
}

TEST(ChannelsLast, SwitchIsCheckedAndNeverOnForTheCpu) {
  EXPECT_FALSE(channels_last_enabled(c10::Device(c10::kCPU)));
  {
    ScopedEnv env("DIFFSEARCH_CHANNELS_LAST", "nhwc");
    try {
      channels_last_enabled(c10::Device(c10::kCPU));
      ADD_FAILURE() << "DIFFSEARCH_CHANNELS_LAST=nhwc accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("DIFFSEARCH_CHANNELS_LAST='nhwc'"), std::string::npos) << e.what();
    }
  }
  if (cuda_available()) {
    EXPECT_TRUE(channels_last_enabled(c10::Device(c10::kCUDA, 0)));
    ScopedEnv env("DIFFSEARCH_CHANNELS_LAST", "0");
    EXPECT_FALSE(channels_last_enabled(c10::Device(c10::kCUDA, 0)));
  }
}

TEST(CudaGraphs, CaptureFlagNestsAndHostFilledBuffersAreOrdinaryOnTheCpu) {
  EXPECT_FALSE(capturing_graph());
  {
    GraphCaptureScope outer;
    {
      GraphCaptureScope inner;
      EXPECT_TRUE(capturing_graph());
    }
    EXPECT_TRUE(capturing_graph());
    const at::Tensor t = empty_outside_graph({3, 4}, at::TensorOptions().dtype(at::kLong));
    EXPECT_EQ(t.sizes(), (at::IntArrayRef{3, 4}));
    EXPECT_EQ(t.scalar_type(), at::kLong);
  }
  EXPECT_FALSE(capturing_graph());
}

}  // namespace
}  // namespace diffsearch::engine
