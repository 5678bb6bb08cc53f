// PSNR and SSIM in float64 with a separable Gaussian filter whose borders
// reflect half-sample, as scipy.ndimage's default mode does.
#include "worker/engine/metrics/image_metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "io/error.h"

namespace diffsearch::engine {
namespace {

constexpr double kSigma = 1.5;
constexpr int kRadius = 5;  // int(truncate 3.5 * sigma + 0.5)

void check_same_shape(const ImageView& a, const ImageView& b) {
  if (a.height != b.height || a.width != b.width || a.channels != b.channels) {
    throw InputError("image metrics need images of one shape, got " + std::to_string(a.height) +
                     "x" + std::to_string(a.width) + "x" + std::to_string(a.channels) + " and " +
                     std::to_string(b.height) + "x" + std::to_string(b.width) + "x" +
                     std::to_string(b.channels));
  }
}

int reflect(int i, int n) {
  // scipy 'reflect': (d c b a | a b c d | d c b a), repeated for far indices.
  while (i < 0 || i >= n) {
    if (i < 0) i = -i - 1;
    if (i >= n) i = 2 * n - i - 1;
  }
  return i;
}

std::vector<double> gaussian_taps() {
  std::vector<double> taps(2 * kRadius + 1);
  double sum = 0;
  for (int x = -kRadius; x <= kRadius; ++x) {
    taps[x + kRadius] = std::exp(-0.5 * x * x / (kSigma * kSigma));
    sum += taps[x + kRadius];
  }
  for (double& t : taps) t /= sum;
  return taps;
}

// Separable Gaussian filter of an h x w plane.
std::vector<double> blur(const std::vector<double>& in, int h, int w, const std::vector<double>& taps) {
  std::vector<double> rows(in.size()), out(in.size());
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int k = -kRadius; k <= kRadius; ++k) s += taps[k + kRadius] * in[y * w + reflect(x + k, w)];
      rows[y * w + x] = s;
    }
  }
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      double s = 0;
      for (int k = -kRadius; k <= kRadius; ++k) s += taps[k + kRadius] * rows[reflect(y + k, h) * w + x];
      out[y * w + x] = s;
    }
  }
  return out;
}

}  // namespace

double psnr(const ImageView& a, const ImageView& b) {
  check_same_shape(a, b);
  const std::size_t n = static_cast<std::size_t>(a.height) * a.width * a.channels;
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a.pixels[i]) - static_cast<double>(b.pixels[i]);
    sum += d * d;
  }
  const double mse = sum / static_cast<double>(n);
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(255.0 * 255.0 / mse);
}

double ssim(const ImageView& a, const ImageView& b) {
  check_same_shape(a, b);
  const int h = a.height, w = a.width, c = a.channels;
  if (h < 2 * kRadius + 1 || w < 2 * kRadius + 1) {
    throw InputError("SSIM needs images of at least 11x11 pixels, got " + std::to_string(h) + "x" +
                     std::to_string(w));
  }
  const std::vector<double> taps = gaussian_taps();
  const double c1 = (0.01 * 255) * (0.01 * 255);
  const double c2 = (0.03 * 255) * (0.03 * 255);
  const std::size_t plane = static_cast<std::size_t>(h) * w;
  double total = 0;
  for (int ch = 0; ch < c; ++ch) {
    std::vector<double> x(plane), y(plane), xx(plane), yy(plane), xy(plane);
    for (std::size_t i = 0; i < plane; ++i) {
      x[i] = a.pixels[i * c + ch];
      y[i] = b.pixels[i * c + ch];
      xx[i] = x[i] * x[i];
      yy[i] = y[i] * y[i];
      xy[i] = x[i] * y[i];
    }
    const auto ux = blur(x, h, w, taps), uy = blur(y, h, w, taps);
    const auto uxx = blur(xx, h, w, taps), uyy = blur(yy, h, w, taps), uxy = blur(xy, h, w, taps);
    double sum = 0;
    for (int r = kRadius; r < h - kRadius; ++r) {
      for (int col = kRadius; col < w - kRadius; ++col) {
        const std::size_t i = static_cast<std::size_t>(r) * w + col;
        const double vx = uxx[i] - ux[i] * ux[i];
        const double vy = uyy[i] - uy[i] * uy[i];
        const double vxy = uxy[i] - ux[i] * uy[i];
        sum += ((2 * ux[i] * uy[i] + c1) * (2 * vxy + c2)) /
               ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
      }
    }
    total += sum / (static_cast<double>(h - 2 * kRadius) * (w - 2 * kRadius));
  }
  return total / c;
}

}  // namespace diffsearch::engine
