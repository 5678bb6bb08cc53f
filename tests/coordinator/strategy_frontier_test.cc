// The frontier strategy against the exhaustive one on synthetic landscapes:
// the same answers (all of them on a noise-free monotone landscape), far
// fewer GPU-seconds, deterministic, and every knob doing what it says.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "coordinator/distill.h"
#include "coordinator/evaluators.h"
#include "coordinator/search.h"
#include "coordinator/simulate.h"
#include "coordinator/strategy_frontier.h"
#include "io/error.h"
#include "partition/grid.h"

namespace diffsearch::coordinator {
namespace {

// Category 4's tasks of one model, sampler and step count: all six method
// combinations at all seven ratios.
std::vector<partition::Task> slice(const std::string& filter) {
  std::vector<partition::Task> out;
  for (const auto& t : partition::make_grid(4)) {
    if (partition::task_key(t).find(filter) != std::string::npos) out.push_back(t);
  }
  return out;
}

SearchOptions base_options(const std::string& evaluator, const std::string& strategy) {
  SearchOptions o;
  o.tasks = slice("sd15/ddim/20/");
  o.samples = 16;
  o.frontier.race_prompts = {4, 8};
  // A reduced space (the defaults' shape, fewer values) keeps the exhaustive
  // side of the comparison quick.
  o.space_json = nlohmann::json::parse(R"({
    "deepcache": {"cache_interval": [2, 3, 4, 5, 6, 8], "cache_branch_id": [0, 1, 2, 3]},
    "tome": {"ratio": [0.1, 0.3, 0.5, 0.7], "max_downsample": [1, 2]},
    "tgate": {"gate_step_fraction": [0.2, 0.4, 0.6, 0.8], "sp_interval": [1, 3], "warm_up": [0, 2]}})");
  o.space_source = "test space";
  o.prompts = {"a cat", "a dog", "a red house", "a bowl of fruit"};
  o.evaluator = evaluator;
  o.strategy = strategy;
  return o;
}

// The frontier on a noise-free landscape over the documented default spaces
// (not the reduced test space) and 32 prompts, for the tasks of `filter`.
SearchOptions default_spaces_noise_free(const std::string& filter) {
  auto o = base_options("synthetic:noise=0,jitter=0", "frontier");
  o.tasks = slice(filter);
  o.space_json = nlohmann::json();
  o.space_source.clear();
  o.samples = 32;
  return o;
}

struct Outcome {
  nlohmann::json answers;
  double gpu_seconds = 0;
  std::size_t items = 0;
  std::set<std::string> measured;  // unit keys with at least one row
};

Outcome run(const SearchOptions& o) {
  const SearchPlan plan = make_search_plan(o);
  auto evaluator = make_evaluator(o.evaluator, 0);
  const Simulation sim = simulate_search(o, plan, *evaluator);
  io::ResultsContents contents;
  contents.config = search_config(o, plan.plan);
  contents.rows = sim.rows;
  Outcome out{distill(contents, o.tasks), sim.gpu_seconds, sim.items, {}};
  for (const auto& r : sim.rows) out.measured.insert(r.unit_key);
  return out;
}

struct Comparison {
  std::size_t tasks = 0, identical = 0, infeasible_differing = 0;
  double worst_excess = 0;
  std::string differing;  // for failure messages
};

Comparison compare(const nlohmann::json& frontier, const nlohmann::json& exhaustive) {
  Comparison c;
  for (const auto& [key, e] : exhaustive.items()) {
    if (key[0] == '_') continue;
    const auto& f = frontier.at(key);
    ++c.tasks;
    EXPECT_NE(f.at("status"), "not_measured") << key;
    if (f.at("status") == e.at("status") && f.at("params") == e.at("params")) {
      ++c.identical;
      continue;
    }
    c.differing += key + ": frontier " + f.at("status").dump() + " " + f.at("params").dump() + " " +
                   f.at("speedup").dump() + "/" + f.at("score_loss").dump() + ", exhaustive " + e.at("status").dump() +
                   " " + e.at("params").dump() + " " + e.at("speedup").dump() + "/" + e.at("score_loss").dump() + "\n";
    if (f.at("status") != "ok") {
      ++c.infeasible_differing;
      continue;
    }
    const auto task = partition::parse_task(f.at("task").get<std::string>());
    EXPECT_GE(f.at("speedup").get<double>(), task.speedup.value_or(0)) << key;
    EXPECT_LE(f.at("score_loss").get<double>(), task.max_score_loss) << key;
    if (e.at("status") == "ok") {
      c.worst_excess = std::max(c.worst_excess, f.at("score_loss").get<double>() - e.at("score_loss").get<double>());
    }
  }
  return c;
}

TEST(FrontierStrategy, NoiseFreeMonotoneLandscapeGivesExactlyTheExhaustiveAnswers) {
  const std::string evaluator = "synthetic:noise=0,jitter=0";
  const Outcome exhaustive = run(base_options(evaluator, "exhaustive"));
  const Outcome frontier = run(base_options(evaluator, "frontier"));
  const Comparison c = compare(frontier.answers, exhaustive.answers);
  EXPECT_EQ(c.tasks, 42u);
  EXPECT_EQ(c.identical, c.tasks) << c.differing;
  // The reduced space is small; on category 4's default spaces the saving
  // is over 100x (bench/search_cost.cc, docs/search.md).
  EXPECT_LT(frontier.gpu_seconds * 5, exhaustive.gpu_seconds)
      << frontier.gpu_seconds << " against " << exhaustive.gpu_seconds;
  // The answers' numbers are full-fidelity measurements, as exhaustive's.
  for (const auto& [key, e] : exhaustive.answers.items()) {
    if (key[0] == '_' || e.at("status") != "ok") continue;
    EXPECT_NEAR(frontier.answers.at(key).at("score_loss").get<double>(), e.at("score_loss").get<double>(), 1e-12) << key;
    EXPECT_NEAR(frontier.answers.at(key).at("speedup").get<double>(), e.at("speedup").get<double>(), 1e-9) << key;
  }
  EXPECT_EQ(frontier.answers.at("_strategy"), "frontier");
  EXPECT_EQ(exhaustive.answers.at("_strategy"), "exhaustive");
}

TEST(FrontierStrategy, NoisyLandscapeKeepsAnswersFeasibleAndClose) {
  for (const std::string evaluator : {"synthetic:seed=1", "synthetic:seed=2,noise=2", "synthetic:seed=3,bumps=0.1"}) {
    const Outcome exhaustive = run(base_options(evaluator, "exhaustive"));
    const Outcome frontier = run(base_options(evaluator, "frontier"));
    const Comparison c = compare(frontier.answers, exhaustive.answers);
    // Regression guards: the acceptance numbers (category 4, 32 prompts)
    // are the benchmark's (bench/bench_search_cost.cc, docs/search.md).
    EXPECT_GE(c.identical * 100, c.tasks * 75) << evaluator << ": " << c.identical << "/" << c.tasks << "\n"
                                               << c.differing;
    EXPECT_LE(c.worst_excess, 0.005) << evaluator;
    EXPECT_LT(frontier.gpu_seconds * 3, exhaustive.gpu_seconds) << evaluator;
  }
}

// --loss-tolerance: near-ties stop racing once one surely loses at most the
// tolerance more; every answer stays within it of exhaustive's pick, for
// fewer GPU-seconds. (These landscapes do not build the chains of drops the
// one-hop rule guards against: OneHopRule below checks it.)
TEST(FrontierStrategy, LossToleranceBoundsTheExcessAndSaves) {
  for (const std::string evaluator : {"synthetic:seed=1", "synthetic:seed=2,noise=2"}) {
    const Outcome exhaustive = run(base_options(evaluator, "exhaustive"));
    auto o = base_options(evaluator, "frontier");
    const Outcome exact = run(o);
    o.frontier.loss_tolerance = 0.004;
    const Outcome tolerant = run(o);
    const Comparison c = compare(tolerant.answers, exhaustive.answers);
    EXPECT_LE(c.worst_excess, 0.004) << evaluator << "\n" << c.differing;
    EXPECT_LT(tolerant.gpu_seconds, exact.gpu_seconds) << evaluator;
    EXPECT_EQ(tolerant.answers.at("_config").at("frontier").at("loss_tolerance"), 0.004);
    std::printf("%s: exact %.0f s, %zu identical; tolerance 0.004 %.0f s, %zu identical, worst excess %.4f\n",
                evaluator.c_str(), exact.gpu_seconds, compare(exact.answers, exhaustive.answers).identical,
                tolerant.gpu_seconds, c.identical, c.worst_excess);
  }
}

// --loss-tolerance's one hop: a drop within the tolerance marks the dropper,
// and a marked setting goes only strictly, only to a live one, which
// inherits the mark; so no chain adds the tolerance twice.
TEST(FrontierStrategy, OneHopRule) {
  int within_asked = 0;
  auto yes = [] { return true; };
  auto no = [] { return false; };
  auto within = [&] { ++within_asked; return true; };
  // Unmarked A: strictly (B stays unmarked), or within the tolerance (B marked).
  frontier::HopVerdict v = frontier::one_hop_drop(yes, within, false, true);
  EXPECT_TRUE(v.drops && !v.b_absorbs);
  EXPECT_EQ(within_asked, 0) << "a strict drop needs no tolerance";
  v = frontier::one_hop_drop(no, within, false, true);
  EXPECT_TRUE(v.drops && v.b_absorbs);
  v = frontier::one_hop_drop(no, no, false, true);
  EXPECT_FALSE(v.drops || v.b_absorbs);
  // Within the tolerance only to a live B.
  within_asked = 0;
  v = frontier::one_hop_drop(no, within, false, false);
  EXPECT_FALSE(v.drops);
  EXPECT_TRUE(frontier::one_hop_drop(yes, within, false, false).drops) << "strict drops need no live B";
  // Marked A: never within the tolerance; strictly only to a live B, which inherits the mark.
  v = frontier::one_hop_drop(no, within, true, true);
  EXPECT_FALSE(v.drops);
  EXPECT_EQ(within_asked, 0);
  v = frontier::one_hop_drop(yes, within, true, true);
  EXPECT_TRUE(v.drops && v.b_absorbs);
  EXPECT_FALSE(frontier::one_hop_drop(yes, within, true, false).drops);
}

TEST(FrontierStrategy, IsDeterministic) {
  auto o = base_options("synthetic:seed=5", "frontier");
  for (double tolerance : {0.0, 0.003}) {
    o.frontier.loss_tolerance = tolerance;
    const Outcome a = run(o), b = run(o);
    EXPECT_EQ(distill_text(a.answers), distill_text(b.answers)) << tolerance;
    EXPECT_EQ(a.items, b.items) << tolerance;
  }
}

// Each assumption can be turned off; without it the search measures more
// and, on a landscape where the assumptions hold, answers the same.
TEST(FrontierStrategy, KnobsTurnAssumptionsOff) {
  const std::string evaluator = "synthetic:noise=0,jitter=0";
  auto o = base_options(evaluator, "frontier");
  o.frontier.assume_monotone = true;
  const Outcome with = run(o);
  o.frontier.assume_monotone = false;
  const Outcome no_monotone = run(o);
  o.frontier.assume_monotone = true;
  o.frontier.combine = "product";
  const Outcome product = run(o);
  o.frontier.combine = "fronts";
  o.frontier.calibration = 0;
  const Outcome no_model = run(o);
  for (const Outcome* x : {&no_monotone, &product, &no_model}) {
    EXPECT_EQ(compare(x->answers, with.answers).identical, 42u) << compare(x->answers, with.answers).differing;
  }
  EXPECT_GT(product.gpu_seconds, 2 * with.gpu_seconds);
  EXPECT_GT(no_model.gpu_seconds, with.gpu_seconds);
}

// Answers by target: a setting matters only as the least loss among those
// reaching a target, or as the nearest point of an infeasible one; the
// staircase of front points between two targets is not measured in full.
TEST(FrontierStrategy, MeasuresInFullOnlyWhatTheTargetsCanPick) {
  const std::string evaluator = "synthetic:noise=0,jitter=0";
  auto targeted = base_options(evaluator, "frontier");
  targeted.tasks = slice("sd15/ddim/20/deepcache/x2.0/");
  ASSERT_EQ(targeted.tasks.size(), 1u);
  auto full_units = [](const SearchOptions& o) {
    const SearchPlan plan = make_search_plan(o);
    auto evaluator = make_evaluator(o.evaluator, 0);
    const Simulation sim = simulate_search(o, plan, *evaluator);
    std::set<std::string> full;
    for (const auto& r : sim.rows) {
      if (r.prompt_end == o.samples) full.insert(r.unit_key);
    }
    return full.size();
  };
  // The same space serving a task without a target (the fastest setting
  // within the bound) must keep its whole front.
  auto untargeted = targeted;
  untargeted.tasks[0].speedup.reset();
  const std::size_t by_target = full_units(targeted), whole_front = full_units(untargeted);
  EXPECT_LE(by_target, 2u);
  EXPECT_GT(whole_front, by_target + 2);
  // A target nothing meets within a tight bound: its answer is the nearest
  // point, which may be slower than the target, so slower settings stay.
  auto infeasible = targeted;
  infeasible.tasks[0].max_score_loss = 0.0005;
  for (const auto* o : {&targeted, &untargeted, &infeasible}) {
    auto exhaustive = *o;
    exhaustive.strategy = "exhaustive";
    const Outcome e = run(exhaustive);
    const Comparison c = compare(run(*o).answers, e.answers);
    EXPECT_EQ(c.identical, 1u) << c.differing;
    if (o == &infeasible) {
      EXPECT_EQ(e.answers.at(partition::task_key(o->tasks[0])).at("status"), "infeasible");
    }
  }
}

// The default spaces of one baseline, where a combination's speeds order
// differently than its methods' alone and the combination model misses by
// more than its held-out error: the wider combining fronts and margins keep
// every answer (docs/search.md, "The steps").
TEST(FrontierStrategy, DefaultSpacesNoiseFreeGiveTheExhaustiveAnswers) {
  auto o = default_spaces_noise_free("sd15/dpmsolver++/25/");
  o.frontier.race_prompts = {4, 8, 16};
  auto exhaustive = o;
  exhaustive.strategy = "exhaustive";
  const Outcome f = run(o), e = run(exhaustive);
  const Comparison c = compare(f.answers, e.answers);
  EXPECT_EQ(c.tasks, 42u);
  EXPECT_EQ(c.identical, c.tasks) << c.differing;
  // 292x with the loss model whose margin grows with the loss; 187x with the
  // earlier one absolute margin per space (docs/search.md, step 4).
  EXPECT_LT(f.gpu_seconds * 250, e.gpu_seconds) << f.gpu_seconds << " against " << e.gpu_seconds;
}

// Polishing: after a combination's race, every one-step neighbour of its
// survivors in the whole product (outside its methods' fronts, or pruned by
// the combination model before an image) has raced too. Without it some
// answers' neighbours were never measured, and exhaustive's answer can be
// one of them (docs/search.md, "The steps").
TEST(FrontierStrategy, PolishingMeasuresEveryNeighbourOfTheAnswers) {
  auto o = default_spaces_noise_free("sd15/ddim/25/deepcache+tgate/");
  const SearchPlan plan = make_search_plan(o);
  const partition::PlannedSpace* space = nullptr;
  for (const auto& sp : plan.plan.spaces) {
    if (sp.methods.size() == 2) space = &sp;
  }
  ASSERT_NE(space, nullptr);
  std::map<std::string, uint64_t> index_of;
  for (uint64_t i = 0; i < space->size; ++i) index_of[partition::setting_key(space->setting_at(i))] = i;
  std::vector<std::vector<std::vector<uint64_t>>> near;
  for (const auto& choices : space->choices) near.push_back(partition::one_step_neighbours(choices));
  const uint64_t stride0 = space->choices[1].size();
  // The answers' neighbours that no row measured.
  auto unmeasured_neighbours = [&](const Outcome& f) {
    std::size_t answers = 0, missing = 0;
    for (const auto& [key, a] : f.answers.items()) {
      if (key[0] == '_' || a.at("status") != "ok") continue;
      const auto it = index_of.find(a.at("params").dump());
      EXPECT_NE(it, index_of.end()) << a.at("params").dump();
      if (it == index_of.end()) continue;
      ++answers;
      const uint64_t own[2] = {it->second / stride0, it->second % stride0};
      for (uint64_t j : near[0][own[0]]) missing += !f.measured.count(space->key() + "/" + partition::setting_key(space->setting_at(j * stride0 + own[1])));
      for (uint64_t j : near[1][own[1]]) missing += !f.measured.count(space->key() + "/" + partition::setting_key(space->setting_at(own[0] * stride0 + j)));
    }
    EXPECT_GT(answers, 0u);
    return missing;
  };
  auto unpolished = o;
  unpolished.frontier.polish = 0;
  EXPECT_GT(unmeasured_neighbours(run(unpolished)), 0u) << "without polishing, some neighbours are never measured";
  const Outcome f = run(o);
  EXPECT_EQ(unmeasured_neighbours(f), 0u);
  auto exhaustive = o;
  exhaustive.strategy = "exhaustive";
  const Outcome e = run(exhaustive);
  const Comparison c = compare(f.answers, e.answers);
  EXPECT_EQ(c.tasks, 7u);
  EXPECT_EQ(c.identical, c.tasks) << c.differing;
  EXPECT_LT(f.gpu_seconds * 20, e.gpu_seconds) << f.gpu_seconds << " against " << e.gpu_seconds;
}

TEST(FrontierStrategy, MeasuresInNestedPromptRanges) {
  auto o = base_options("synthetic:seed=7", "frontier");
  const SearchPlan plan = make_search_plan(o);
  auto evaluator = make_evaluator(o.evaluator, 0);
  const Simulation sim = simulate_search(o, plan, *evaluator);
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> ranges;
  for (const auto& r : sim.rows) ranges[r.unit_key].push_back({r.prompt_begin, r.prompt_end});
  std::size_t full = 0;
  for (const auto& [unit, rs] : ranges) {
    int64_t at = 0;
    for (const auto& [b, e] : rs) {
      EXPECT_EQ(b, at) << unit << ": rounds extend the prefix";
      at = e;
    }
    EXPECT_TRUE(at == 4 || at == 8 || at == 16) << unit << " stopped at " << at;
    full += at == 16;
  }
  EXPECT_GT(full, 0u);
  EXPECT_LT(full, ranges.size()) << "some settings leave the race early";
  // Component spaces the tasks did not plan were measured for the fronts.
  EXPECT_GT(plan.plan.spaces.size(), plan.task_spaces - 1);
}

TEST(FrontierOptions, BadKnobsAreRefused) {
  FrontierOptions f;
  f.confidence = 1.0;
  EXPECT_THROW(f.validate(32), InputError);
  f = {};
  f.combine = "sum";
  EXPECT_THROW(f.validate(32), InputError);
  f = {};
  f.race_prompts = {8, 4};
  EXPECT_THROW(f.validate(32), InputError);
  f = {};
  f.polish = -1;
  EXPECT_THROW(f.validate(32), InputError);
  f = {};
  f.loss_tolerance = -0.001;
  EXPECT_THROW(f.validate(32), InputError);
  f.loss_tolerance = 0.5;
  EXPECT_THROW(f.validate(32), InputError);
  f = {};
  EXPECT_EQ(f.schedule(32), (std::vector<int>{4, 8, 16, 32}));
  EXPECT_EQ(f.schedule(10), (std::vector<int>{4, 8, 10}));
  EXPECT_EQ(f.schedule(2), (std::vector<int>{2}));
}

}  // namespace
}  // namespace diffsearch::coordinator
