// The frontier strategy's state (docs/search.md, "Strategies"), shared by
// its source files; the rest of the project makes one with
// make_frontier_strategy (strategy_internal.h).
//   strategy_frontier.cc         the spaces' phases: seeding, rounds, polishing
//   strategy_frontier_bounds.cc  what a setting's measurements say: speed and
//                                loss bounds, who covers whom, targets in reach
//   strategy_frontier_model.cc   the combination model: fit, scouts, pruning
//                                before an image
//   strategy_frontier_race.cc    a round's eliminations: paired and pooled
//                                tests, --loss-tolerance
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/combination_model.h"
#include "coordinator/distill.h"
#include "coordinator/search.h"
#include "coordinator/strategy.h"

namespace diffsearch::coordinator::frontier {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// How many of the least losses that surely reach a target each setting is
// tested against (paired tests cost n each).
constexpr std::size_t kTargetRivals = 8;
// A component setting leaves its combining front only to one faster by more
// than this: speeds that close alone can swap order inside a combination
// (a T-GATE warm-up or self-attention interval that saves little alone
// saves differently beside DeepCache's partial steps).
constexpr double kCombiningSpeedGap = 0.10;
// The combination model's speed margin is this times its worst leave-one-out
// error: twelve held-out points do not bound the error of thousands.
constexpr double kModelMarginFactor = 1.5;
// Its loss margin is this times the root mean square of the held-out errors
// (in units of LossFit::scale), about a one-sided 99.4% normal quantile: the
// worst of twelve swings with one point, and the spaces whose worst point
// happened to be far paid most of category 4's cost.
constexpr double kLossMarginFactor = 2.5;

struct Candidate {
  uint64_t index = 0;       // in its space
  std::vector<double> axes;  // per parameter: value times its direction
  std::vector<bool> directed;
  bool alive = true;
  bool failed = false;
  bool calibration = false;
  // On the front a combination is seeded from: not confidently dominated in
  // the true (population) sense, which keeps the settings that noise alone
  // put behind the measured front.
  bool combining = false;
  int measured_to = 0;  // prompts [0, measured_to) are in
  std::vector<double> base, acc;  // per prompt CLIP scores
  double time_base = 0, time_acc = 0, macs_base = 0, macs_acc = 0;
  double predicted = kNaN;       // the model's speedup (combinations)
  std::vector<double> parts;     // the components' measured speedups (combinations)
  double predicted_loss = kNaN;  // the model's loss (combinations)
  bool polished = false;         // its neighbours have joined the race (combinations)
  // Stands for a setting dropped within --loss-tolerance (itself, or one it
  // dropped strictly did): from then on dropped only strictly, and only by
  // a live setting, which inherits the mark, so no answer is more than the
  // tolerance above the setting it displaced.
  bool absorbed = false;
};

// --loss-tolerance's one hop (Candidate::absorbed): whether B drops A.
// `strictly()`: B's loss is surely lower; `within()`: surely at most the
// tolerance higher (asked only where the rule allows it). `a_absorbed`: A
// stands for a drop within the tolerance, so it goes only strictly and only
// to a live B (`b_live`), which then stands for it. `b_absorbs`: B's mark
// is to be set.
struct HopVerdict {
  bool drops = false;
  bool b_absorbs = false;
};
template <typename Strictly, typename Within>
HopVerdict one_hop_drop(Strictly strictly, Within within, bool a_absorbed, bool b_live) {
  if (a_absorbed && !b_live) return {};
  if (strictly()) return {true, a_absorbed};
  if (a_absorbed || !b_live || !within()) return {};
  return {true, true};
}

enum class Phase { Waiting, Calibrating, Scouting, Racing, Done };

struct SpaceRace {
  std::size_t space = 0;
  Phase phase = Phase::Waiting;
  bool exhaustive = false;  // latency tasks: every setting, full fidelity
  std::vector<std::size_t> components;  // fronts: the single-method spaces
  std::vector<std::size_t> dependents;  // combinations waiting for this one
  std::vector<Candidate> cands;
  std::map<uint64_t, std::size_t> by_index;
  std::size_t round = 0;    // index into the schedule of the round in flight
  std::size_t pending = 0;  // items of the round still unsettled
  std::vector<double> targets;  // speedup targets of the tasks it serves, sorted
  bool untargeted = false;      // serves a task without one (fastest within the bound)
  double loss_min = 0.02, loss_max = 0.02;
  double margin = 0;       // the model's relative margin on speedups (combinations)
  double loss_margin = 0;  // and on losses, in units of loss_fit.scale() (combinations)
  LossFit loss_fit;
  int polish_rounds = 0;   // neighbourhoods of the survivors raced so far (combinations)
};
class FrontierStrategy : public SearchStrategy {
 public:
  FrontierStrategy(const SearchOptions& options, const SearchPlan& plan);

  std::string name() const override { return "frontier"; }
  std::vector<WorkItem> take_ready() override { return std::move(ready_); }

  void settle(const WorkItem& item, const io::EvaluationRow* ok) override;

  bool finished() const override;
  bool space_finished(std::size_t space) const override;
  std::pair<std::size_t, std::size_t> spaces_done() const override;

 private:
  // ---- strategy_frontier.cc (and the public members above)

  const partition::PlannedSpace& space_of(const SpaceRace& race) const { return plan_.plan.spaces[race.space]; }

  Candidate make_candidate(const partition::PlannedSpace& space, uint64_t index) const;

  // Mixed-radix place values of a space's methods (the last method fastest,
  // as PlannedSpace::setting_at reads an index).
  static std::vector<uint64_t> strides(const partition::PlannedSpace& space);

  void add(SpaceRace& race, Candidate c);

  void start(SpaceRace& race);

  // A combination's candidates: the product of its methods' survivors, with
  // the product of their measured speedups, and the loss of independent
  // losses (1 - prod(1 - l)), as the model's raw predictions.
  void seed_from_fronts(SpaceRace& race);

  template <typename Pick>
  void issue(SpaceRace& race, int begin, int end, Pick pick) {
    const auto& space = space_of(race);
    for (auto& c : race.cands) {
      if (!c.alive || c.measured_to != begin || !pick(c)) continue;
      ready_.push_back(make_work_item(plan_.plan, race.space, c.index, space.baseline, begin, end));
      ++race.pending;
    }
  }

  void record(Candidate& c, const WorkItem& item, const io::EvaluationRow& row);

  // ---- strategy_frontier_bounds.cc (target_view here: a template)

  // The loss over every prompt measured.
  double full_loss(const Candidate& c) const;

  double speed(const Candidate& c) const;
  // Relative uncertainty of speed(): none at full fidelity, the tolerance on
  // a prompt prefix, the model's margin when predicted.
  double speed_uncertainty(const SpaceRace& race, const Candidate& c) const;

  // The speedup's sure bounds: what the full prompt list can still measure.
  double speed_lo(const SpaceRace& race, const Candidate& c) const { return speed(c) / (1 + speed_uncertainty(race, c)); }
  double speed_hi(const SpaceRace& race, const Candidate& c) const { return speed(c) * (1 + speed_uncertainty(race, c)); }

  // Whether B is at least as fast as A and surely reaches every target A
  // might reach (within the measurement tolerance or the speed model's
  // margin): then if B's loss is lower, A is never the answer of any rule.
  bool covers(const SpaceRace& race, const Candidate& b, const Candidate& a) const;

  // Faster by more than kCombiningSpeedGap: what removes a setting from a
  // combining front.
  bool clearly_faster(const Candidate& b, const Candidate& a) const;

  // Answers by target. When every task a space serves has a speedup target,
  // a setting A can be an answer in two ways only: as the least loss among
  // the settings that reach some target A reaches (then a setting that
  // surely reaches the highest target A might reach, with a surely lower
  // loss, rules A out, however fast A is), or as the nearest point of a
  // target above A's reach that no setting surely meets within the loss
  // bound (there only a faster setting with a lower loss rules A out, as
  // `covers` asks). So once every target above A's reach is surely
  // feasible, the staircase of front points between two targets needs no
  // measuring beyond its lowest-loss end.
  struct TargetView {
    bool on = false;
    std::vector<bool> surely_feasible;             // per target
    std::vector<std::vector<std::size_t>> rivals;  // per target: least losses that surely reach it
    std::vector<double> nearest;                   // per target: the least sure upper shortfall
  };

  // Whether A (speedup at most `hi`, loss at least `lower`) is surely never
  // the answer of a target above index k: each is surely feasible, or some
  // setting surely misses it by less than A can.
  bool beyond_reach_settled(const SpaceRace& race, const TargetView& v, int k, double hi, double lower) const;

  // The index of the highest target A might reach; -1 when none.
  int highest_reachable(const SpaceRace& race, const Candidate& a) const;

  // `upper(i)`: a sure upper bound on candidate i's loss; `point(i)`: its
  // estimate, which orders the rivals.
  template <typename Upper, typename Point>
  TargetView target_view(const SpaceRace& race, const std::vector<std::size_t>& live, std::size_t rivals, Upper upper,
                         Point point) const {
    TargetView v;
    v.on = !race.untargeted && !race.targets.empty();
    if (!v.on) return v;
    v.surely_feasible.assign(race.targets.size(), false);
    v.rivals.resize(race.targets.size());
    v.nearest.assign(race.targets.size(), std::numeric_limits<double>::infinity());
    for (std::size_t k = 0; k < race.targets.size(); ++k) {
      auto& r = v.rivals[k];
      for (std::size_t i : live) {
        const double lo = speed_lo(race, race.cands[i]);
        v.nearest[k] = std::min(v.nearest[k], speedup_shortfall(lo, upper(i), race.targets[k], race.loss_min));
        if (lo < race.targets[k]) continue;
        if (upper(i) <= race.loss_min) v.surely_feasible[k] = true;
        r.push_back(i);
      }
      std::stable_sort(r.begin(), r.end(), [&](std::size_t x, std::size_t y) {
        return point(x) < point(y) || (point(x) == point(y) && race.cands[x].index < race.cands[y].index);
      });
      if (r.size() > rivals) r.resize(rivals);
    }
    return v;
  }

  static bool less_aggressive(const Candidate& b, const Candidate& a);

  // Per-prompt losses of c over [0, n), relative to its baseline's mean.
  std::vector<double> prompt_losses(const Candidate& c, int n, double base_mean) const;
  static double base_mean(const Candidate& c, int n);

  // ---- strategy_frontier_model.cc

  // The combination model, fitted on the calibration settings measured in
  // full (coordinator/combination_model.h): log speedup linear in the log
  // of the components' composed speedup, loss linear in the composed loss.
  // Margins: kModelMarginFactor times the worst held-out speed error (at
  // least --speed-margin), kLossMarginFactor times the held-out loss errors'
  // root mean square.
  void fit_model(SpaceRace& race);

  // The loss margin at the smallest loss bound the space serves (traces).
  static double loss_margin_at_bound(const SpaceRace& race);
  // How far c's measured loss can be from the model's prediction.
  static double predicted_loss_margin(const SpaceRace& race, const Candidate& c);

  // The unmeasured candidates on the Pareto front of the model's point
  // predictions (speedup up, loss down), fastest first.
  std::vector<std::size_t> predicted_front(const SpaceRace& race) const;

  // Before a combination costs an image: out when another (measured or
  // predicted) surely covers its speed with a surely lower loss, or, under
  // the monotone assumption, is less aggressive and surely covers its speed.
  void prune_by_prediction(SpaceRace& race);

  // ---- strategy_frontier_race.cc

  // After a round every live candidate has prompts [0, n): drop those that
  // another surely dominates, or whose loss surely rules them out.
  void eliminate(SpaceRace& race, int n);

  // Which of `live` (all measured on [0, n)) another surely dominates or
  // whose loss surely rules out. `exact_at_full`: bounds on what the full
  // prompt list will measure (exact at n = all); else on the true means.
  // `absorbed` (per candidate, read and updated): Candidate::absorbed, for
  // drops within --loss-tolerance; null: strict drops only.
  std::vector<bool> dominated(const SpaceRace& race, const std::vector<std::size_t>& live, int n, bool exact_at_full,
                              std::vector<bool>* absorbed = nullptr);

  // ---- strategy_frontier.cc

  void advance(SpaceRace& race);

  // After a combination's last round: its survivors' neighbours in the whole
  // product (one method's setting moved one step along one parameter) that
  // were never candidates, or that the model pruned before an image, join a
  // new race against them, up to --polish rounds. This is what the
  // "combinations from fronts" assumption misses: a setting that its
  // method's front dropped alone but that wins
  // beside the others (a T-GATE interval whose speed order flips beside
  // DeepCache's partial steps). Returns whether a new race started.
  bool polish(SpaceRace& race);

  const SearchOptions& options_;
  const FrontierOptions& fo_;
  const SearchPlan& plan_;
  const std::vector<int> schedule_;
  std::vector<SpaceRace> races_;
  std::vector<std::size_t> active_;
  std::vector<WorkItem> ready_;
  std::size_t outstanding_baselines_ = 0;
  std::size_t pruned_ = 0;
  // DIFFSEARCH_FRONTIER_TRACE=1: a line per space and round on stderr
  // (where a race spends its prompts; docs/search.md).
  bool trace_ = std::getenv("DIFFSEARCH_FRONTIER_TRACE") != nullptr;
};

}  // namespace diffsearch::coordinator::frontier
