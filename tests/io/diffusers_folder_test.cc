// Diffusers folders: components, configs, weights (single, .fp16 variant,
// sharded) and the errors for folders that are not what they should be.
#include "io/diffusers_folder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace fs = std::filesystem;
using diffsearch::InputError;
using namespace diffsearch::io;

namespace {
const std::string kModels = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models";

fs::path fresh_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("diffsearch_folder_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}
}  // namespace

TEST(DiffusersFolder, ReadsFixtureComponents) {
  DiffusersFolder folder(kModels + "/tiny-sdxl");
  EXPECT_TRUE(folder.has_component("text_encoder_2"));
  EXPECT_FALSE(folder.has_component("safety_checker"));
  EXPECT_EQ(folder.component_config("unet")["addition_embed_type"], "text_time");
  EXPECT_TRUE(folder.component_config("scheduler").contains("timestep_spacing"));
  WeightSet unet = folder.component_weights("unet");
  EXPECT_TRUE(unet.contains("conv_in.weight"));
  EXPECT_THROW(unet.tensor("no.such.weight"), InputError);
}

TEST(DiffusersFolder, MissingFolderAndIndexAreClearErrors) {
  try {
    DiffusersFolder folder("/nonexistent/model");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model: model folder not found"), std::string::npos);
  }
  fs::path empty = fresh_dir("empty");
  try {
    DiffusersFolder folder(empty.string());
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("model_index.json: missing"), std::string::npos);
  }
  write_text(empty / "model_index.json", "{not json");
  EXPECT_THROW(DiffusersFolder(empty.string()), InputError);
}

TEST(DiffusersFolder, FindsFp16VariantAndShards) {
  fs::path dir = fresh_dir("variants");
  write_text(dir / "model_index.json", R"({"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})");
  const fs::path unet_src = fs::path(kModels) / "tiny-sd15/unet/diffusion_pytorch_model.safetensors";
  fs::create_directories(dir / "unet");
  fs::copy_file(unet_src, dir / "unet/diffusion_pytorch_model.fp16.safetensors");
  DiffusersFolder folder(dir.string());
  EXPECT_TRUE(folder.component_weights("unet").contains("conv_in.weight"));
  EXPECT_NE(folder.component_weights("unet").description().find(".fp16.safetensors"), std::string::npos);

  fs::create_directories(dir / "vae");
  fs::copy_file(unet_src, dir / "vae/part-1.safetensors");
  write_text(dir / "vae/diffusion_pytorch_model.safetensors.index.json",
             R"({"weight_map": {"conv_in.weight": "part-1.safetensors"}})");
  EXPECT_TRUE(folder.component_weights("vae").contains("conv_in.weight"));

  write_text(dir / "model_index.json", R"({"text_encoder": ["transformers", "CLIPTextModel"]})");
  fs::create_directories(dir / "text_encoder");
  DiffusersFolder again(dir.string());
  try {
    again.component_weights("text_encoder");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no safetensors weights found"), std::string::npos);
  }
}

TEST(JsonFile, PythonConstantsBecomeStrings) {
  fs::path dir = fresh_dir("python_json");
  write_text(dir / "scheduler_config.json",
             R"({"lambda_min_clipped": -Infinity, "a": NaN, "b": Infinity, "text": "-Infinity NaN \" x"})");
  nlohmann::json j = read_json_file((dir / "scheduler_config.json").string());
  EXPECT_EQ(j["lambda_min_clipped"], "-Infinity");
  EXPECT_EQ(j["a"], "NaN");
  EXPECT_EQ(j["b"], "Infinity");
  EXPECT_EQ(j["text"], "-Infinity NaN \" x");
  write_text(dir / "broken.json", "{\"a\": ");
  try {
    read_json_file((dir / "broken.json").string(), "search space");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("search space file is not valid JSON"), std::string::npos);
  }
}

TEST(DiffusersFolder, NativeResolutionIsTheUnetSampleSizeTimesTheVaeScale) {
  // The tiny fixtures: sample_size 16, four VAE blocks (scale 8).
  EXPECT_EQ(DiffusersFolder(kModels + "/tiny-sd15").native_resolution(), 128);
  EXPECT_EQ(DiffusersFolder(kModels + "/tiny-sdxl").native_resolution(), 128);
  // stable-diffusion-2-1-base's shape: 64 latents, 512 px; [h, w] lists too.
  const fs::path dir = fresh_dir("native");
  write_text(dir / "model_index.json", R"({"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})");
  write_text(dir / "vae/config.json", R"({"block_out_channels": [128, 256, 512, 512]})");
  write_text(dir / "unet/config.json", R"({"sample_size": 64})");
  EXPECT_EQ(DiffusersFolder(dir.string()).native_resolution(), 512);
  write_text(dir / "unet/config.json", R"({"sample_size": [96, 96]})");
  EXPECT_EQ(DiffusersFolder(dir.string()).native_resolution(), 768);
  write_text(dir / "unet/config.json", R"({"sample_size": "big"})");
  try {
    DiffusersFolder(dir.string()).native_resolution();
    FAIL() << "a string sample_size was accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("unet/config.json"), std::string::npos) << what;
    EXPECT_NE(what.find("sample_size"), std::string::npos) << what;
    EXPECT_NE(what.find("--resolution"), std::string::npos) << what;
  }
  write_text(dir / "unet/config.json", R"({"sample_size": 64})");
  write_text(dir / "vae/config.json", R"({"latent_channels": 4})");
  EXPECT_THROW(DiffusersFolder(dir.string()).native_resolution(), InputError);
}
