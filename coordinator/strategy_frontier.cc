// The frontier strategy (docs/search.md): per method space, a race over
// nested prompt prefixes that keeps every setting that could still be on the
// space's speed/quality front, since every answer rule of distill picks a
// point of that front; combinations start from their methods' fronts; a
// speed model fitted on a few timed combinations prunes the rest before
// they cost an image. Spaces advance independently: no global barrier.
// This file: the spaces' phases (seeding, rounds, polishing); the class and
// the other files are named in strategy_frontier.h.
#include "coordinator/strategy_frontier.h"

#include <cassert>
#include <cstdio>
#include <set>

#include "coordinator/strategy_internal.h"
#include "partition/search_space.h"

namespace diffsearch::coordinator::frontier {

FrontierStrategy::FrontierStrategy(const SearchOptions& options, const SearchPlan& plan)
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

void FrontierStrategy::settle(const WorkItem& item, const io::EvaluationRow* ok) {
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

bool FrontierStrategy::finished() const {
  if (outstanding_baselines_ > 0) return false;
  for (std::size_t s : active_) {
    if (races_[s].phase != Phase::Done) return false;
  }
  return true;
}

bool FrontierStrategy::space_finished(std::size_t space) const {
  return space < races_.size() && races_[space].phase == Phase::Done;
}

std::pair<std::size_t, std::size_t> FrontierStrategy::spaces_done() const {
  std::size_t done = 0;
  for (std::size_t s : active_) done += races_[s].phase == Phase::Done;
  return {done, active_.size()};
}

Candidate FrontierStrategy::make_candidate(const partition::PlannedSpace& space, uint64_t index) const {
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

std::vector<uint64_t> FrontierStrategy::strides(const partition::PlannedSpace& space) {
  std::vector<uint64_t> stride(space.choices.size(), 1);
  for (std::size_t m = space.choices.size(); m-- > 1;) stride[m - 1] = stride[m] * space.choices[m].size();
  return stride;
}

void FrontierStrategy::add(SpaceRace& race, Candidate c) {
  race.by_index[c.index] = race.cands.size();
  race.cands.push_back(std::move(c));
}

void FrontierStrategy::start(SpaceRace& race) {
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

void FrontierStrategy::seed_from_fronts(SpaceRace& race) {
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

void FrontierStrategy::record(Candidate& c, const WorkItem& item, const io::EvaluationRow& row) {
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

void FrontierStrategy::advance(SpaceRace& race) {
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

bool FrontierStrategy::polish(SpaceRace& race) {
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

}  // namespace diffsearch::coordinator::frontier

namespace diffsearch::coordinator {

std::unique_ptr<SearchStrategy> make_frontier_strategy(const SearchOptions& options, const SearchPlan& plan) {
  options.frontier.validate(options.samples);
  return std::make_unique<frontier::FrontierStrategy>(options, plan);
}

}  // namespace diffsearch::coordinator
