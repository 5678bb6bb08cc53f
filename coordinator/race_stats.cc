// Student's t by its CDF (the regularised incomplete beta function, by
// Lentz's continued fraction) inverted by bisection: a few microseconds, and
// exact enough for a race that asks for a handful of quantiles per round.
#include "coordinator/race_stats.h"

#include <cassert>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

namespace diffsearch::coordinator {
namespace {

// Continued fraction of the incomplete beta function (x < (a+1)/(a+b+2)).
double beta_fraction(double a, double b, double x) {
  constexpr double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (std::fabs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1) < 1e-15) break;
  }
  return h;
}

double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front =
      std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
  return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

double student_t_cdf(double t, int dof) {
  const double v = dof;
  const double tail = 0.5 * incomplete_beta(v / 2, 0.5, v / (v + t * t));
  return t >= 0 ? 1 - tail : tail;
}

}  // namespace

double student_t_quantile(double p, int dof) {
  assert(p > 0 && p < 1 && dof >= 1);
  // Beyond 1000 degrees of freedom the continued fraction converges slowly;
  // t(1000) is within 0.2% of the normal's quantile, and on the safe side.
  dof = std::min(dof, 1000);
  // A race asks for the same few quantiles over and over.
  static thread_local std::map<std::pair<double, int>, double> cache;
  auto it = cache.find({p, dof});
  if (it != cache.end()) return it->second;
  double lo = -1e6, hi = 1e6;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * std::max(1.0, std::fabs(lo)); ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < p ? lo : hi) = mid;
  }
  const double q = 0.5 * (lo + hi);
  cache.emplace(std::make_pair(p, dof), q);
  return q;
}

MeanBounds mean_bounds(const std::vector<double>& values, double confidence) {
  MeanBounds b;
  const std::size_t n = values.size();
  if (n == 0) {
    b.lower = -std::numeric_limits<double>::infinity();
    b.upper = std::numeric_limits<double>::infinity();
    return b;
  }
  double sum = 0;
  for (double v : values) sum += v;
  b.mean = sum / static_cast<double>(n);
  if (n < 2) {
    b.lower = -std::numeric_limits<double>::infinity();
    b.upper = std::numeric_limits<double>::infinity();
    return b;
  }
  double ss = 0;
  for (double v : values) ss += (v - b.mean) * (v - b.mean);
  const double sd = std::sqrt(ss / static_cast<double>(n - 1));
  const double half = student_t_quantile(confidence, static_cast<int>(n) - 1) * sd / std::sqrt(static_cast<double>(n));
  b.lower = b.mean - half;
  b.upper = b.mean + half;
  return b;
}

MeanBounds final_mean_bounds(const std::vector<double>& values, int total, double confidence) {
  const int n = static_cast<int>(values.size());
  assert(n <= total);
  MeanBounds b = mean_bounds(values, confidence);
  if (n >= total) {
    b.lower = b.upper = b.mean;
    return b;
  }
  if (n < 2) return b;  // infinite: one prompt says nothing of the spread
  double ss = 0;
  for (double v : values) ss += (v - b.mean) * (v - b.mean);
  const double sd = std::sqrt(ss / (n - 1));
  const double rest = total - n;
  const double half = student_t_quantile(confidence, n - 1) * sd * (rest / total) * std::sqrt(1.0 / n + 1.0 / rest);
  b.lower = b.mean - half;
  b.upper = b.mean + half;
  return b;
}

double mean_half_width(double sd, int n, int total, int dof, double confidence, bool final) {
  assert(n >= 1 && dof >= 1);
  const double t = student_t_quantile(confidence, dof);
  if (!final) return t * sd / std::sqrt(static_cast<double>(n));
  if (n >= total) return 0;
  const double rest = total - n;
  return t * sd * (rest / total) * std::sqrt(1.0 / n + 1.0 / rest);
}

}  // namespace diffsearch::coordinator
