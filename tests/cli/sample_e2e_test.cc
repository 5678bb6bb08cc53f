// Runs `diffsearch sample` as a user does: a float64 run on tiny-sd15 that
// must reproduce diffusers' final latents, the PNG it writes, and the bad
// inputs that must end with exit code 2 and one line naming the problem.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "tests/support/test_support.h"

namespace {

using diffsearch::testing::count_lines;
using Result = diffsearch::testing::CommandResult;

// stdout and stderr together.
Result run(const std::string& args) {
  return diffsearch::testing::run_command(std::string("\"") + DIFFSEARCH_BIN + "\" " + args + " 2>&1");
}

std::string fixtures() { return std::string(DIFFSEARCH_TEST_DATA) + "/fixtures"; }
std::string sd15() { return fixtures() + "/models/tiny-sd15"; }
const char* kPrompt = "\"a photo of an astronaut riding a horse on mars\"";

std::vector<double> f64_values(const diffsearch::io::TensorView& v) {
  EXPECT_EQ(v.dtype, diffsearch::io::DType::F64);
  std::vector<double> out(v.numel());
  std::memcpy(out.data(), v.data, v.nbytes);
  return out;
}

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / den);
}

std::uint32_t get_u32(const unsigned char* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

TEST(SampleCli, Float64DdimReproducesDiffusersAndWritesPng) {
  const std::string dir = diffsearch::testing::fresh_test_dir("sample_e2e").string();
  const std::string latents = dir + "/ddim20.safetensors";
  const std::string image = dir + "/ddim20.png";
  const Result r = run("sample --model " + sd15() + " --prompt " + kPrompt +
                       " --sampler ddim --steps 20 --seed 0 --dtype float64 --save-latents " +
                       latents + " -o " + image);
  ASSERT_EQ(r.code, 0) << r.out;
  auto mine = diffsearch::io::SafetensorsFile::open(latents);
  auto ref = diffsearch::io::SafetensorsFile::open(fixtures() + "/reference/tiny-sd15.safetensors");
  const auto& v = mine->tensor("latents");
  EXPECT_EQ(v.shape, (std::vector<int64_t>{1, 4, 16, 16}));
  EXPECT_LT(rel_err(f64_values(v), f64_values(ref->tensor("sample.ddim.20"))), 1e-4);

  std::ifstream in(image, std::ios::binary);
  std::vector<unsigned char> png((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(png.size(), 33u);
  const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  EXPECT_EQ(std::memcmp(png.data(), sig, 8), 0);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&png[12]), 4), "IHDR");
  EXPECT_EQ(get_u32(&png[16]), 128u);  // width: the UNet's sample_size 16 * 8
  EXPECT_EQ(get_u32(&png[20]), 128u);  // height
  EXPECT_EQ(png[24], 8);               // bit depth
  EXPECT_EQ(png[25], 2);               // RGB
}

// Starting from saved latents gives the seeded run back; other samplers and
// an explicit size run too.
TEST(SampleCli, LatentsFileReplacesTheSeed) {
  const std::string dir = diffsearch::testing::fresh_test_dir("sample_e2e").string();
  const std::string init = fixtures() + "/reference/init-latents.safetensors";
  const std::string out = dir + "/unipc10.safetensors";
  const Result r = run("sample --model " + sd15() + " --prompt " + kPrompt +
                       " --sampler unipc --steps 10 --latents " + init +
                       " --height 128 --width 128 --dtype float64 --save-latents " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  auto mine = diffsearch::io::SafetensorsFile::open(out);
  auto ref = diffsearch::io::SafetensorsFile::open(fixtures() + "/reference/tiny-sd15.safetensors");
  EXPECT_LT(rel_err(f64_values(mine->tensor("latents")), f64_values(ref->tensor("sample.unipc.10"))),
            1e-4);
}

// SDXL without a negative prompt conditions on zeros, so its image differs
// from the one with "" encoded; SD1.5 encodes "" either way.
TEST(SampleCli, NoNegativePromptZeroesSdxlOnly) {
  const std::string dir = diffsearch::testing::fresh_test_dir("sample_e2e").string();
  auto latents = [&](const std::string& model, const std::string& name, const std::string& extra) {
    const std::string out = dir + "/" + name + ".safetensors";
    const Result r = run("sample --model " + fixtures() + "/models/" + model + " --prompt " + kPrompt +
                         " --sampler ddim --steps 2 --height 64 --width 64 --dtype float64 --save-latents " +
                         out + extra);
    EXPECT_EQ(r.code, 0) << r.out;
    return f64_values(diffsearch::io::SafetensorsFile::open(out)->tensor("latents"));
  };
  EXPECT_GT(rel_err(latents("tiny-sdxl", "xl_none", " --no-negative-prompt"), latents("tiny-sdxl", "xl_empty", "")),
            1e-6);
  EXPECT_LT(rel_err(latents("tiny-sd15", "sd_none", " --no-negative-prompt"), latents("tiny-sd15", "sd_empty", "")),
            1e-12);
  EXPECT_EQ(run("sample --model " + sd15() + " --prompt x --sampler ddim --steps 2 --negative-prompt y "
                "--no-negative-prompt").code,
            2);
}

void expect_one_line_error(const std::string& args, const std::string& needle) {
  const Result r = run(args);
  EXPECT_EQ(r.code, 2) << args << "\n" << r.out;
  EXPECT_EQ(count_lines(r.out), 1u) << r.out;
  EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
}

TEST(SampleCli, BadInputsExitTwoWithOneLine) {
  const std::string base = std::string(" --prompt ") + kPrompt + " --sampler ddim --steps 2";
  expect_one_line_error("sample --model " + fixtures() + "/models/no-such-model" + base,
                        "no-such-model");
  expect_one_line_error("sample --model " + sd15() + base + " --height 100", "--height 100");
  expect_one_line_error("sample --model " + sd15() + base + " --accel deepcache:i3",
                        "deepcache:i3");
  expect_one_line_error("sample --model " + sd15() + base + " --dtype float16",
                        "float16");
  expect_one_line_error("sample --model " + sd15() + base + " --latents " + fixtures() +
                            "/reference/tiny-sd15.safetensors",
                        "'latents'");
  // CLI11 rejects an unknown sampler before the command runs.
  EXPECT_EQ(run("sample --model " + sd15() + " --prompt x --sampler euler --steps 2").code, 2);
}

}  // namespace
