// scripts/trace_summary.py on small hand-made profiler traces: kernels are
// attributed to the regions open when they were launched, nested regions
// include their children, UNet forwards are grouped by what ran in them,
// and what is not a trace is refused with the file's name.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;

using Result = diffsearch::testing::CommandResult;

// The script's stdout and stderr together.
Result summarize(const std::string& trace, const std::string& args = "") {
  return diffsearch::testing::run_command("python3 " DIFFSEARCH_SOURCE_DIR "/scripts/trace_summary.py " + trace + " " +
                                          args + " 2>&1");
}

class TraceSummary : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = diffsearch::testing::fresh_test_dir("trace_summary"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  fs::path dir_;
};

nlohmann::json region(const char* name, double ts, double dur) {
  return {{"ph", "X"}, {"cat", "user_annotation"}, {"name", name}, {"tid", 1}, {"ts", ts}, {"dur", dur}};
}
nlohmann::json launch(int correlation, double ts) {
  return {{"ph", "X"}, {"cat", "cuda_runtime"}, {"name", "cudaLaunchKernel"}, {"tid", 1},
          {"ts", ts}, {"dur", 1}, {"args", {{"correlation", correlation}}}};
}
nlohmann::json kernel(int correlation, const char* name, double dur) {
  return {{"ph", "X"}, {"cat", "kernel"}, {"name", name}, {"tid", 7}, {"ts", 1000 + correlation},
          {"dur", dur}, {"args", {{"correlation", correlation}}}};
}

TEST_F(TraceSummary, KernelsGoToTheRegionsOpenAtTheirLaunch) {
  const nlohmann::json trace = {
      {"traceEvents",
       {region("unet", 0, 100), region("down.0", 10, 50), region("resnet", 12, 30), launch(1, 15), launch(2, 60),
        launch(3, 200), kernel(1, "conv_kernel", 30), kernel(2, "add_kernel", 5), kernel(3, "copy_kernel", 7)}}};
  const Result r = summarize(write("t.json", trace.dump()), "--top resnet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("GPU time (kernels, copies, memsets): 0.042 ms; outside regions 0.007 ms"),
            std::string::npos) << r.out;
  // Inclusive: unet holds both of its kernels, resnet only the convolution.
  EXPECT_NE(r.out.find("unet/down.0/resnet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0.035     0.005"), std::string::npos) << "down.0: 35 us in all, 5 of its own: " << r.out;
  EXPECT_NE(r.out.find("1 x median      35.0 us  (1 resnets, 0 transformers)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kernels under 'resnet' (0.030 ms)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("add_kernel\n", r.out.find("kernels under 'resnet'")), std::string::npos)
      << "the add ran outside resnet: " << r.out;
}

TEST_F(TraceSummary, ClassesSplitTheTimeByKindOfKernel) {
  // A fused attention kernel is named after its GEMM template: it counts as
  // attention, not as a matrix product.
  nlohmann::json memset = kernel(5, "Memset (Device)", 2);
  memset["cat"] = "gpu_memset";
  const nlohmann::json trace = {
      {"traceEvents",
       {region("unet", 0, 100), launch(1, 10), launch(2, 20), launch(3, 30), launch(4, 40), launch(5, 50),
        kernel(1, "sm90_xmma_fprop_implicit_gemm_f16", 40), kernel(2, "nvjet_hsh_128x256_gemm", 30),
        kernel(3, "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16", 20),
        kernel(4, "group_scale_shift_kernel", 8), memset}}};
  const Result r = summarize(write("t.json", trace.dump()), "--classes --top unet");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("all GPU time by kind of kernel (0.100 ms)"), std::string::npos) << r.out;
  for (const char* line : {"convolution                  0.040 ms  40.0%", "matrix product               0.030 ms  30.0%",
                           "attention                    0.020 ms  20.0%", "normalisation                0.008 ms   8.0%",
                           "copy / memset                0.002 ms   2.0%"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
  EXPECT_NE(r.out.find("'unet' by kind of kernel (0.100 ms)"), std::string::npos) << r.out;
}

TEST_F(TraceSummary, WhatIsNotATraceIsRefusedByName) {
  for (const char* text : {"{not json", "{\"events\": []}"}) {
    const std::string path = write("bad.json", text);
    const Result r = summarize(path);
    EXPECT_NE(r.code, 0) << text;
    EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
  }
  const Result missing = summarize((dir_ / "missing.json").string());
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.out.find("missing.json"), std::string::npos) << missing.out;
}

}  // namespace
