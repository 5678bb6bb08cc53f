// The frontier strategy (docs/search.md): per method space, a race over
// nested prompt prefixes that keeps every setting that could still be on the
// space's speed/quality front, since every answer rule of distill picks a
// point of that front; combinations start from their methods' fronts; a
// speed model fitted on a few timed combinations prunes the rest before
// they cost an image. Spaces advance independently: no global barrier.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <set>

#include "coordinator/combination_model.h"
#include "coordinator/distill.h"
#include "coordinator/race_stats.h"
#include "coordinator/search.h"
#include "coordinator/strategy_internal.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {
namespace {

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
  FrontierStrategy(const SearchOptions& options, const SearchPlan& plan)
      : options_(options), fo_(options.frontier), plan_(plan), schedule_(fo_.schedule(options.samples)) {
    const auto& p = plan.plan;
    for (std::size_t b : plan.basic_baselines) {
      if (!plan.in_shard[b]) continue;
      ready_.push_back(make_work_item(p, partition::kNoSpace, 0, b, 0, options.samples));
      ++outstanding_baselines_;
    }
    races_.resize(p.spaces.size());
    std::vector<bool> needed(p.spaces.size(), false);
    for (std::size_t s = 0; s < plan.task_spaces; ++s) needed[s] = plan.in_shard[p.spaces[s].baseline];
    // What each space serves: its own tasks and those of the combinations
    // seeded from it.
    std::vector<std::set<double>> targets(p.spaces.size());
    std::vector<std::pair<double, double>> loss(p.spaces.size(), {1e300, -1e300});
    std::vector<bool> untargeted(p.spaces.size(), false);
    auto serve = [&](std::size_t s, std::size_t from) {
      for (std::size_t t : p.spaces[from].tasks) {
        const auto& task = p.tasks[t];
        if (task.speedup) targets[s].insert(*task.speedup);
        else if (!task.latency_s) untargeted[s] = true;
        loss[s].first = std::min(loss[s].first, task.max_score_loss);
        loss[s].second = std::max(loss[s].second, task.max_score_loss);
      }
    };
    for (std::size_t s = 0; s < p.spaces.size(); ++s) {
      if (!needed[s]) continue;
      serve(s, s);
      auto& race = races_[s];
      race.space = s;
      for (std::size_t t : p.spaces[s].tasks) race.exhaustive |= p.tasks[t].latency_s.has_value();
      if (fo_.combine == "fronts" && !race.exhaustive &&
          partition::worth_fronts(p.spaces[s], FrontierOptions::kFrontsMinRatio)) {
        for (auto m : p.spaces[s].methods) {
          const std::size_t c = partition::component_space(p, s, m);
          assert(c != partition::kNoSpace);  // make_search_plan adds them
          race.components.push_back(c);
          needed[c] = true;
          serve(c, s);
        }
      }
    }
    for (std::size_t s = 0; s < p.spaces.size(); ++s) {
      if (!needed[s]) continue;
      auto& race = races_[s];
      race.space = s;
      race.targets.assign(targets[s].begin(), targets[s].end());
      race.untargeted = untargeted[s];
      if (loss[s].first <= loss[s].second) race.loss_min = loss[s].first, race.loss_max = loss[s].second;
      for (std::size_t c : race.components) races_[c].dependents.push_back(s);
      active_.push_back(s);
    }
    for (std::size_t s : active_) {
      if (races_[s].components.empty()) start(races_[s]);
    }
  }

  std::string name() const override { return "frontier"; }
  std::vector<WorkItem> take_ready() override { return std::move(ready_); }

  void settle(const WorkItem& item, const io::EvaluationRow* ok) override {
    if (item.space == partition::kNoSpace) {
      --outstanding_baselines_;
      return;
    }
    auto& race = races_[item.space];
    auto it = race.by_index.find(item.index);
    assert(it != race.by_index.end() && race.pending > 0);
    Candidate& c = race.cands[it->second];
    if (ok) {
      record(c, item, *ok);
    } else {
      c.failed = true;
      c.alive = false;
    }
    if (--race.pending == 0) advance(race);
  }

  bool finished() const override {
    if (outstanding_baselines_ > 0) return false;
    for (std::size_t s : active_) {
      if (races_[s].phase != Phase::Done) return false;
    }
    return true;
  }
  bool space_finished(std::size_t space) const override {
    return space < races_.size() && races_[space].phase == Phase::Done;
  }
  std::pair<std::size_t, std::size_t> spaces_done() const override {
    std::size_t done = 0;
    for (std::size_t s : active_) done += races_[s].phase == Phase::Done;
    return {done, active_.size()};
  }

 private:
  const partition::PlannedSpace& space_of(const SpaceRace& race) const { return plan_.plan.spaces[race.space]; }

  Candidate make_candidate(const partition::PlannedSpace& space, uint64_t index) const {
    Candidate c;
    c.index = index;
    const partition::Setting setting = space.setting_at(index);
    for (const auto& ms : setting) {
      for (const auto& spec : partition::method_params(ms.method)) {
        auto v = ms.params.find(spec.name);
        if (v == ms.params.end()) continue;
        const double value = v->is_boolean() ? (v->get<bool>() ? 1.0 : 0.0) : v->get<double>();
        c.axes.push_back(spec.aggressive != 0 ? spec.aggressive * value : value);
        c.directed.push_back(spec.aggressive != 0);
      }
    }
    return c;
  }

  // Mixed-radix place values of a space's methods (the last method fastest,
  // as PlannedSpace::setting_at reads an index).
  static std::vector<uint64_t> strides(const partition::PlannedSpace& space) {
    std::vector<uint64_t> stride(space.choices.size(), 1);
    for (std::size_t m = space.choices.size(); m-- > 1;) stride[m - 1] = stride[m] * space.choices[m].size();
    return stride;
  }

  void add(SpaceRace& race, Candidate c) {
    race.by_index[c.index] = race.cands.size();
    race.cands.push_back(std::move(c));
  }

  void start(SpaceRace& race) {
    const auto& space = space_of(race);
    if (race.components.empty()) {
      for (uint64_t i = 0; i < space.size; ++i) add(race, make_candidate(space, i));
    } else {
      seed_from_fronts(race);
    }
    if (race.exhaustive) {
      race.round = schedule_.size() - 1;
      race.phase = Phase::Racing;
      issue(race, 0, options_.samples, [](const Candidate&) { return true; });
      if (race.pending == 0) advance(race);
      return;
    }
    if (!race.components.empty() && fo_.calibration > 0 &&
        race.cands.size() > static_cast<std::size_t>(2 * fo_.calibration)) {
      // Measure a spread of predicted speedups in full first; the model
      // fitted on them then predicts the rest, and prunes what it can.
      std::vector<std::size_t> order(race.cands.size());
      for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](std::size_t a, std::size_t b) { return race.cands[a].predicted < race.cands[b].predicted; });
      const std::size_t k = static_cast<std::size_t>(fo_.calibration);
      for (std::size_t j = 0; j < k; ++j) race.cands[order[j * (order.size() - 1) / (k > 1 ? k - 1 : 1)]].calibration = true;
      race.phase = Phase::Calibrating;
      race.round = 0;
      issue(race, 0, options_.samples, [](const Candidate& c) { return c.calibration; });
      if (race.pending == 0) advance(race);
      return;
    }
    race.phase = Phase::Racing;
    race.round = 0;
    issue(race, 0, schedule_[0], [](const Candidate&) { return true; });
    if (race.pending == 0) advance(race);
  }

  // A combination's candidates: the product of its methods' survivors, with
  // the product of their measured speedups, and the loss of independent
  // losses (1 - prod(1 - l)), as the model's raw predictions.
  void seed_from_fronts(SpaceRace& race) {
    const auto& space = space_of(race);
    std::vector<std::vector<const Candidate*>> fronts;
    for (std::size_t c : race.components) {
      std::vector<const Candidate*> front;
      for (const auto& cand : races_[c].cands) {
        if (cand.combining && cand.measured_to == options_.samples) front.push_back(&cand);
      }
      fronts.push_back(front);
    }
    const std::vector<uint64_t> stride = strides(space);
    std::vector<std::size_t> at(fronts.size(), 0);
    for (const auto& f : fronts) {
      if (f.empty()) return;  // a method with no surviving setting: nothing to combine
    }
    while (true) {
      uint64_t index = 0;
      double predicted = 1, kept = 1;
      std::vector<double> parts;
      for (std::size_t m = 0; m < fronts.size(); ++m) {
        index += fronts[m][at[m]]->index * stride[m];
        parts.push_back(speed(*fronts[m][at[m]]));
        predicted *= parts.back();
        kept *= 1 - full_loss(*fronts[m][at[m]]);
      }
      Candidate c = make_candidate(space, index);
      c.parts = std::move(parts);
      c.predicted = predicted;
      c.predicted_loss = 1 - kept;
      add(race, std::move(c));
      std::size_t m = fronts.size();
      while (m-- > 0) {
        if (++at[m] < fronts[m].size()) break;
        at[m] = 0;
      }
      if (m == static_cast<std::size_t>(-1)) break;
    }
    std::stable_sort(race.cands.begin(), race.cands.end(),
                     [](const Candidate& a, const Candidate& b) { return a.index < b.index; });
    race.by_index.clear();
    for (std::size_t i = 0; i < race.cands.size(); ++i) race.by_index[race.cands[i].index] = i;
  }

  template <typename Pick>
  void issue(SpaceRace& race, int begin, int end, Pick pick) {
    const auto& space = space_of(race);
    for (auto& c : race.cands) {
      if (!c.alive || c.measured_to != begin || !pick(c)) continue;
      ready_.push_back(make_work_item(plan_.plan, race.space, c.index, space.baseline, begin, end));
      ++race.pending;
    }
  }

  void record(Candidate& c, const WorkItem& item, const io::EvaluationRow& row) {
    const auto n = static_cast<std::size_t>(options_.samples);
    if (c.base.size() < n) c.base.resize(n, kNaN), c.acc.resize(n, kNaN);
    for (const auto& p : row.prompts) {
      if (p.prompt_index < 0 || static_cast<std::size_t>(p.prompt_index) >= n) continue;
      const QualityScores q = quality_scores(options_.quality, p);
      c.base[p.prompt_index] = q.base;
      c.acc[p.prompt_index] = q.acc;
    }
    c.time_base += row.time_base_s;
    c.time_acc += row.time_acc_s;
    c.macs_base += static_cast<double>(row.macs_base);
    c.macs_acc += static_cast<double>(row.macs_acc);
    c.measured_to = item.prompt_end;
  }

  // The loss over every prompt measured.
  double full_loss(const Candidate& c) const {
    double b = 0, a = 0;
    for (int p = 0; p < c.measured_to; ++p) b += c.base[p], a += c.acc[p];
    return b > 0 ? (b - a) / b : 0.0;
  }

  double speed(const Candidate& c) const {
    if (c.measured_to == 0) return c.predicted;
    if (options_.speed_measure == "macs") return c.macs_acc > 0 ? c.macs_base / c.macs_acc : 1.0;
    return c.time_acc > 0 ? c.time_base / c.time_acc : 1.0;
  }
  // Relative uncertainty of speed(): none at full fidelity, the tolerance on
  // a prompt prefix, the model's margin when predicted.
  double speed_uncertainty(const SpaceRace& race, const Candidate& c) const {
    if (c.measured_to >= options_.samples) return 0;  // what exhaustive measures, exactly
    return c.measured_to > 0 ? fo_.speed_tolerance : std::max(race.margin, fo_.speed_tolerance);
  }

  // The speedup's sure bounds: what the full prompt list can still measure.
  double speed_lo(const SpaceRace& race, const Candidate& c) const { return speed(c) / (1 + speed_uncertainty(race, c)); }
  double speed_hi(const SpaceRace& race, const Candidate& c) const { return speed(c) * (1 + speed_uncertainty(race, c)); }

  // Whether B is at least as fast as A and surely reaches every target A
  // might reach (within the measurement tolerance or the speed model's
  // margin): then if B's loss is lower, A is never the answer of any rule.
  bool covers(const SpaceRace& race, const Candidate& b, const Candidate& a) const {
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

  // Faster by more than kCombiningSpeedGap: what removes a setting from a
  // combining front.
  bool clearly_faster(const Candidate& b, const Candidate& a) const {
    return speed(b) > speed(a) * (1 + std::max(fo_.speed_tolerance, kCombiningSpeedGap));
  }

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
  bool beyond_reach_settled(const SpaceRace& race, const TargetView& v, int k, double hi, double lower) const {
    for (std::size_t j = static_cast<std::size_t>(k + 1); j < race.targets.size(); ++j) {
      if (v.surely_feasible[j]) continue;
      if (!(speedup_shortfall(hi, lower, race.targets[j], race.loss_max) > v.nearest[j])) return false;
    }
    return true;
  }

  // The index of the highest target A might reach; -1 when none.
  int highest_reachable(const SpaceRace& race, const Candidate& a) const {
    const double hi = speed_hi(race, a);
    int k = -1;
    for (std::size_t j = 0; j < race.targets.size(); ++j) {
      if (hi >= race.targets[j]) k = static_cast<int>(j);
    }
    return k;
  }

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

  static bool less_aggressive(const Candidate& b, const Candidate& a) {
    if (b.index == a.index || b.axes.size() != a.axes.size()) return false;
    for (std::size_t i = 0; i < a.axes.size(); ++i) {
      if (a.directed[i] ? b.axes[i] > a.axes[i] : b.axes[i] != a.axes[i]) return false;
    }
    return true;
  }

  // Per-prompt losses of c over [0, n), relative to its baseline's mean.
  std::vector<double> prompt_losses(const Candidate& c, int n, double base_mean) const {
    std::vector<double> l(static_cast<std::size_t>(n));
    for (int p = 0; p < n; ++p) l[p] = (c.base[p] - c.acc[p]) / base_mean;
    return l;
  }
  static double base_mean(const Candidate& c, int n) {
    double s = 0;
    for (int p = 0; p < n; ++p) s += c.base[p];
    return n > 0 ? s / n : 1.0;
  }

  // The combination model, fitted on the calibration settings measured in
  // full (coordinator/combination_model.h): log speedup linear in the log
  // of the components' composed speedup, loss linear in the composed loss.
  // Margins: kModelMarginFactor times the worst leave-one-out errors (at
  // least --speed-margin for speedups).
  void fit_model(SpaceRace& race) {
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

  // The loss margin at the smallest loss bound the space serves (traces).
  static double loss_margin_at_bound(const SpaceRace& race) {
    return race.loss_margin * race.loss_fit.scale(race.loss_min);
  }
  // How far c's measured loss can be from the model's prediction.
  static double predicted_loss_margin(const SpaceRace& race, const Candidate& c) {
    return race.loss_margin * race.loss_fit.scale(c.predicted_loss);
  }

  // The unmeasured candidates on the Pareto front of the model's point
  // predictions (speedup up, loss down), fastest first.
  std::vector<std::size_t> predicted_front(const SpaceRace& race) const {
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

  // Before a combination costs an image: out when another (measured or
  // predicted) surely covers its speed with a surely lower loss, or, under
  // the monotone assumption, is less aggressive and surely covers its speed.
  void prune_by_prediction(SpaceRace& race) {
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
    // B (alive) drops A: surely lower, or surely at most --loss-tolerance
    // above it (Candidate::absorbed, as in dominated()).
    auto drops = [&](Candidate& b, const Candidate& a) {
      if (loss_hi(b) < loss_lo(a)) {
        b.absorbed = b.absorbed || a.absorbed;
        return true;
      }
      if (fo_.loss_tolerance <= 0 || a.absorbed || point_loss(b) > point_loss(a) ||
          !(loss_hi(b) < loss_lo(a) + fo_.loss_tolerance)) {
        return false;
      }
      b.absorbed = true;
      return true;
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

  // After a round every live candidate has prompts [0, n): drop those that
  // another surely dominates, or whose loss surely rules them out.
  void eliminate(SpaceRace& race, int n) {
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

  // Which of `live` (all measured on [0, n)) another surely dominates or
  // whose loss surely rules out. `exact_at_full`: bounds on what the full
  // prompt list will measure (exact at n = all); else on the true means.
  // `absorbed` (per candidate, read and updated): Candidate::absorbed, for
  // drops within --loss-tolerance; null: strict drops only.
  std::vector<bool> dominated(const SpaceRace& race, const std::vector<std::size_t>& live, int n, bool exact_at_full,
                              std::vector<bool>* absorbed = nullptr) {
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
    // B's loss surely below A's: the pair's paired differences, or the
    // pooled spread (the pair's spread is at most the sum of the two).
    std::vector<double> diff(static_cast<std::size_t>(n));
    // B's loss surely below A's plus `tol` (and, with a tolerance, B's
    // estimate at most A's: the tolerance keeps the better-looking one).
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
    // the tolerance above it. A setting that stands for a drop within the
    // tolerance is dropped only by a live one, which then stands for it.
    // Not in the last round: keeping a near-tie measured in full costs
    // nothing, and the exhaustive rule then picks the better one.
    const double tol = absorbed && n < total ? fo_.loss_tolerance : 0.0;
    auto surely_lower = [&](std::size_t bi, std::size_t ai) {
      const bool a_absorbed = absorbed && (*absorbed)[ai];
      if (a_absorbed && out[bi]) return false;
      if (surely_below(bi, ai, 0)) {
        if (a_absorbed) (*absorbed)[bi] = true;
        return true;
      }
      if (tol <= 0 || a_absorbed || out[bi] || !surely_below(bi, ai, tol)) return false;
      (*absorbed)[bi] = true;
      return true;
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

  void advance(SpaceRace& race) {
    while (race.pending == 0 && race.phase != Phase::Done) {
      if (race.phase == Phase::Calibrating) {
        fit_model(race);
        // Scouts: the front of the point predictions, measured in full, so
        // that the rest are pruned against exact losses, not predicted ones.
        race.phase = Phase::Scouting;
        if (std::isfinite(race.loss_margin)) {
          const auto scouts = predicted_front(race);
          for (std::size_t i : scouts) race.cands[i].calibration = true;
          issue(race, 0, options_.samples, [](const Candidate& c) { return c.calibration; });
          if (trace_) {
            std::fprintf(stderr, "frontier trace %s: %zu candidates, model margins %.3f %.4f, %zu scouts\n",
                         space_of(race).key().c_str(), race.cands.size(), race.margin, loss_margin_at_bound(race),
                         scouts.size());
          }
        }
        continue;
      }
      if (race.phase == Phase::Scouting) {
        prune_by_prediction(race);
        race.phase = Phase::Racing;
        issue(race, 0, schedule_[0], [](const Candidate&) { return true; });
        continue;
      }
      const int n = race.exhaustive ? options_.samples : schedule_[race.round];
      if (!race.exhaustive) eliminate(race, n);
      if (trace_) {
        std::size_t alive = 0, measured = 0;
        for (const auto& c : race.cands) alive += c.alive, measured += c.measured_to >= n;
        std::fprintf(stderr,
                     "frontier trace %s: round to %d prompts: %zu candidates, %zu measured, %zu alive, margins %.3f "
                     "%.4f, %zu pruned by prediction so far\n",
                     space_of(race).key().c_str(), n, race.cands.size(), measured, alive, race.margin,
                     loss_margin_at_bound(race), pruned_);
      }
      if (n >= options_.samples && polish(race)) continue;
      if (n >= options_.samples) {
        race.phase = Phase::Done;
        for (std::size_t d : race.dependents) {
          auto& dep = races_[d];
          bool ready = dep.phase == Phase::Waiting;
          for (std::size_t c : dep.components) ready = ready && races_[c].phase == Phase::Done;
          if (ready) start(dep);
        }
        return;
      }
      ++race.round;
      issue(race, n, schedule_[race.round], [](const Candidate&) { return true; });
    }
  }

  // After a combination's last round: its survivors' neighbours in the whole
  // product (one method's setting moved one step along one parameter) that
  // were never candidates, or that the model pruned before an image, join a
  // new race against them, up to --polish rounds. This is what the "combinations from fronts" assumption
  // misses: a setting that its method's front dropped alone but that wins
  // beside the others (a T-GATE interval whose speed order flips beside
  // DeepCache's partial steps). Returns whether a new race started.
  bool polish(SpaceRace& race) {
    if (race.components.empty() || race.polish_rounds >= fo_.polish) return false;
    ++race.polish_rounds;
    const auto& space = space_of(race);
    const std::vector<uint64_t> stride = strides(space);
    std::vector<std::vector<std::vector<uint64_t>>> near;
    for (const auto& choices : space.choices) near.push_back(partition::one_step_neighbours(choices));
    std::set<uint64_t> fresh, revived;
    for (auto& c : race.cands) {
      if (!c.alive || c.polished || c.measured_to < options_.samples) continue;
      c.polished = true;
      for (std::size_t m = 0; m < stride.size(); ++m) {
        const uint64_t own = c.index / stride[m] % space.choices[m].size();
        for (uint64_t j : near[m][own]) {
          const uint64_t index = c.index - own * stride[m] + j * stride[m];
          auto it = race.by_index.find(index);
          // New, or pruned by the model's prediction without an image: near
          // an answer the model's error matters most.
          if (it == race.by_index.end()) fresh.insert(index);
          else if (const Candidate& x = race.cands[it->second]; !x.alive && !x.failed && x.measured_to == 0) revived.insert(index);
        }
      }
    }
    if (fresh.empty() && revived.empty()) return false;
    for (uint64_t index : revived) race.cands[race.by_index[index]].alive = true;
    for (uint64_t index : fresh) add(race, make_candidate(space, index));
    if (trace_) {
      std::fprintf(stderr, "frontier trace %s: polish round %d, %zu neighbours of the survivors join, %zu pruned by "
                   "prediction return\n", space.key().c_str(), race.polish_rounds, fresh.size(), revived.size());
    }
    race.round = 0;
    issue(race, 0, schedule_[0], [](const Candidate&) { return true; });
    return true;
  }

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

}  // namespace

std::unique_ptr<SearchStrategy> make_frontier_strategy(const SearchOptions& options, const SearchPlan& plan) {
  options.frontier.validate(options.samples);
  return std::make_unique<FrontierStrategy>(options, plan);
}

}  // namespace diffsearch::coordinator
