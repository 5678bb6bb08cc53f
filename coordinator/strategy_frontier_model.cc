// The frontier strategy (strategy_frontier.h): the combination model. Fitted
// on the calibration settings, it predicts the rest, picks the scouts, and
// prunes what surely loses before it costs an image.
#include "coordinator/strategy_frontier.h"

#include <cmath>
#include <cstdio>
#include <set>

namespace diffsearch::coordinator::frontier {

void FrontierStrategy::fit_model(SpaceRace& race) {
  std::vector<std::vector<double>> parts;
  std::vector<double> measured;
  std::vector<std::pair<double, double>> losses;
  for (const auto& c : race.cands) {
    if (c.calibration && c.alive && c.measured_to == options_.samples && c.predicted > 0 && speed(c) > 0 &&
        !c.parts.empty()) {
      parts.push_back(c.parts);
      measured.push_back(speed(c));
      losses.push_back({c.predicted_loss, full_loss(c)});
    }
  }
  if (parts.size() < 4) {
    // Too few to trust a fit: no pruning by prediction.
    race.margin = race.loss_margin = std::numeric_limits<double>::infinity();
    return;
  }
  const SpeedFit fit = fit_speed_model(parts, measured);
  race.loss_fit = fit_loss_model(losses, race.loss_min);
  race.margin = std::max(fo_.speed_margin, kModelMarginFactor * fit.worst_error);
  race.loss_margin = kLossMarginFactor * race.loss_fit.rms_error;
  for (auto& x : race.cands) {
    if (x.measured_to > 0) continue;
    if (x.predicted > 0 && !x.parts.empty()) x.predicted = fit.predict(x.parts);
    x.predicted_loss = race.loss_fit.predict(x.predicted_loss);
  }
  if (trace_) {
    std::fprintf(stderr,
                 "frontier trace %s: fixed share %.2f, held-out speed error %.3f, loss error %.2f (root mean "
                 "square, in scale units)\n",
                 space_of(race).key().c_str(), fit.fixed_share, fit.worst_error, race.loss_fit.rms_error);
  }
}

double FrontierStrategy::loss_margin_at_bound(const SpaceRace& race) {
  return race.loss_margin * race.loss_fit.scale(race.loss_min);
}

double FrontierStrategy::predicted_loss_margin(const SpaceRace& race, const Candidate& c) {
  return race.loss_margin * race.loss_fit.scale(c.predicted_loss);
}

std::vector<std::size_t> FrontierStrategy::predicted_front(const SpaceRace& race) const {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < race.cands.size(); ++i) {
    if (race.cands[i].alive && race.cands[i].measured_to == 0) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return race.cands[a].predicted > race.cands[b].predicted;
  });
  std::vector<std::size_t> front;
  double best = std::numeric_limits<double>::infinity();
  for (std::size_t i : order) {
    if (race.cands[i].predicted_loss < best) {
      best = race.cands[i].predicted_loss;
      front.push_back(i);
    }
  }
  // Only the part of the front a task can pick: from the least loss up to
  // twice the loss bound.
  std::vector<std::size_t> relevant;
  for (std::size_t i : front) {
    if (race.cands[i].predicted_loss <= 2 * race.loss_max) relevant.push_back(i);
  }
  if (race.untargeted || race.targets.empty()) return relevant;
  // Every task has a target: per target, the front points that would
  // answer it by the point predictions (the least loss predicted to reach
  // it, and to surely reach it; the least shortfall), not the staircase
  // between targets.
  std::set<std::size_t> picks;
  for (double r : race.targets) {
    std::size_t reach = relevant.size(), sure = relevant.size(), near = relevant.size();
    double near_d = std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < relevant.size(); ++j) {
      const Candidate& c = race.cands[relevant[j]];
      // `relevant` runs fastest first, losses falling: the last qualifying
      // one has the least loss.
      if (c.predicted >= r) reach = j;
      if (c.predicted / (1 + race.margin) >= r) sure = j;
      const double d = speedup_shortfall(c.predicted, c.predicted_loss, r, race.loss_max);
      if (d < near_d) near_d = d, near = j;
    }
    for (std::size_t j : {reach, sure, near}) {
      if (j < relevant.size()) picks.insert(relevant[j]);
    }
  }
  return std::vector<std::size_t>(picks.begin(), picks.end());
}

void FrontierStrategy::prune_by_prediction(SpaceRace& race) {
  if (!std::isfinite(race.margin) || !std::isfinite(race.loss_margin)) return;
  auto loss_hi = [&](const Candidate& c) {
    return c.measured_to == options_.samples ? full_loss(c) : c.predicted_loss + predicted_loss_margin(race, c);
  };
  auto loss_lo = [&](const Candidate& c) {
    return c.measured_to == options_.samples ? full_loss(c) : c.predicted_loss - predicted_loss_margin(race, c);
  };
  auto point_loss = [&](const Candidate& c) {
    return c.measured_to == options_.samples ? full_loss(c) : c.predicted_loss;
  };
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < race.cands.size(); ++i) {
    if (race.cands[i].alive) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return speed(race.cands[a]) > speed(race.cands[b]); });
  // B drops A: surely lower, or surely at most --loss-tolerance above it,
  // one hop per chain (one_hop_drop).
  auto drops = [&](Candidate& b, const Candidate& a) {
    const HopVerdict v = one_hop_drop([&] { return loss_hi(b) < loss_lo(a); },
                                      [&] {
                                        return fo_.loss_tolerance > 0 && point_loss(b) <= point_loss(a) &&
                                               loss_hi(b) < loss_lo(a) + fo_.loss_tolerance;
                                      },
                                      a.absorbed, b.alive);
    if (v.b_absorbs) b.absorbed = true;
    return v.drops;
  };
  // Loss beyond twice the bound, when some setting is surely within it.
  bool some_within = false;
  for (std::size_t i : order) some_within |= loss_hi(race.cands[i]) <= race.loss_min;
  // The lowest upper loss among the faster ones, scanned in speed order.
  constexpr std::size_t kRivals = 16;
  std::vector<std::size_t> best;
  for (std::size_t i : order) {
    Candidate& a = race.cands[i];
    if (a.measured_to == 0) {
      bool out = some_within && loss_lo(a) > 2 * race.loss_max;
      for (std::size_t j = 0; j < best.size() && !out; ++j) {
        Candidate& b = race.cands[best[j]];
        out = covers(race, b, a) && drops(b, a);
      }
      if (out) {
        a.alive = false;
        ++pruned_;
        continue;
      }
    }
    best.push_back(i);
    std::stable_sort(best.begin(), best.end(), [&](std::size_t x, std::size_t y) {
      return loss_hi(race.cands[x]) < loss_hi(race.cands[y]) ||
             (loss_hi(race.cands[x]) == loss_hi(race.cands[y]) && race.cands[x].index < race.cands[y].index);
    });
    if (best.size() > kRivals) best.pop_back();
  }
  // By target (target_view): against the least upper losses that surely
  // reach the highest target A might reach.
  std::vector<std::size_t> alive;
  for (std::size_t i = 0; i < race.cands.size(); ++i) {
    if (race.cands[i].alive) alive.push_back(i);
  }
  const TargetView tv = target_view(
      race, alive, kRivals, [&](std::size_t i) { return loss_hi(race.cands[i]); },
      [&](std::size_t i) { return loss_hi(race.cands[i]); });
  for (std::size_t i : alive) {
    Candidate& a = race.cands[i];
    if (!tv.on || a.measured_to > 0) continue;
    const int k = highest_reachable(race, a);
    if (!beyond_reach_settled(race, tv, k, speed_hi(race, a), loss_lo(a))) continue;
    bool out = k < 0;
    for (std::size_t j = 0; !out && j < tv.rivals[k].size(); ++j) {
      Candidate& b = race.cands[tv.rivals[k][j]];
      out = b.alive && b.index != a.index && drops(b, a);
    }
    if (out) {
      a.alive = false;
      ++pruned_;
    }
  }
  if (!fo_.assume_monotone) return;
  for (auto& a : race.cands) {
    if (!a.alive || a.measured_to > 0) continue;
    for (const auto& b : race.cands) {
      if (b.alive && less_aggressive(b, a) && covers(race, b, a)) {
        a.alive = false;
        ++pruned_;
        break;
      }
    }
  }
}

}  // namespace diffsearch::coordinator::frontier
