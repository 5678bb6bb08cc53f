// CUDA twins of the fixture checks (skipped where libtorch or the machine has
// no GPU): fp16 and bf16 single forwards of the text encoder within 1e-2 of
// diffusers' float64, and every whole fp16 run reported with its error. The
// errors are appended to $DIFFSEARCH_CUDA_REPORT when set (docs/engine-gpu.md).
#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "tests/support/engine/pipeline_fixtures.h"
#include "worker/engine/clip/clip_text.h"
#include "worker/engine/core/device.h"
#include "worker/engine/pipeline/pipeline.h"

namespace diffsearch::engine {
namespace {

using testing::fixture_request;
using testing::reference_ids;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

void report(const std::string& line) {
  if (const char* path = std::getenv("DIFFSEARCH_CUDA_REPORT")) {
    std::ofstream(path, std::ios::app) << line << "\n";
  }
}

const char* kModels[] = {"tiny-sd15", "tiny-sd21", "tiny-sdxl"};

TEST(CudaFp16, TextEncoderForwardWithin1e2) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  for (const char* model : kModels) {
    const auto ref = reference_json(model);
    io::DiffusersFolder folder(testing::model_dir(model));
    for (auto dtype : {c10::kHalf, c10::kBFloat16}) {
      auto encoder = ClipTextEncoder::load(folder, "text_encoder", {dtype, c10::Device(c10::kCUDA, 0)});
      torch::NoGradGuard no_grad;
      auto out = encoder.forward(reference_ids(ref, ref.at("prompt").get<std::string>(), 0).to(c10::Device(c10::kCUDA, 0)));
      const double err = rel_err(out.last_hidden_state, reference_tensor(model, "text_encoder.last_hidden_state"));
      report(std::string(model) + " text_encoder " + c10::toString(dtype) + " rel_err " + std::to_string(err));
      EXPECT_LT(err, dtype == c10::kHalf ? 1e-2 : 2e-2) << model;
    }
  }
}

TEST(CudaFp16, WholeRunsAreReportedWithTheirError) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  for (const char* model : kModels) {
    const auto ref = reference_json(model);
    auto pipeline = Pipeline::load(testing::model_dir(model), {c10::kHalf, c10::Device(c10::kCUDA, 0)});
    for (const auto& [name, c] : ref.at("cases").items()) {
      if (name.rfind("sample.", 0) != 0) continue;
      torch::NoGradGuard no_grad;
      SampleResult result = pipeline->sample(fixture_request(ref, c));
      ASSERT_EQ(result.latents.scalar_type(), c10::kHalf);
      const double err = rel_err(result.latents, reference_tensor(model, name));
      report(std::string(model) + " " + name + " float16 rel_err " + std::to_string(err));
      EXPECT_TRUE(std::isfinite(err));
      // Whole fp16 runs drift with the step count; this bound only catches
      // algorithmic differences, the numbers themselves go to the report.
      EXPECT_LT(err, 0.1) << model << " " << name;
    }
  }
}

}  // namespace
}  // namespace diffsearch::engine
