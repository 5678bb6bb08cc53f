// Tests of the five task grids: counts, the category-4 order and phrasing,
// round trips of every line, key uniqueness and the category-5 configuration.
#include "partition/grid.h"

#include <gtest/gtest.h>

#include <set>

#include "io/error.h"

namespace diffsearch::partition {
namespace {

TEST(Grid, Counts) {
  EXPECT_EQ(make_grid(1).size(), 27u);
  EXPECT_EQ(make_grid(2).size(), 81u);
  EXPECT_EQ(make_grid(3).size(), 81u);
  EXPECT_EQ(make_grid(4).size(), 1134u);
  // 27 x 6 accelerators x 2 platforms x 2 budgets with the defaults.
  EXPECT_EQ(make_grid(5).size(), 648u);
  EXPECT_THROW(make_grid(0), InputError);
  EXPECT_THROW(make_grid(6), InputError);
}

TEST(Grid, EveryLineParsesRoundTripsAndHasAUniqueKey) {
  for (int c = 1; c <= 5; ++c) {
    std::set<std::string> keys, sentences;
    for (const Task& t : make_grid(c)) {
      const std::string sentence = format_task(t);
      const Task back = parse_task(sentence);
      EXPECT_EQ(back, t) << sentence;
      EXPECT_EQ(format_task(back), sentence);
      EXPECT_EQ(back.category(), c) << sentence;
      EXPECT_TRUE(keys.insert(task_key(t)).second) << "duplicate key " << task_key(t);
      EXPECT_TRUE(sentences.insert(sentence).second) << "duplicate line " << sentence;
    }
  }
}

TEST(Grid, CategoryFourIsTheOriginalGridInOrder) {
  const auto grid = make_grid(4);
  const std::vector<std::string> models = {"SD1.5", "SD2.1", "SDXL"};
  const std::vector<std::string> samplers = {"DDIM", "DPM-Solver++", "UniPCMultistepScheduler"};
  const std::vector<int> steps = {20, 25, 50};
  const std::vector<std::string> accelerators = {"DeepCache",
                                                 "T-Gate",
                                                 "ToMe",
                                                 "DeepCache and ToMe",
                                                 "DeepCache and T-Gate",
                                                 "DeepCache, T-Gate, and ToMe"};
  const std::vector<std::string> ratios = {"1.2", "1.5", "1.8", "2.0", "2.5", "3.0", "4.0"};
  size_t i = 0;
  for (const auto& m : models) {
    for (const auto& s : samplers) {
      for (int n : steps) {
        for (const auto& a : accelerators) {
          for (const auto& r : ratios) {
            ASSERT_LT(i, grid.size());
            const std::string expected = "Generate a " + m + " pipeline using the " + s +
                                         " sampler with " + std::to_string(n) +
                                         " steps, accelerated by " + a + " with " + r +
                                         "x speedup and precision loss not exceeding 0.02";
            EXPECT_EQ(format_task(grid[i]), expected) << "line " << i + 1;
            ++i;
          }
        }
      }
    }
  }
  EXPECT_EQ(i, grid.size());
}

TEST(Grid, CategoriesTwoAndThreeMethods) {
  std::set<std::vector<Method>> two, three;
  for (const auto& t : make_grid(2)) two.insert(t.methods);
  for (const auto& t : make_grid(3)) three.insert(t.methods);
  EXPECT_EQ(two.size(), 3u);
  EXPECT_EQ(three,
            (std::set<std::vector<Method>>{{Method::DeepCache, Method::ToMe},
                                           {Method::DeepCache, Method::TGate},
                                           {Method::DeepCache, Method::TGate, Method::ToMe}}));
}

TEST(GridConfig, FromJson) {
  const auto j = nlohmann::json::parse(R"({
    "_comment": "two GPUs",
    "version": 1,
    "platforms": ["NVIDIA A100-SXM4-80GB"],
    "latency_budgets_s": {"sd15": [0.25], "SDXL": [2, 4, 8]},
    "accelerators": [["ToMe", "DeepCache"]],
    "max_score_loss": 0.05
  })");
  const GridConfig config = grid_config_from_json(j, "grid.json");
  const auto tasks = make_grid(5, config);
  // SD2.1 has no budgets in this file, so no tasks: 9 x 1 + 9 x 3.
  EXPECT_EQ(tasks.size(), 36u);
  for (const auto& t : tasks) {
    EXPECT_EQ(t.platform, std::string("NVIDIA A100-SXM4-80GB"));
    EXPECT_EQ(t.methods, (std::vector<Method>{Method::DeepCache, Method::ToMe}));
    EXPECT_EQ(t.max_score_loss, 0.05);
    EXPECT_NE(t.model, Model::SD21);
    EXPECT_EQ(parse_task(format_task(t)), t);
  }
}

TEST(GridConfig, ErrorsNameFileAndField) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"platform": ["x"]})", "\"platform\""},
      {R"({"platforms": []})", "\"platforms\""},
      {R"({"platforms": ["say \"hi\""]})", "platforms[0]"},
      {R"({"latency_budgets_s": {"SD9": [1]}})", "latency_budgets_s.SD9"},
      {R"({"latency_budgets_s": {"SD1.5": [0]}})", "latency_budgets_s.SD1.5[0]"},
      {R"({"latency_budgets_s": {"SD1.5": []}})", "latency_budgets_s.SD1.5"},
      {R"({"accelerators": [["Foo"]]})", "accelerators[0]"},
      {R"({"max_score_loss": 2})", "max_score_loss"},
      {R"([1, 2])", "expected a JSON object"},
  };
  for (const auto& [text, field] : bad) {
    try {
      grid_config_from_json(nlohmann::json::parse(text), "grid.json");
      ADD_FAILURE() << "accepted " << text;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("grid.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(field), std::string::npos) << msg;
    }
  }
  EXPECT_THROW(read_grid_config("/nonexistent/grid.json"), InputError);
}

}  // namespace
}  // namespace diffsearch::partition
