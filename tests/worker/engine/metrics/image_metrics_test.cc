// PSNR and SSIM against the values scikit-image 0.19 gave for the fixtures'
// three images.
#include "worker/engine/metrics/image_metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "io/error.h"
#include "io/safetensors.h"

using namespace diffsearch;

namespace {
struct MetricsFixture {
  std::shared_ptr<io::SafetensorsFile> file =
      io::SafetensorsFile::open(std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/reference/metrics.safetensors");
  engine::ImageView image(const std::string& name) const {
    const auto& t = file->tensor(name);
    return {t.data, static_cast<int>(t.shape[0]), static_cast<int>(t.shape[1]), static_cast<int>(t.shape[2])};
  }
  double value(const std::string& name) const {
    double v;
    std::memcpy(&v, file->tensor(name).data, 8);
    return v;
  }
};
}  // namespace

TEST(ImageMetrics, PsnrMatchesScikitImage) {
  MetricsFixture f;
  EXPECT_NEAR(engine::psnr(f.image("a"), f.image("b")), f.value("psnr.a.b"), 1e-9);
  EXPECT_NEAR(engine::psnr(f.image("a"), f.image("c")), f.value("psnr.a.c"), 1e-9);
  EXPECT_TRUE(std::isinf(engine::psnr(f.image("a"), f.image("a"))));
}

TEST(ImageMetrics, SsimMatchesScikitImage) {
  MetricsFixture f;
  EXPECT_NEAR(engine::ssim(f.image("a"), f.image("b")), f.value("ssim.a.b"), 1e-9);
  EXPECT_NEAR(engine::ssim(f.image("a"), f.image("c")), f.value("ssim.a.c"), 1e-9);
  EXPECT_NEAR(engine::ssim(f.image("a"), f.image("a")), 1.0, 1e-12);
}

TEST(ImageMetrics, ShapeMismatchAndTinyImagesAreRejected) {
  std::vector<std::uint8_t> small(8 * 8 * 3, 0), big(16 * 16 * 3, 0);
  engine::ImageView s{small.data(), 8, 8, 3}, b{big.data(), 16, 16, 3};
  EXPECT_THROW(engine::psnr(s, b), InputError);
  EXPECT_THROW(engine::ssim(s, s), InputError);
}
