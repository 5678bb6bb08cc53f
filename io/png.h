// PNG writing for 8-bit images (gray, gray+alpha, RGB, RGBA), self-contained:
// stored deflate blocks, so no zlib. Torch-free: takes interleaved bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace diffsearch::io {

// The PNG file of an image given row by row, top to bottom, each pixel's
// `channels` bytes together (HWC). channels: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
std::vector<std::uint8_t> encode_png(const std::uint8_t* pixels, int64_t height, int64_t width,
                                     int channels);

// Writes encode_png's bytes atomically (temporary file, then rename). Throws
// InputError naming the path when it cannot be written.
void write_png(const std::string& path, const std::uint8_t* pixels, int64_t height, int64_t width,
               int channels);

// CRC-32 (ISO 3309, as PNG chunks use) and Adler-32 (zlib's checksum).
std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);
std::uint32_t adler32(const std::uint8_t* data, std::size_t size, std::uint32_t adler = 1);

}  // namespace diffsearch::io
