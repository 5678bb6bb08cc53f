// The host side of the engine's CUDA kernels (worker/engine/kernels/cuda_kernels.h):
// each user's run-time switch (off on the CPU, a clear error for values
// other than 0 or 1, on for CUDA exactly where the kernels are built), the
// dtype mapping, and the error a failed launch becomes. Runs everywhere.
#include "worker/engine/kernels/cuda_kernels.h"

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/error.h"
#include "tests/support/engine/scoped_env.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/accel/policy_tome.h"

namespace diffsearch::engine {
namespace {

using testing::ScopedEnv;

struct Switch {
  const char* variable;
  std::function<bool(const c10::Device&)> enabled;
};

TEST(CudaKernels, EachSwitchIsCheckedAndOffWithoutThemOrOnTheCpu) {
  const std::vector<Switch> switches = {{"DIFFSEARCH_NORM_KERNELS", norm_kernels_enabled},
                                        {"DIFFSEARCH_TOME_KERNELS", tome_kernels_enabled}};
  const c10::Device cpu(c10::kCPU);
  for (const Switch& s : switches) {
    SCOPED_TRACE(s.variable);
    EXPECT_FALSE(s.enabled(cpu));
    {
      ScopedEnv env(s.variable, "fused");
      try {
        s.enabled(cpu);
        ADD_FAILURE() << "a value other than 0 or 1 was accepted";
      } catch (const InputError& e) {
        EXPECT_NE(std::string(e.what()).find(s.variable), std::string::npos) << e.what();
      }
    }
    if (cuda_available()) {
      const c10::Device cuda(c10::kCUDA, 0);
      EXPECT_EQ(s.enabled(cuda), cuda_kernels_built());
      ScopedEnv env(s.variable, "0");
      EXPECT_FALSE(s.enabled(cuda));
    }
  }
  // One switch does not turn the other off.
  if (cuda_available() && cuda_kernels_built()) {
    ScopedEnv env("DIFFSEARCH_TOME_KERNELS", "0");
    EXPECT_TRUE(norm_kernels_enabled(c10::Device(c10::kCUDA, 0)));
  }
}

TEST(CudaKernels, DtypeNamesEachFloatingType) {
  EXPECT_EQ(kernels::dtype_of(at::empty({1}, at::kHalf)), kernels::Dtype::float16);
  EXPECT_EQ(kernels::dtype_of(at::empty({1}, at::kBFloat16)), kernels::Dtype::bfloat16);
  EXPECT_EQ(kernels::dtype_of(at::empty({1}, at::kFloat)), kernels::Dtype::float32);
  EXPECT_EQ(kernels::dtype_of(at::empty({1}, at::kDouble)), kernels::Dtype::float64);
}

TEST(CudaKernels, ALaunchErrorNamesTheKernelAndTheWayBack) {
  EXPECT_NO_THROW(kernels::check(nullptr, "group_norm_kernels::group_norm_nhwc"));
  try {
    kernels::check("no kernel image is available", "group_norm_kernels::group_norm_nhwc");
    ADD_FAILURE() << "an error was ignored";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    for (const char* part : {"group_norm_kernels::group_norm_nhwc", "no kernel image is available",
                             "DIFFSEARCH_NORM_KERNELS=0", "DIFFSEARCH_TOME_KERNELS=0",
                             "CMAKE_CUDA_ARCHITECTURES"}) {
      EXPECT_NE(what.find(part), std::string::npos) << part << " missing from: " << what;
    }
  }
}

}  // namespace
}  // namespace diffsearch::engine
