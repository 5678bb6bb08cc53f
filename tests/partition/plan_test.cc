// Tests of the planner: deduplicated units and shared baselines for the
// grids, the cost model, and the longest-processing-time-first balance.
#include "partition/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "io/error.h"
#include "partition/grid.h"

namespace diffsearch::partition {
namespace {

TEST(Plan, CategoryFourHas162SpacesAnd27Baselines) {
  const Plan plan = make_plan(make_grid(4));
  EXPECT_EQ(plan.tasks.size(), 1134u);
  EXPECT_EQ(plan.spaces.size(), 162u);
  EXPECT_EQ(plan.baselines.size(), 27u);
  // Targets do not multiply units: each space serves its 7 ratios.
  std::uint64_t expected_units = 0;
  for (const auto& space : plan.spaces) {
    EXPECT_EQ(space.tasks.size(), 7u) << space.key();
    EXPECT_EQ(space.size, count_settings(space.model, space.steps, space.methods));
    expected_units += space.size;
  }
  EXPECT_EQ(plan.units.size(), expected_units);
  EXPECT_EQ(plan.units_without_dedup, 7 * expected_units);
  // Per (sampler, steps): SD1.5 and SD2.1 89168 settings, SDXL 66893.
  EXPECT_EQ(expected_units, 9u * (2u * 89168u + 66893u));
  // Every method of a (model, sampler, steps) shares one baseline.
  std::set<size_t> baselines_used;
  for (const auto& space : plan.spaces) baselines_used.insert(space.baseline);
  EXPECT_EQ(baselines_used.size(), 27u);
}

TEST(Plan, BasicTasksNeedOnlyBaselines) {
  const Plan plan = make_plan(make_grid(1));
  EXPECT_EQ(plan.spaces.size(), 0u);
  EXPECT_EQ(plan.units.size(), 0u);
  EXPECT_EQ(plan.baselines.size(), 27u);
  for (size_t s : plan.task_space) EXPECT_EQ(s, kNoSpace);
}

TEST(Plan, CostModel) {
  EXPECT_DOUBLE_EQ(unet_step_cost(Model::SD15, 512), 1.0);
  EXPECT_DOUBLE_EQ(unet_step_cost(Model::SD21, 768), 2.7);
  EXPECT_DOUBLE_EQ(unet_step_cost(Model::SDXL, 1024), 8.4);
  EXPECT_DOUBLE_EQ(unet_step_cost(Model::SD15, 1024), 4.0);  // pixel count

  Task t = parse_task(
      "Generate a SDXL pipeline using the DDIM sampler with 20 steps, accelerated by ToMe");
  PlanOptions options;
  options.samples = 8;
  const Plan plan = make_plan({t}, options);
  ASSERT_EQ(plan.baselines.size(), 1u);
  EXPECT_DOUBLE_EQ(plan.baselines[0].cost, 8.4 * 20 * 8);
  ASSERT_EQ(plan.spaces.size(), 1u);
  EXPECT_EQ(plan.spaces[0].size, 14u);
  EXPECT_DOUBLE_EQ(plan.total_cost, 15 * 8.4 * 20 * 8);
  EXPECT_EQ(plan.baselines[0].key(), "sdxl/ddim/20/1024px");

  options.resolution[Model::SDXL] = 512;
  const Plan small = make_plan({t}, options);
  EXPECT_DOUBLE_EQ(small.baselines[0].cost, 8.4 / 4 * 20 * 8);
  EXPECT_EQ(small.baselines[0].key(), "sdxl/ddim/20/512px");

  options.resolution[Model::SDXL] = 500;
  EXPECT_THROW(make_plan({t}, options), InputError);
  options.resolution.clear();
  options.samples = 0;
  EXPECT_THROW(make_plan({t}, options), InputError);
}

TEST(Plan, UnitsEnumerateTheSpaceInOrder) {
  const Task t = parse_task(
      "Generate a SD1.5 pipeline using DDIM with 25 steps, accelerated by DeepCache and T-Gate "
      "with 2x speedup");
  const Plan plan = make_plan({t});
  const auto settings = enumerate_settings(Model::SD15, 25, t.methods);
  ASSERT_EQ(plan.units.size(), settings.size());
  std::set<std::string> keys;
  for (size_t i = 0; i < settings.size(); ++i) {
    EXPECT_EQ(plan.unit_setting(plan.units[i]), settings[i]);
    keys.insert(plan.unit_key(plan.units[i]));
  }
  EXPECT_EQ(keys.size(), settings.size());
  EXPECT_EQ(plan.unit_key(plan.units[0]),
            "sd15/ddim/25/512px/deepcache+tgate/"
            R"({"deepcache":{"cache_branch_id":0,"cache_interval":2},)"
            R"("tgate":{"fi_interval":1,"gate_step":3,"sp_interval":1,"warm_up":0}})");
}

TEST(Plan, DuplicatesPlatformsAndSpaceOverrides) {
  const std::string dc =
      "Generate a SD1.5 pipeline using DDIM with 50 steps, accelerated by DeepCache";
  const std::vector<Task> tasks = {
      parse_task(dc + " with 2x speedup"),
      parse_task(dc + " with 2x speedup"),  // duplicate: planned once
      parse_task(dc + " with 3x speedup"),
      parse_task(dc + " with 1s latency on \"NVIDIA H200\""),
      parse_task("Generate a SD1.5 pipeline using DDIM with 50 steps"),
  };
  PlanOptions options;
  options.space = space_config_from_json(
      nlohmann::json::parse(R"({"deepcache": {"cache_interval": [3], "cache_branch_id": [0, 1]}})"),
      "space.json");
  const Plan plan = make_plan(tasks, options);
  EXPECT_EQ(plan.tasks.size(), 4u);
  // The platform task is measured on its GPU: a space and baseline of its own.
  EXPECT_EQ(plan.spaces.size(), 2u);
  EXPECT_EQ(plan.baselines.size(), 2u);
  EXPECT_EQ(plan.units.size(), 4u);
  EXPECT_EQ(plan.task_baseline[3], plan.task_baseline[0]);  // the basic task shares it
  EXPECT_EQ(plan.baselines[1].key(), "sd15/ddim/50/512px@NVIDIA_H200");
}

TEST(Balance, LptLoadsAddUpAndStayWithinGrahamsBound) {
  const Plan plan = make_plan(make_grid(3), [] {
    PlanOptions o;
    o.space = space_config_from_json(nlohmann::json::parse(R"({
      "deepcache": {"cache_interval": [3, 5]}, "tgate": {"gate_step_fraction": [0.5]},
      "tome": {"ratio": [0.3, 0.5]}})"),
                                     "space.json");
    return o;
  }());
  double largest = 0;
  for (const auto& b : plan.baselines) largest = std::max(largest, b.cost);
  for (int workers : {1, 2, 3, 7, 16, 1000}) {
    const Balance balance = assign_lpt(plan, workers);
    ASSERT_EQ(balance.load.size(), static_cast<size_t>(workers));
    const double sum = std::accumulate(balance.load.begin(), balance.load.end(), 0.0);
    EXPECT_NEAR(sum, plan.total_cost, 1e-9 * plan.total_cost);
    EXPECT_GE(balance.max_over_mean(), 1.0 - 1e-12);
    // List scheduling never exceeds the mean by more than the largest job;
    // LPT is within 4/3 of the optimum, itself at least max(mean, largest).
    EXPECT_LE(balance.max_load, balance.mean_load + largest + 1e-6);
    EXPECT_LE(balance.max_load, 4.0 / 3.0 * std::max(balance.mean_load, largest) + 1e-6);
    for (auto w : balance.unit_worker) EXPECT_LT(w, static_cast<std::uint32_t>(workers));
  }
  EXPECT_EQ(assign_lpt(plan, 1).max_over_mean(), 1.0);
  EXPECT_THROW(assign_lpt(plan, 0), InputError);
}

TEST(Balance, CategoryFourOnEightWorkersIsNearlyEven) {
  const Plan plan = make_plan(make_grid(4));
  const Balance balance = assign_lpt(plan, 8);
  EXPECT_LT(balance.max_over_mean(), 1.001);
}

TEST(Balance, SmallExampleIsExactlyLpt) {
  // Baselines of 20, 25 and 50 steps (SD1.5, 1 sample): jobs 50, 25, 20 on
  // two workers: 50 | 25 + 20.
  std::vector<Task> tasks;
  for (int steps : {20, 25, 50}) {
    Task t;
    t.steps = steps;
    tasks.push_back(t);
  }
  PlanOptions options;
  options.samples = 1;
  const Plan plan = make_plan(tasks, options);
  const Balance balance = assign_lpt(plan, 2);
  EXPECT_EQ(balance.load, (std::vector<double>{50, 45}));
  EXPECT_EQ(balance.baseline_worker, (std::vector<std::uint32_t>{1, 1, 0}));
}

// The polishing step's neighbourhood (coordinator/strategy_frontier.cc):
// one parameter moved by one step of its distinct values.
TEST(OneStepNeighbours, DifferInOneParameterByOneStepOfItsValues) {
  const std::vector<nlohmann::json> settings = {
      {{"cache_interval", 2}, {"cache_branch_id", 0}}, {{"cache_interval", 3}, {"cache_branch_id", 0}},
      {{"cache_interval", 5}, {"cache_branch_id", 0}}, {{"cache_interval", 2}, {"cache_branch_id", 1}},
      {{"cache_interval", 3}, {"cache_branch_id", 1}}};
  const auto n = one_step_neighbours(settings);
  ASSERT_EQ(n.size(), settings.size());
  EXPECT_EQ(n[0], (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(n[1], (std::vector<std::uint64_t>{0, 2, 4}));
  EXPECT_EQ(n[2], (std::vector<std::uint64_t>{1})) << "5 follows 3 among the values; 2 and 5 are two steps apart";
  EXPECT_EQ(n[3], (std::vector<std::uint64_t>{0, 4}));
  EXPECT_EQ(n[4], (std::vector<std::uint64_t>{1, 3}));
  const auto b = one_step_neighbours({{{"use_rand", true}, {"ratio", 0.5}}, {{"use_rand", false}, {"ratio", 0.5}},
                                      {{"use_rand", false}, {"ratio", 0.7}}});
  EXPECT_EQ(b[0], (std::vector<std::uint64_t>{1})) << "booleans are 0 and 1";
  EXPECT_EQ(b[2], (std::vector<std::uint64_t>{1}));
  EXPECT_TRUE(one_step_neighbours({{{"a", 1}}, {{"b", 1}}})[0].empty()) << "other parameters are not neighbours";
}

}  // namespace
}  // namespace diffsearch::partition
