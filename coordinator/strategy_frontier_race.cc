// The frontier strategy (strategy_frontier.h): a round's eliminations, by
// paired differences and a pooled spread (race_stats.h), by target, and
// within --loss-tolerance.
#include "coordinator/strategy_frontier.h"

#include <cmath>

#include "coordinator/race_stats.h"

namespace diffsearch::coordinator::frontier {

void FrontierStrategy::eliminate(SpaceRace& race, int n) {
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < race.cands.size(); ++i) {
    if (race.cands[i].alive && race.cands[i].measured_to >= n) live.push_back(i);
  }
  if (!race.dependents.empty()) {
    // A space combinations start from keeps racing what may combine:
    // eliminated only with confidence about the true means and by a
    // clearly faster setting (exactly as fast ones can part inside a
    // combination). Its last round also marks that combining front.
    const auto out = dominated(race, live, n, /*exact_at_full=*/false);
    if (n < options_.samples) {
      for (std::size_t i : live) race.cands[i].alive = !out[i];
      return;
    }
    for (std::size_t i : live) race.cands[i].combining = !out[i];
  }
  if (live.size() < 2) return;
  std::vector<bool> absorbed(race.cands.size(), false);
  for (std::size_t i : live) absorbed[i] = race.cands[i].absorbed;
  const auto out = dominated(race, live, n, /*exact_at_full=*/true, &absorbed);
  for (std::size_t i : live) race.cands[i].absorbed = absorbed[i];
  for (std::size_t i : live) {
    // One measured in full (a scout, or a survivor whose neighbours now
    // race) is judged on all its prompts, in the last round, not on a
    // prefix: keeping it costs nothing.
    if (out[i] && (n >= options_.samples || race.cands[i].measured_to < options_.samples)) race.cands[i].alive = false;
  }
}

std::vector<bool> FrontierStrategy::dominated(const SpaceRace& race, const std::vector<std::size_t>& live, int n,
                                             bool exact_at_full, std::vector<bool>* absorbed) {
  const int total = options_.samples;
  // Two tests, each at half the error rate (a union bound keeps the
  // confidence): the pair's own paired spread (n - 1 degrees of freedom),
  // and a spread pooled over settings of similar loss (many degrees of
  // freedom: the power a 4-prompt round needs).
  const double conf = 1 - (1 - fo_.confidence) / 2;
  auto sample_bounds = [&](const std::vector<double>& v) {
    return exact_at_full ? final_mean_bounds(v, total, conf) : mean_bounds(v, conf);
  };
  std::vector<double> mean_base(race.cands.size(), 1.0);
  std::vector<MeanBounds> loss(race.cands.size());
  std::vector<double> var(race.cands.size(), 0.0), prior_sd(race.cands.size(), kNaN);
  for (std::size_t i : live) {
    mean_base[i] = base_mean(race.cands[i], n);
    const auto l = prompt_losses(race.cands[i], n, mean_base[i]);
    loss[i] = sample_bounds(l);
    double ss = 0;
    for (double x : l) ss += (x - loss[i].mean) * (x - loss[i].mean);
    var[i] = n > 1 ? ss / (n - 1) : 0.0;
  }
  // The pooled spread: settings in bins of similar loss; each takes the
  // largest of its bin's and its neighbours' mean variances.
  constexpr std::size_t kBin = 32;
  int prior_dof = 0;
  if (n >= 2 && live.size() >= 2 * kBin) {
    std::vector<std::size_t> by_loss = live;
    std::stable_sort(by_loss.begin(), by_loss.end(), [&](std::size_t x, std::size_t y) { return loss[x].mean < loss[y].mean; });
    const std::size_t bins = by_loss.size() / kBin;
    std::vector<double> pooled(bins, 0.0);
    for (std::size_t k = 0; k < by_loss.size(); ++k) pooled[std::min(k / kBin, bins - 1)] += var[by_loss[k]];
    for (std::size_t b = 0; b < bins; ++b) {
      const std::size_t count = b + 1 < bins ? kBin : by_loss.size() - b * kBin;
      pooled[b] /= static_cast<double>(count);
    }
    for (std::size_t k = 0; k < by_loss.size(); ++k) {
      const std::size_t b = std::min(k / kBin, bins - 1);
      double v = pooled[b];
      if (b > 0) v = std::max(v, pooled[b - 1]);
      if (b + 1 < bins) v = std::max(v, pooled[b + 1]);
      prior_sd[by_loss[k]] = std::sqrt(v);
    }
    prior_dof = static_cast<int>(kBin) * (n - 1);
  }
  auto half = [&](double sd) { return mean_half_width(sd, n, total, prior_dof, conf, exact_at_full); };
  auto loss_lower = [&](std::size_t i) {
    return std::isfinite(prior_sd[i]) ? std::max(loss[i].lower, loss[i].mean - half(prior_sd[i])) : loss[i].lower;
  };
  auto loss_upper = [&](std::size_t i) {
    return std::isfinite(prior_sd[i]) ? std::min(loss[i].upper, loss[i].mean + half(prior_sd[i])) : loss[i].upper;
  };
  // Loss beyond twice the bound: never feasible, and never nearer to a
  // target than a setting within the bound (docs/search.md), if one exists.
  bool some_within = false;
  for (std::size_t i : live) some_within |= loss_upper(i) <= race.loss_min;
  std::vector<bool> out(race.cands.size(), false);
  if (some_within) {
    for (std::size_t i : live) out[i] = loss_lower(i) > 2 * race.loss_max;
  }
  // B's loss surely below A's plus `tol`: the pair's paired differences,
  // or the pooled spread (the pair's spread is at most the sum of the two).
  // With a tolerance, also B's estimate at most A's: the tolerance keeps
  // the better-looking one.
  std::vector<double> diff(static_cast<std::size_t>(n));
  auto surely_below = [&](std::size_t bi, std::size_t ai, double tol) {
    const Candidate& a = race.cands[ai];
    const Candidate& b = race.cands[bi];
    for (int p = 0; p < n; ++p) diff[p] = (a.acc[p] - b.acc[p]) / mean_base[ai];  // loss_b - loss_a
    const MeanBounds d = sample_bounds(diff);
    if (tol > 0 && d.mean > 0) return false;
    const bool pooled_says = std::isfinite(prior_sd[ai]) && std::isfinite(prior_sd[bi]) &&
                             d.mean + half(prior_sd[ai] + prior_sd[bi]) < tol;
    return d.upper < tol || pooled_says;
  };
  // Whether B drops A: surely lower, or (--loss-tolerance) surely at most
  // the tolerance above it, one hop per chain (one_hop_drop). Not in the
  // last round: keeping a near-tie measured in full costs nothing, and the
  // exhaustive rule then picks the better one.
  const double tol = absorbed && n < total ? fo_.loss_tolerance : 0.0;
  auto surely_lower = [&](std::size_t bi, std::size_t ai) {
    const HopVerdict v = one_hop_drop([&] { return surely_below(bi, ai, 0); },
                                      [&] { return tol > 0 && surely_below(bi, ai, tol); },
                                      absorbed && (*absorbed)[ai], !out[bi]);
    if (v.b_absorbs) (*absorbed)[bi] = true;
    return v.drops;
  };
  // By target (target_view), for the answers' race only: a combining front
  // needs every speed, since inside a combination speeds multiply. Only
  // by measured losses: the monotone assumption is about true losses, and
  // by target it would drop settings that noise makes exhaustive's pick
  // (category 4's noisy landscapes lost a tenth of their answers that way,
  // for almost no saving on a noise-free one).
  TargetView tv;
  if (exact_at_full) {
    tv = target_view(race, live, kTargetRivals, loss_upper, [&](std::size_t i) { return loss[i].mean; });
  }
  // Faster first; for A, the candidates that cover its speed are a prefix.
  std::vector<std::size_t> by_speed = live;
  std::stable_sort(by_speed.begin(), by_speed.end(), [&](std::size_t a, std::size_t b) {
    return speed(race.cands[a]) > speed(race.cands[b]);
  });
  // The lowest-loss candidates among each prefix, to test A against.
  constexpr std::size_t kRivals = 8;
  std::vector<std::size_t> best;
  for (std::size_t pos = 0; pos < by_speed.size(); ++pos) {
    const std::size_t ai = by_speed[pos];
    const Candidate& a = race.cands[ai];
    if (!out[ai]) {
      for (std::size_t bi : best) {
        const Candidate& b = race.cands[bi];
        // The combining front keeps a setting that only one about as fast
        // beats: inside a combination their speeds can part.
        if (!covers(race, b, a) || (!exact_at_full && !clearly_faster(b, a))) continue;
        if (surely_lower(bi, ai)) {
          out[ai] = true;
          break;
        }
      }
      if (!out[ai] && tv.on) {
        const int k = highest_reachable(race, a);
        if (beyond_reach_settled(race, tv, k, speed_hi(race, a), loss_lower(ai))) {
          out[ai] = k < 0;
          for (std::size_t j = 0; !out[ai] && j < tv.rivals[k].size(); ++j) {
            if (tv.rivals[k][j] != ai) out[ai] = surely_lower(tv.rivals[k][j], ai);
          }
        }
      }
      if (!out[ai] && fo_.assume_monotone) {
        for (std::size_t q = 0; q < by_speed.size() && !out[ai]; ++q) {
          const Candidate& b = race.cands[by_speed[q]];
          if (q != pos && less_aggressive(b, a) && covers(race, b, a) && (exact_at_full || clearly_faster(b, a))) {
            out[ai] = true;
          }
        }
      }
    }
    // Keep the kRivals lowest point losses seen so far (ties: index).
    best.push_back(ai);
    std::stable_sort(best.begin(), best.end(), [&](std::size_t x, std::size_t y) {
      return loss[x].mean < loss[y].mean || (loss[x].mean == loss[y].mean && race.cands[x].index < race.cands[y].index);
    });
    if (best.size() > kRivals) best.pop_back();
  }
  return out;
}

}  // namespace diffsearch::coordinator::frontier
