// The frontier's combination speed model (docs/search.md, "The steps", 4):
// a combination's speedup predicted from its methods' measured ones, fitted
// on a few combinations measured in full. Pure arithmetic, no strategy state.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace diffsearch::coordinator {

// Least squares y = a + b x over `points`, leaving out the one at `skip`
// (points.size(): none). b = 1 when x does not vary.
std::pair<double, double> line_fit(const std::vector<std::pair<double, double>>& points, std::size_t skip);

// The components' speedups composed with a fixed share f of the time that no
// method shortens (text encoding, decoding, the sampler): each method scales
// only the rest, so the time is f + (1 - f) prod((1/s_i - f) / (1 - f)).
// f = 0 is the plain product of the speedups.
double composed_speedup(const std::vector<double>& speedups, double f);

struct SpeedFit {
  double fixed_share = 0;  // f
  double a = 0, b = 1;     // log measured = a + b log composed
  double worst_error = 0;  // the worst relative leave-one-out error
  double predict(const std::vector<double>& speedups) const;
};

// Fits the model to combinations measured in full (`parts[i]`: the
// components' speedups of combination i, `measured[i]` its own). f is the
// value from 0 to 0.30 (steps of 0.01) whose fit has the least squared
// leave-one-out error. Needs at least 3 points.
SpeedFit fit_speed_model(const std::vector<std::vector<double>>& parts, const std::vector<double>& measured);

// A combination's loss from its components' composed loss 1 - prod(1 - l_i)
// (`raw`), fitted on combinations measured in full. How far a loss can be
// off grows with the loss: at small losses a score moves about as the square
// root of the loss (an image moves as far as it is degraded), at larger ones
// in proportion (the model's relative error). So the errors are measured in
// units of scale(l) = sqrt((l + floor / 10) * max(l, floor)), `floor` the
// smallest loss bound the space serves, and the fit is weighted by
// 1 / scale^2: a few very lossy settings (fast, far outside any bound) no
// longer decide the line, or the margin, near the bounds. A margin around a
// prediction p is a multiple of rms_error times scale(p). The line runs
// through the origin (lossless components, a lossless combination).
struct LossFit {
  double b = 1;  // loss = b * raw
  double floor = 0.02;
  double worst_error = 0;  // the worst leave-one-out error, in units of scale()
  double rms_error = 0;    // the root mean square of the leave-one-out errors, the same units
  double scale(double loss) const;
  double predict(double raw) const { return b * raw; }
};

// `points`: (composed loss of the components, measured loss). Needs at least
// 3 points.
LossFit fit_loss_model(const std::vector<std::pair<double, double>>& points, double floor);

}  // namespace diffsearch::coordinator
