// VaeDecoder against the fixtures' vae.out (AutoencoderKL.decode of vae.in.latents)
// and image.ddim.20 (the pipeline's decode of sample.ddim.20, scaling included)
// for the three tiny models, its MAC count, and the VAE folders it must refuse.
#include "worker/engine/models/vae.h"

#include <gtest/gtest.h>

#include <iostream>

#include <filesystem>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "io/error.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "tests/support/test_support.h"
#include "worker/engine/core/nn.h"

namespace fs = std::filesystem;
using namespace diffsearch;
using namespace diffsearch::engine;
using diffsearch::engine::testing::model_dir;
using diffsearch::engine::testing::reference_tensor;
using diffsearch::engine::testing::rel_err;
using diffsearch::testing::expect_contains;

namespace {

std::unique_ptr<VaeDecoder> load_vae(const std::string& model, at::ScalarType dtype) {
  RunOptions options;
  options.dtype = dtype;
  return VaeDecoder::load(io::DiffusersFolder(model_dir(model)), options);
}

class VaeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(VaeFixture, MatchesReferenceFloat64) {
  const std::string model = GetParam();
  auto vae = load_vae(model, at::kDouble);
  at::Tensor out = vae->decode_raw(reference_tensor(model, "vae.in.latents"));
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  at::Tensor ref = reference_tensor(model, "vae.out");
  ASSERT_EQ(out.sizes(), ref.sizes());
  const double err = rel_err(out, ref);
  std::cout << model << " float64 vae.out relative error " << err << "\n";
  EXPECT_LT(err, 1e-6);
}

TEST_P(VaeFixture, MatchesReferenceFloat32) {
  const std::string model = GetParam();
  auto vae = load_vae(model, at::kFloat);
  at::Tensor out = vae->decode_raw(reference_tensor(model, "vae.in.latents"));
  EXPECT_EQ(out.scalar_type(), at::kFloat);
  const double err = rel_err(out, reference_tensor(model, "vae.out"));
  std::cout << model << " float32 vae.out relative error " << err << "\n";
  EXPECT_LT(err, 1e-4);
}

// The VAE decoder on CUDA in `dtype` against the float64 reference: its
// relative error.
double cuda_error(const std::string& model, at::ScalarType dtype) {
  RunOptions options;
  options.dtype = dtype;
  options.device = c10::Device(c10::kCUDA, 0);
  auto vae = VaeDecoder::load(io::DiffusersFolder(model_dir(model)), options);
  at::Tensor out = vae->decode_raw(reference_tensor(model, "vae.in.latents"));
  EXPECT_TRUE(out.is_cuda());
  EXPECT_TRUE(out.is_contiguous()) << "NCHW out whatever the layout inside";
  const double err = rel_err(out, reference_tensor(model, "vae.out"));
  std::cout << model << " cuda " << c10::toString(dtype) << " vae.out relative error " << err << "\n";
  return err;
}

// NHWC activations and the engine's GroupNorm on CUDA, in float64.
TEST_P(VaeFixture, MatchesReferenceCudaFloat64) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "libtorch has no CUDA device";
  EXPECT_LT(cuda_error(GetParam(), at::kDouble), 1e-6);
}

// The GPU twin: fp16 on CUDA against the float64 reference.
TEST_P(VaeFixture, MatchesReferenceCudaFloat16) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "libtorch has no CUDA device";
  EXPECT_LT(cuda_error(GetParam(), at::kHalf), 1e-2);
}

// decode() divides by the scaling factor first, as the pipelines do.
TEST_P(VaeFixture, DecodesSampledLatentsLikeThePipeline) {
  const std::string model = GetParam();
  auto vae = load_vae(model, at::kDouble);
  at::Tensor out = vae->decode(reference_tensor(model, "sample.ddim.20"));
  EXPECT_LT(rel_err(out, reference_tensor(model, "image.ddim.20")), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(TinyModels, VaeFixture,
                         ::testing::Values("tiny-sd15", "tiny-sd21", "tiny-sdxl"),
                         [](const auto& info) { return info.param.substr(5); });

TEST(Vae, ScalingFactorFromConfig) {
  EXPECT_DOUBLE_EQ(load_vae("tiny-sd15", at::kFloat)->scaling_factor(), 0.18215);
  EXPECT_DOUBLE_EQ(load_vae("tiny-sdxl", at::kFloat)->scaling_factor(), 0.13025);
}

// Every conv weight runs over at least the 16x16 latent and at most the
// 128x128 image per sample; the one attention adds 2 * N^2 * C.
TEST(Vae, CountsMultiplyAccumulates) {
  auto vae = load_vae("tiny-sd15", at::kFloat);
  macs::reset();
  vae->decode(torch::randn({1, 4, 16, 16}));
  const int64_t macs = macs::total();
  auto file = io::SafetensorsFile::open(model_dir("tiny-sd15") +
                                        "/vae/diffusion_pytorch_model.safetensors");
  int64_t params = 0;
  for (const auto& name : file->names()) {
    const auto& view = file->tensor(name);
    if (name.rfind("decoder.", 0) == 0 && view.shape.size() >= 2) params += view.numel();
  }
  EXPECT_GT(macs, params * 16 * 16);
  EXPECT_LT(macs, params * 128 * 128 + 2 * 256 * 256 * 32);
}

fs::path copy_vae(const std::string& name) {
  fs::path dir = fs::temp_directory_path() /
                 ("diffsearch_vae_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "vae");
  const std::string src = model_dir("tiny-sd15");
  fs::copy_file(src + "/model_index.json", dir / "model_index.json");
  fs::copy_file(src + "/vae/config.json", dir / "vae" / "config.json");
  fs::copy_file(src + "/vae/diffusion_pytorch_model.safetensors",
                dir / "vae" / "diffusion_pytorch_model.safetensors");
  return dir;
}

void rewrite_config(const fs::path& dir, const std::function<void(nlohmann::json&)>& edit) {
  const fs::path path = dir / "vae" / "config.json";
  nlohmann::json j = io::read_json_file(path.string());
  edit(j);
  std::ofstream(path) << j.dump(2);
}

std::string load_error(const fs::path& dir) {
  try {
    VaeDecoder::load(io::DiffusersFolder(dir.string()), RunOptions{});
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(VaeBadInput, ConfigWithoutScalingFactor) {
  fs::path dir = copy_vae("no_scaling");
  rewrite_config(dir, [](nlohmann::json& j) { j.erase("scaling_factor"); });
  expect_contains(load_error(dir), {"vae/config.json", "'scaling_factor'", "missing"});
}

TEST(VaeBadInput, UnknownBlockType) {
  fs::path dir = copy_vae("unknown_block");
  rewrite_config(dir, [](nlohmann::json& j) { j["up_block_types"][2] = "AttnUpDecoderBlock2D"; });
  expect_contains(load_error(dir), {"vae/config.json", "'up_block_types'", "AttnUpDecoderBlock2D"});
}

TEST(VaeBadInput, WeightOfTheWrongShapeOrMissing) {
  fs::path dir = copy_vae("bad_weights");
  const std::string path = (dir / "vae" / "diffusion_pytorch_model.safetensors").string();
  std::vector<io::TensorData> tensors;
  {
    auto file = io::SafetensorsFile::open(path);
    for (const auto& name : file->names()) {
      const auto& v = file->tensor(name);
      if (name == "decoder.up_blocks.1.upsamplers.0.conv.bias") continue;  // dropped
      io::TensorData t{name, v.dtype, v.shape, std::vector<std::uint8_t>(v.data, v.data + v.nbytes)};
      if (name == "decoder.mid_block.attentions.0.to_q.weight") t.shape = {16, 64};
      tensors.push_back(std::move(t));
    }
  }
  io::write_safetensors(path, tensors);
  expect_contains(load_error(dir), {"decoder.mid_block.attentions.0.to_q.weight", "[16, 64]",
                                    "[32, 32]"});
  // With the shape repaired, the missing bias is the next error.
  for (auto& t : tensors) {
    if (t.name == "decoder.mid_block.attentions.0.to_q.weight") t.shape = {32, 32};
  }
  io::write_safetensors(path, tensors);
  expect_contains(load_error(dir), {"decoder.up_blocks.1.upsamplers.0.conv.bias"});
}

TEST(VaeBadInput, WrongLatentChannels) {
  auto vae = load_vae("tiny-sd15", at::kFloat);
  EXPECT_THROW(vae->decode(torch::zeros({1, 3, 16, 16})), InputError);
}

}  // namespace
