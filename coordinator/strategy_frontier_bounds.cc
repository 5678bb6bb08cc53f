// The frontier strategy (strategy_frontier.h): what a setting's measurements
// say. Its speed and loss so far, their sure bounds, which setting covers
// another's targets, and which targets are in reach.
#include "coordinator/strategy_frontier.h"

namespace diffsearch::coordinator::frontier {

double FrontierStrategy::full_loss(const Candidate& c) const {
  double b = 0, a = 0;
  for (int p = 0; p < c.measured_to; ++p) b += c.base[p], a += c.acc[p];
  return b > 0 ? (b - a) / b : 0.0;
}

double FrontierStrategy::speed(const Candidate& c) const {
  if (c.measured_to == 0) return c.predicted;
  if (options_.speed_measure == "macs") return c.macs_acc > 0 ? c.macs_base / c.macs_acc : 1.0;
  return c.time_acc > 0 ? c.time_base / c.time_acc : 1.0;
}

double FrontierStrategy::speed_uncertainty(const SpaceRace& race, const Candidate& c) const {
  if (c.measured_to >= options_.samples) return 0;  // what exhaustive measures, exactly
  return c.measured_to > 0 ? fo_.speed_tolerance : std::max(race.margin, fo_.speed_tolerance);
}

bool FrontierStrategy::covers(const SpaceRace& race, const Candidate& b, const Candidate& a) const {
  const double sa = speed(a), sb = speed(b);
  const double lo_b = speed_lo(race, b), hi_a = speed_hi(race, a);
  if (a.measured_to > 0 && b.measured_to > 0) {
    // Strictly by the estimates: "about as fast" would lose the faster
    // setting that the nearest-point and fastest-within-bound rules pick.
    if (sb < sa) return false;
  } else if (lo_b < hi_a) {
    return false;
  }
  for (double r : race.targets) {
    if (hi_a >= r && lo_b < r) return false;
  }
  return true;
}

bool FrontierStrategy::clearly_faster(const Candidate& b, const Candidate& a) const {
  return speed(b) > speed(a) * (1 + std::max(fo_.speed_tolerance, kCombiningSpeedGap));
}

bool FrontierStrategy::beyond_reach_settled(const SpaceRace& race, const TargetView& v, int k, double hi,
                                            double lower) const {
  for (std::size_t j = static_cast<std::size_t>(k + 1); j < race.targets.size(); ++j) {
    if (v.surely_feasible[j]) continue;
    if (!(speedup_shortfall(hi, lower, race.targets[j], race.loss_max) > v.nearest[j])) return false;
  }
  return true;
}

int FrontierStrategy::highest_reachable(const SpaceRace& race, const Candidate& a) const {
  const double hi = speed_hi(race, a);
  int k = -1;
  for (std::size_t j = 0; j < race.targets.size(); ++j) {
    if (hi >= race.targets[j]) k = static_cast<int>(j);
  }
  return k;
}

bool FrontierStrategy::less_aggressive(const Candidate& b, const Candidate& a) {
  if (b.index == a.index || b.axes.size() != a.axes.size()) return false;
  for (std::size_t i = 0; i < a.axes.size(); ++i) {
    if (a.directed[i] ? b.axes[i] > a.axes[i] : b.axes[i] != a.axes[i]) return false;
  }
  return true;
}

std::vector<double> FrontierStrategy::prompt_losses(const Candidate& c, int n, double base_mean) const {
  std::vector<double> l(static_cast<std::size_t>(n));
  for (int p = 0; p < n; ++p) l[p] = (c.base[p] - c.acc[p]) / base_mean;
  return l;
}

double FrontierStrategy::base_mean(const Candidate& c, int n) {
  double s = 0;
  for (int p = 0; p < n; ++p) s += c.base[p];
  return n > 0 ? s / n : 1.0;
}

}  // namespace diffsearch::coordinator::frontier
