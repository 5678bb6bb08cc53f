// Full-reference image quality of an accelerated image against its baseline:
// PSNR and SSIM on uint8 HWC images, as users save them (skimage 0.19 definitions).
#pragma once

#include <cstdint>

namespace diffsearch::engine {

// A borrowed uint8 image, rows of width * channels bytes.
struct ImageView {
  const std::uint8_t* pixels;
  int height;
  int width;
  int channels;
};

// 10 log10(255^2 / MSE) over all pixels and channels; +inf for equal images.
double psnr(const ImageView& a, const ImageView& b);

// Wang et al. 2004 with a Gaussian window (sigma 1.5, 11 taps), K1 0.01,
// K2 0.03, population covariance, data range 255, computed per channel and
// averaged, the (win-1)/2 border excluded from the mean. Images must be at
// least 11x11.
double ssim(const ImageView& a, const ImageView& b);

}  // namespace diffsearch::engine
