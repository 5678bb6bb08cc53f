// Tests of the PNG writer: checksums against their published check values,
// and a reader of the written file (chunks, CRCs, stored blocks) that must
// give back the pixels.
#include "io/png.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "io/error.h"

namespace diffsearch::io {
namespace {

std::uint32_t get_u32(const std::uint8_t* p) {
  return (std::uint32_t(p[0]) << 24) | (std::uint32_t(p[1]) << 16) | (std::uint32_t(p[2]) << 8) |
         std::uint32_t(p[3]);
}

struct Decoded {
  std::uint32_t width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  std::vector<std::uint8_t> raw;  // scanlines with their filter bytes
  std::vector<std::string> chunks;
};

// Reads what encode_png writes; fails the test on any inconsistency.
Decoded decode(const std::vector<std::uint8_t>& png) {
  Decoded d;
  const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  EXPECT_EQ(std::memcmp(png.data(), sig, 8), 0);
  std::vector<std::uint8_t> z;
  std::size_t pos = 8;
  while (pos + 12 <= png.size()) {
    const std::uint32_t len = get_u32(&png[pos]);
    const std::string type(reinterpret_cast<const char*>(&png[pos + 4]), 4);
    d.chunks.push_back(type);
    EXPECT_EQ(crc32(&png[pos + 4], len + 4), get_u32(&png[pos + 8 + len])) << type;
    const std::uint8_t* data = &png[pos + 8];
    if (type == "IHDR") {
      d.width = get_u32(data);
      d.height = get_u32(data + 4);
      d.bit_depth = data[8];
      d.color_type = data[9];
    } else if (type == "IDAT") {
      z.insert(z.end(), data, data + len);
    }
    pos += 12 + len;
  }
  EXPECT_EQ(pos, png.size());
  EXPECT_EQ((z[0] * 256 + z[1]) % 31, 0);  // zlib header check bits
  std::size_t p = 2;
  bool final = false;
  while (!final) {
    final = z[p] & 1;
    EXPECT_EQ((z[p] >> 1) & 3, 0);  // stored
    const std::size_t n = z[p + 1] | (z[p + 2] << 8);
    const std::size_t nn = z[p + 3] | (z[p + 4] << 8);
    EXPECT_EQ(n ^ 0xFFFF, nn);
    d.raw.insert(d.raw.end(), z.begin() + p + 5, z.begin() + p + 5 + n);
    p += 5 + n;
  }
  EXPECT_EQ(adler32(d.raw.data(), d.raw.size()), get_u32(&z[p]));
  EXPECT_EQ(p + 4, z.size());
  return d;
}

TEST(Png, ChecksumsMatchTheirCheckValues) {
  const char* digits = "123456789";
  EXPECT_EQ(crc32(reinterpret_cast<const std::uint8_t*>(digits), 9), 0xCBF43926u);
  const char* wiki = "Wikipedia";
  EXPECT_EQ(adler32(reinterpret_cast<const std::uint8_t*>(wiki), 9), 0x11E60398u);
}

TEST(Png, RoundTripsSmallRgb) {
  const int h = 3, w = 5;
  std::vector<std::uint8_t> px(h * w * 3);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>(i * 17);
  Decoded d = decode(encode_png(px.data(), h, w, 3));
  EXPECT_EQ(d.chunks, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  EXPECT_EQ(d.width, 5u);
  EXPECT_EQ(d.height, 3u);
  EXPECT_EQ(d.bit_depth, 8);
  EXPECT_EQ(d.color_type, 2);
  ASSERT_EQ(d.raw.size(), std::size_t(h * (w * 3 + 1)));
  for (int y = 0; y < h; ++y) {
    EXPECT_EQ(d.raw[y * (w * 3 + 1)], 0);
    EXPECT_EQ(std::memcmp(&d.raw[y * (w * 3 + 1) + 1], &px[y * w * 3], w * 3), 0);
  }
}

TEST(Png, LargeImagesSpanSeveralBlocks) {
  const int h = 200, w = 160;  // 96 KB of RGBA: two stored blocks
  std::vector<std::uint8_t> px(h * w * 4);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = static_cast<std::uint8_t>((i * 7) ^ (i >> 9));
  Decoded d = decode(encode_png(px.data(), h, w, 4));
  EXPECT_EQ(d.color_type, 6);
  ASSERT_EQ(d.raw.size(), std::size_t(h * (w * 4 + 1)));
  EXPECT_EQ(std::memcmp(&d.raw[(h - 1) * (w * 4 + 1) + 1], &px[(h - 1) * w * 4], w * 4), 0);
  EXPECT_EQ(decode(encode_png(px.data(), h, w, 1)).color_type, 0);
}

TEST(Png, WritesFilesAndNamesUnwritablePaths) {
  const std::string dir = ::testing::TempDir() + "/png_test";
  std::filesystem::create_directories(dir);
  std::vector<std::uint8_t> px(4 * 4 * 3, 200);
  write_png(dir + "/a.png", px.data(), 4, 4, 3);
  std::ifstream in(dir + "/a.png", std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(bytes, encode_png(px.data(), 4, 4, 3));
  EXPECT_FALSE(std::filesystem::exists(dir + "/a.png.tmp"));
  try {
    write_png(dir + "/no/such/dir/b.png", px.data(), 4, 4, 3);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("no/such/dir/b.png"), std::string::npos);
  }
}

}  // namespace
}  // namespace diffsearch::io
