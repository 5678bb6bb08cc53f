// safetensors reader: round trips through the writer, the fixtures' files, and
// every kind of damage a file can have (each an InputError, never a crash).
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/error.h"

namespace fs = std::filesystem;
using diffsearch::InputError;
using namespace diffsearch::io;

namespace {

fs::path temp_dir() {
  fs::path dir = fs::temp_directory_path() /
                 ("diffsearch_safetensors_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return dir;
}

std::vector<std::uint8_t> floats(std::initializer_list<float> values) {
  std::vector<std::uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.begin(), bytes.size());
  return bytes;
}

void write_raw(const fs::path& path, const std::string& header, std::size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  std::uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  out << std::string(data_bytes, '\0');
}

std::string message_of(const fs::path& path) {
  try {
    SafetensorsFile::open(path.string());
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripKeepsNamesShapesAndBytes) {
  const fs::path path = temp_dir() / "roundtrip.safetensors";
  write_safetensors(path.string(),
                    {{"b", DType::F32, {2, 2}, floats({1, 2, 3, 4})},
                     {"a", DType::U8, {3}, {7, 8, 9}}},
                    {{"format", "pt"}});
  auto file = SafetensorsFile::open(path.string());
  EXPECT_EQ(file->names(), (std::vector<std::string>{"a", "b"}));
  const TensorView& b = file->tensor("b");
  EXPECT_EQ(b.dtype, DType::F32);
  EXPECT_EQ(b.shape, (std::vector<int64_t>{2, 2}));
  float values[4];
  std::memcpy(values, b.data, 16);
  EXPECT_EQ(values[3], 4.0f);
  EXPECT_EQ(file->tensor("a").data[2], 9);
  EXPECT_EQ(file->metadata().at("format"), "pt");
  EXPECT_FALSE(file->contains("c"));
  EXPECT_THROW(file->tensor("c"), InputError);
}

TEST(Safetensors, ReadsFixtureModelWeights) {
  auto file = SafetensorsFile::open(std::string(DIFFSEARCH_TEST_DATA) +
                                    "/fixtures/models/tiny-sd15/unet/diffusion_pytorch_model.safetensors");
  ASSERT_TRUE(file->contains("conv_in.weight"));
  EXPECT_EQ(file->tensor("conv_in.weight").dtype, DType::F16);
  EXPECT_EQ(file->tensor("conv_in.weight").shape.size(), 4u);
}

TEST(Safetensors, TruncatedFileIsRejected) {
  const fs::path good = temp_dir() / "good.safetensors";
  write_safetensors(good.string(), {{"x", DType::F32, {4}, floats({1, 2, 3, 4})}});
  const fs::path cut = temp_dir() / "cut.safetensors";
  fs::copy_file(good, cut, fs::copy_options::overwrite_existing);
  fs::resize_file(cut, fs::file_size(good) - 5);
  const std::string msg = message_of(cut);
  EXPECT_NE(msg.find("cut.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'x'"), std::string::npos) << msg;
  fs::resize_file(cut, 4);
  EXPECT_NE(message_of(cut).find("shorter than the 8-byte header"), std::string::npos);
}

TEST(Safetensors, HeaderLongerThanFileIsRejected) {
  const fs::path path = temp_dir() / "long_header.safetensors";
  std::ofstream out(path, std::ios::binary);
  std::uint64_t n = 1u << 30;
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << "{}";
  out.close();
  EXPECT_NE(message_of(path).find("header length"), std::string::npos);
}

TEST(Safetensors, ByteRangeMustMatchShape) {
  const fs::path path = temp_dir() / "range.safetensors";
  write_raw(path, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20);
  const std::string msg = message_of(path);
  EXPECT_NE(msg.find("'w' has 20 bytes but its shape and dtype need 24"), std::string::npos) << msg;
}

TEST(Safetensors, OffsetsOutsideDataAndOverlapsAreRejected) {
  const fs::path outside = temp_dir() / "outside.safetensors";
  write_raw(outside, R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 8);
  EXPECT_NE(message_of(outside).find("data section has 8 bytes"), std::string::npos);
  const fs::path overlap = temp_dir() / "overlap.safetensors";
  write_raw(overlap,
            R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
            8);
  EXPECT_NE(message_of(overlap).find("overlap"), std::string::npos);
}

TEST(Safetensors, GarbageAndUnknownDtypesAreRejected) {
  const fs::path garbage = temp_dir() / "garbage.safetensors";
  write_raw(garbage, "this is not json", 0);
  EXPECT_NE(message_of(garbage).find("not JSON"), std::string::npos);
  const fs::path dtype = temp_dir() / "dtype.safetensors";
  write_raw(dtype, R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_NE(message_of(dtype).find("F8_E4M3"), std::string::npos);
  const fs::path negative = temp_dir() / "negative.safetensors";
  write_raw(negative, R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1);
  EXPECT_NE(message_of(negative).find("negative"), std::string::npos);
  EXPECT_NE(message_of(temp_dir() / "missing.safetensors").find("cannot open"), std::string::npos);
}
