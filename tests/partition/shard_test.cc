// Tests of sharding a plan: "I/K" parsed or refused, every unit in exactly
// one shard, whole baseline groups per shard, an assignment that does not
// depend on the order of the tasks, and a reasonable balance on category 4.
#include "partition/shard.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "io/error.h"
#include "partition/grid.h"

namespace diffsearch::partition {
namespace {

TEST(Shard, ParsesIndexOverCount) {
  const Shard s = parse_shard("3/8");
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 8);
  EXPECT_EQ(shard_text(s), "3/8");
  EXPECT_EQ(parse_shard("0/1").count, 1);
}

TEST(Shard, RefusesMalformedOrOutOfRange) {
  for (const char* bad : {"", "1", "/2", "1/", "a/2", "1/2/3", "-1/2", "1 /2", "1/0"}) {
    EXPECT_THROW(parse_shard(bad), InputError) << bad;
  }
  try {
    parse_shard("2/2");
    FAIL() << "shard 2 of 2 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("0 to 1"), std::string::npos) << e.what();
  }
}

TEST(Shard, EveryUnitInExactlyOneShardAndGroupsWhole) {
  const Plan plan = make_plan(make_grid(4));
  for (int count : {2, 3, 5, 27}) {
    const auto shard_of = shard_of_baselines(plan, count);
    ASSERT_EQ(shard_of.size(), plan.baselines.size());
    std::map<int, std::uint64_t> units_per_shard;
    for (const auto& space : plan.spaces) {
      // A space's units follow its baseline: nothing of a group is measured twice.
      units_per_shard[shard_of[space.baseline]] += space.size;
    }
    std::uint64_t total = 0;
    for (const auto& [shard, n] : units_per_shard) {
      EXPECT_GE(shard, 0);
      EXPECT_LT(shard, count);
      total += n;
    }
    EXPECT_EQ(total, plan.units.size()) << count << " shards";
    EXPECT_EQ(units_per_shard.size(), static_cast<std::size_t>(count)) << "every shard has work";
  }
}

TEST(Shard, BalancedOnCategoryFour) {
  const Plan plan = make_plan(make_grid(4));
  const auto shard_of = shard_of_baselines(plan, 4);
  std::vector<double> load(4, 0.0);
  for (std::size_t b = 0; b < plan.baselines.size(); ++b) load[shard_of[b]] += plan.baselines[b].cost;
  for (const auto& space : plan.spaces) load[shard_of[space.baseline]] += space.unit_cost * space.size;
  const double max = *std::max_element(load.begin(), load.end());
  const double mean = (load[0] + load[1] + load[2] + load[3]) / 4;
  EXPECT_LT(max / mean, 1.05) << load[0] << " " << load[1] << " " << load[2] << " " << load[3];
}

TEST(Shard, SameAssignmentWhateverTheTaskOrder) {
  auto tasks = make_grid(4);
  const Plan plan = make_plan(tasks);
  std::map<std::string, int> expected;
  const auto shard_of = shard_of_baselines(plan, 3);
  for (std::size_t b = 0; b < plan.baselines.size(); ++b) expected[plan.baselines[b].key()] = shard_of[b];
  std::mt19937 rng(7);
  std::shuffle(tasks.begin(), tasks.end(), rng);
  const Plan shuffled = make_plan(tasks);
  const auto shuffled_of = shard_of_baselines(shuffled, 3);
  for (std::size_t b = 0; b < shuffled.baselines.size(); ++b) {
    EXPECT_EQ(shuffled_of[b], expected.at(shuffled.baselines[b].key())) << shuffled.baselines[b].key();
  }
}

TEST(Shard, MoreShardsThanBaselineGroupsRefused) {
  std::vector<Task> tasks;
  for (const auto& t : make_grid(4)) {
    if (task_key(t).find("/ddim/20/") != std::string::npos) tasks.push_back(t);
  }
  const Plan plan = make_plan(tasks);
  ASSERT_EQ(plan.baselines.size(), 3u);
  EXPECT_NO_THROW(shard_of_baselines(plan, 3));
  try {
    shard_of_baselines(plan, 4);
    FAIL() << "4 shards of 3 groups accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("3 baseline groups"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("K <= 3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffsearch::partition
