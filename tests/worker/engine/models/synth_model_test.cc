// synth-model: the folders it writes hold exactly the weights (names and
// shapes) that diffusers' save_pretrained writes for the same configs, and
// bad options are refused.
#include "worker/engine/models/synth_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "io/diffusers_folder.h"
#include "io/error.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;
using namespace diffsearch;

namespace {

std::map<std::string, std::vector<int64_t>> shapes(const fs::path& file) {
  std::map<std::string, std::vector<int64_t>> out;
  auto f = io::SafetensorsFile::open(file.string());
  for (const auto& name : f->names()) out[name] = f->tensor(name).shape;
  return out;
}

fs::path fresh(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("diffsearch_synth_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  return dir;
}

}  // namespace

class SynthModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SynthModelTest, WritesTheWeightsDiffusersWritesForTheTinyConfigs) {
  const std::string like = GetParam();
  const fs::path out = fresh(like);
  engine::SynthModelOptions options;
  options.like = like;
  options.dtype = "fp16";
  options.data_dir = std::string(DIFFSEARCH_SOURCE_DIR) + "/data";
  engine::synth_model_write(options, out.string());
  const fs::path fixture = fs::path(DIFFSEARCH_TEST_DATA) / "fixtures/models" / ("tiny-" + like);
  int compared = 0;
  for (const auto& entry : fs::recursive_directory_iterator(fixture)) {
    if (entry.path().extension() != ".safetensors") continue;
    const fs::path relative = fs::relative(entry.path(), fixture);
    ASSERT_TRUE(fs::exists(out / relative)) << relative;
    EXPECT_EQ(shapes(entry.path()), shapes(out / relative)) << relative;
    EXPECT_EQ(io::SafetensorsFile::open((out / relative).string())->tensor(
                  shapes(entry.path()).begin()->first).dtype, io::DType::F16);
    ++compared;
  }
  EXPECT_GE(compared, 3);
  io::DiffusersFolder folder(out.string());
  EXPECT_TRUE(folder.has_component("tokenizer"));
  EXPECT_EQ(folder.component_config("unet"), io::DiffusersFolder(fixture.string()).component_config("unet"));
}

INSTANTIATE_TEST_SUITE_P(Models, SynthModelTest, ::testing::Values("sd15", "sd21", "sdxl"));

TEST(SynthModel, RefusesBadOptionsAndNonEmptyFolders) {
  engine::SynthModelOptions options;
  options.data_dir = std::string(DIFFSEARCH_SOURCE_DIR) + "/data";
  options.like = "sd9";
  EXPECT_THROW(engine::synth_model_write(options, fresh("bad").string()), InputError);
  options.like = "sd15";
  options.dtype = "int8";
  EXPECT_THROW(engine::synth_model_write(options, fresh("bad2").string()), InputError);
  options.dtype = "fp32";
  const fs::path taken = fresh("taken");
  fs::create_directories(taken);
  { std::ofstream(taken / "something") << "x"; }
  EXPECT_THROW(engine::synth_model_write(options, taken.string()), InputError);
}

TEST(SynthModel, SameSeedSameWeightsOtherSeedOtherWeights) {
  engine::SynthModelOptions options;
  options.data_dir = std::string(DIFFSEARCH_SOURCE_DIR) + "/data";
  const fs::path s1 = fresh("s1"), s2 = fresh("s2"), s3 = fresh("s3");
  engine::synth_model_write(options, s1.string());
  engine::synth_model_write(options, s2.string());
  options.seed = 7;
  engine::synth_model_write(options, s3.string());
  auto bytes = [](const fs::path& dir) {
    auto f = io::SafetensorsFile::open((dir / "unet/diffusion_pytorch_model.safetensors").string());
    const auto& t = f->tensor("conv_in.weight");
    return std::vector<std::uint8_t>(t.data, t.data + t.nbytes);
  };
  EXPECT_EQ(bytes(s1), bytes(s2));
  EXPECT_NE(bytes(s1), bytes(s3));
}
