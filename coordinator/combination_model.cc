#include "coordinator/combination_model.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace diffsearch::coordinator {

std::pair<double, double> line_fit(const std::vector<std::pair<double, double>>& points, std::size_t skip) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (i == skip) continue;
    n += 1, sx += points[i].first, sy += points[i].second;
    sxx += points[i].first * points[i].first, sxy += points[i].first * points[i].second;
  }
  const double den = n * sxx - sx * sx;
  const double b = n >= 2 && std::fabs(den) > 1e-12 * std::max(1.0, n * sxx) ? (n * sxy - sx * sy) / den : 1.0;
  const double a = n >= 1 ? (sy - b * sx) / n : 0.0;
  return {a, b};
}

double composed_speedup(const std::vector<double>& speedups, double f) {
  double rest = 1;
  // A component faster than the fixed share allows is clamped, not negative.
  for (double s : speedups) rest *= std::max(1e-3, (1 / s - f) / (1 - f));
  return 1 / (f + (1 - f) * rest);
}

double SpeedFit::predict(const std::vector<double>& speedups) const {
  return std::exp(a + b * std::log(composed_speedup(speedups, fixed_share)));
}

SpeedFit fit_speed_model(const std::vector<std::vector<double>>& parts, const std::vector<double>& measured) {
  assert(parts.size() == measured.size() && parts.size() >= 3);
  SpeedFit best;
  double best_sum = std::numeric_limits<double>::infinity();
  for (int k = 0; k <= 30; ++k) {
    const double f = 0.01 * k;
    std::vector<std::pair<double, double>> points;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      points.push_back({std::log(composed_speedup(parts[i], f)), std::log(measured[i])});
    }
    double sum = 0, worst = 0;
    for (std::size_t i = 0; i < points.size(); ++i) {
      const auto [a, b] = line_fit(points, i);
      const double e = std::fabs(std::exp(a + b * points[i].first - points[i].second) - 1);
      sum += e * e;
      worst = std::max(worst, e);
    }
    if (sum < best_sum) {
      best_sum = sum;
      const auto [a, b] = line_fit(points, points.size());
      best = {f, a, b, worst};
    }
  }
  return best;
}

double LossFit::scale(double loss) const {
  const double l = std::max(0.0, loss);
  return std::sqrt((l + floor / 10) * std::max(l, floor));
}

LossFit fit_loss_model(const std::vector<std::pair<double, double>>& points, double floor) {
  assert(points.size() >= 3 && floor > 0);
  LossFit fit;
  fit.floor = floor;
  // Weights from the raw losses (the fit's own predictions would make the
  // weights depend on the fit). Through the origin: lossless components make
  // a lossless combination, and a free intercept, left to the few settings of
  // small loss, swings when one of them is held out.
  auto slope = [&](std::size_t skip) {
    double sxy = 0, sxx = 0;
    for (std::size_t i = 0; i < points.size(); ++i) {
      if (i == skip) continue;
      const double w = 1 / (fit.scale(points[i].first) * fit.scale(points[i].first));
      sxy += w * points[i].first * points[i].second;
      sxx += w * points[i].first * points[i].first;
    }
    return sxx > 0 ? sxy / sxx : 1.0;
  };
  double ss = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const double predicted = slope(i) * points[i].first;
    const double e = std::fabs(predicted - points[i].second) / fit.scale(predicted);
    fit.worst_error = std::max(fit.worst_error, e);
    ss += e * e;
  }
  fit.rms_error = std::sqrt(ss / static_cast<double>(points.size()));
  fit.b = slope(points.size());
  return fit;
}

}  // namespace diffsearch::coordinator
