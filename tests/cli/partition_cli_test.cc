// Runs the built `diffsearch` for the task-language subcommands (parse, grid,
// plan) and checks their output and exit codes as a user sees them.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

using diffsearch::testing::count_lines;

// The executable's stdout, or stdout + stderr with merge_stderr.
diffsearch::testing::CommandResult run(const std::string& args, bool merge_stderr = false) {
  return diffsearch::testing::run_command(std::string("\"") + DIFFSEARCH_BIN + "\" " + args +
                                          (merge_stderr ? " 2>&1" : ""));
}

// Each run loads the whole executable (libtorch included, about a second), so
// the checks share few runs; the grids' contents are tested in tests/partition.
TEST(PartitionCli, GridCategoryFourHas1134Lines) {
  const auto r = run("grid --category 4 | wc -l");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(std::stoi(r.out), 1134);
  const auto g = run("grid --category 5 --format jsonl");
  EXPECT_EQ(g.code, 0);
  EXPECT_GT(count_lines(g.out), 0u);
  EXPECT_EQ(g.out.rfind("{\"category\":5,\"key\":\"sd15/ddim/20/deepcache/"
                        "lat0.5s@NVIDIA_H100_80GB_HBM3/loss0.02\"",
                        0),
            0u)
      << g.out.substr(0, 300);
  EXPECT_EQ(run("grid --category 6", true).code, 2);
}

TEST(PartitionCli, ParsePrintsKeyAndJson) {
  const std::string sentence =
      "\"Generate a SD1.5 pipeline using the DPM-Solver++ with 20 steps, accelerated by T-Gate "
      "with 1.44x speedup and precision loss not exceeding 0.02\"";
  auto r = run("parse " + sentence);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "sd15/dpmsolver++/20/tgate/x1.44/loss0.02\n");
  r = run("parse --json " + sentence);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out,
            "{\"category\":4,\"key\":\"sd15/dpmsolver++/20/tgate/x1.44/loss0.02\",\"latency_s\":"
            "null,\"max_score_loss\":0.02,\"methods\":[\"T-Gate\"],\"model\":\"SD1.5\","
            "\"platform\":null,\"sampler\":\"DPM-Solver++\",\"speedup\":1.44,\"steps\":20}\n");
}

TEST(PartitionCli, BadSentenceExitsTwoWithOneLine) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"\"Generate a SD9 pipeline using the DDIM sampler with 50 steps\"", "\"SD9\""},
      {"\"Generate a SD1.5 pipeline using the Euler sampler with 50 steps\"", "\"Euler\""},
      {"\"\"", "empty"},
  };
  for (const auto& [arg, word] : bad) {
    const auto r = run("parse " + arg + " 2>&1 >/dev/null");
    EXPECT_EQ(r.code, 2) << arg;
    EXPECT_EQ(count_lines(r.out), 1u) << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find(word), std::string::npos) << r.out;
  }
}

TEST(PartitionCli, PlanCategoryFour) {
  const auto r = run("plan --grid 4 --workers 8 --strategy exhaustive");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("tasks: 1134"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("method spaces: 162\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("baselines: 27"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("max/mean"), std::string::npos) << r.out;
  EXPECT_EQ(run("plan --workers 8", true).code, 2);
  EXPECT_EQ(run("plan --tasks /nonexistent/tasks.txt", true).code, 2);
}

// The frontier strategy's estimate: simulated on the synthetic landscape over
// the plan (one model, sampler and step count of category 4, default spaces).
TEST(PartitionCli, PlanEstimatesTheFrontierStrategy) {
  const std::string tasks = "/tmp/partition_cli_plan_tasks.txt";
  ASSERT_EQ(run("grid --category 4 | grep 'SD1.5 pipeline using the DDIM sampler with 20 steps' > " + tasks).code, 0);
  auto r = run("plan --tasks " + tasks + " --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.at("strategy"), "frontier");
  EXPECT_EQ(j.at("units"), 89168);
  const double share = j.at("frontier_share").get<double>();
  EXPECT_GT(share, 0);
  EXPECT_LT(share, 0.05) << "the frontier measures a sliver of the plan";
  EXPECT_NEAR(j.at("frontier_gpu_hours_h200_eager").get<double>(), share * j.at("gpu_hours_h200_eager").get<double>(), 1e-9);
  EXPECT_EQ(j.at("frontier_knobs").at("confidence"), 0.99);
  r = run("plan --tasks " + tasks);
  EXPECT_NE(r.out.find("frontier strategy (the default): about "), std::string::npos) << r.out;
  // The estimate runs with the knobs given: answers within a tolerance cost less.
  r = run("plan --tasks " + tasks + " --loss-tolerance 0.003 --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto tolerant = nlohmann::json::parse(r.out);
  EXPECT_EQ(tolerant.at("frontier_knobs").at("loss_tolerance"), 0.003);
  EXPECT_LT(tolerant.at("frontier_share").get<double>(), share);
  r = run("plan --tasks " + tasks + " --loss-tolerance 0.003");
  EXPECT_NE(r.out.find("frontier strategy (with the knobs given): about "), std::string::npos) << r.out;
  EXPECT_EQ(run("plan --tasks " + tasks + " --loss-tolerance -1", true).code, 2);
  r = run("plan --tasks " + tasks + " --strategy exhaustive");
  EXPECT_EQ(r.out.find("frontier strategy"), std::string::npos) << r.out;
  EXPECT_EQ(run("plan --tasks " + tasks + " --strategy fastest", true).code, 2);
  EXPECT_EQ(run("plan --tasks " + tasks + " --race-prompts 8,4", true).code, 2);
  EXPECT_EQ(run("plan --tasks " + tasks + " --polish -1", true).code, 2);
  r = run("plan --tasks " + tasks + " --assume-monotone --no-assume-monotone", true);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--assume-monotone and --no-assume-monotone"), std::string::npos) << r.out;
  std::remove(tasks.c_str());
}

TEST(PartitionCli, EveryHelpShowsAnExample) {
  for (const char* sub : {"parse", "grid", "plan"}) {
    const auto r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.out.find("Example:\n  diffsearch " + std::string(sub)), std::string::npos) << r.out;
  }
}

// The top-level --help names the environment switches (io/env_switches.h).
TEST(PartitionCli, TopLevelHelpNamesTheEnvironmentSwitches) {
  const auto r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* name : {"DIFFSEARCH_CUDA_GRAPHS=0|1", "DIFFSEARCH_CUDA_MEMORY_FRACTION=F", "DIFFSEARCH_SDPA="}) {
    EXPECT_NE(r.out.find(name), std::string::npos) << name << " missing from:\n" << r.out;
  }
}

}  // namespace
