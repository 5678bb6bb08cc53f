// How busy the frontier strategy keeps many workers, under mpirun on the CPU:
// seven workers of the synthetic evaluator, each unit taking real time in
// proportion to its simulated GPU-seconds (rounds of 2, 4 and 8 prompts,
// baselines and settings all differ), stay busy until the last unit starts;
// and one worker slowed on purpose delays the run by no more than its own
// last unit against a run without it, with the same answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;

struct Row {
  int rank;
  double started_at, finished_at;
};

std::vector<Row> journal_rows(const std::string& results) {
  std::vector<Row> rows;
  std::ifstream in(results + ".journal");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("\"kind\":\"evaluation\"") == std::string::npos) continue;
    const auto j = nlohmann::json::parse(line);
    rows.push_back({j.at("rank").get<int>(), j.at("started_at").get<double>(), j.at("finished_at").get<double>()});
  }
  return rows;
}

class SearchScalingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    diffsearch::testing::allow_mpirun_here();
    dir_ = diffsearch::testing::fresh_test_dir("search_scaling_e2e");
    // Category 4's SD1.5 DDIM 20-step slice: 42 tasks, six method spaces.
    const auto grid = diffsearch::testing::run_command(std::string(DIFFSEARCH_BIN) + " grid --category 4");
    ASSERT_EQ(grid.code, 0);
    std::ofstream tasks(path("tasks.txt"));
    std::size_t at = 0, n = 0;
    while (at < grid.out.size()) {
      const std::size_t end = grid.out.find('\n', at);
      const std::string line = grid.out.substr(at, end - at);
      if (line.find("SD1.5 pipeline using the DDIM sampler with 20 steps") != std::string::npos) tasks << line << "\n", ++n;
      at = end == std::string::npos ? grid.out.size() : end + 1;
    }
    ASSERT_EQ(n, 42u);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // A frontier search of the slice with `processes` (rank 0 + workers);
  // returns the exit code.
  int search(int processes, const std::string& evaluator, const std::string& out) const {
    const std::string cmd = "mpirun -np " + std::to_string(processes) + " " + DIFFSEARCH_BIN + " search --tasks " +
                            path("tasks.txt") + " --space " + DIFFSEARCH_SOURCE_DIR + "/data/demo/space.json" +
                            " --evaluator " + evaluator + " --out " + out +
                            " --num-samples 8 --race-prompts 2,4 --isolate off --progress-interval 100"
                            " --log-level warn >> " + path("log.txt") + " 2>&1";
    return diffsearch::testing::run_command(cmd).code;
  }
  std::string answers(const std::string& results) const {
    const std::string out = results + ".params.json";
    const auto r = diffsearch::testing::run_command(std::string(DIFFSEARCH_BIN) + " distill " + results +
                                                    " --tasks " + path("tasks.txt") + " -o " + out + " 2>&1");
    EXPECT_EQ(r.code, 0) << r.out;
    std::ifstream in(out);
    auto j = nlohmann::json::parse(in);
    for (auto& [key, a] : j.items()) {
      if (key[0] != '_') a.erase("rows");  // arrival order differs
    }
    j.erase("_rows");
    j.erase("_spent");  // wall times
    return j.dump();
  }
  static double run_end(const std::vector<Row>& rows) {
    double t0 = rows.front().started_at, t1 = rows.front().finished_at;
    for (const auto& r : rows) t0 = std::min(t0, r.started_at), t1 = std::max(t1, r.finished_at);
    return t1 - t0;
  }

  fs::path dir_;
};

TEST_F(SearchScalingTest, SevenWorkersStayBusyUntilTheLastUnitStarts) {
  ASSERT_EQ(search(8, "synthetic:seed=1,time_scale=1", path("r.h5")), 0) << path("log.txt");
  const auto rows = journal_rows(path("r.h5"));
  ASSERT_GT(rows.size(), 150u);
  // Until the last unit starts there is work to hand out; a worker idle then
  // waited on the strategy (a round not released) or on rank 0.
  double t0 = rows.front().started_at, last_start = t0;
  for (const auto& r : rows) t0 = std::min(t0, r.started_at), last_start = std::max(last_start, r.started_at);
  const double window = last_start - t0;
  ASSERT_GT(window, 2.0);
  std::map<int, double> busy;
  for (const auto& r : rows) {
    const double s = std::max(r.started_at, t0), e = std::min(r.finished_at, last_start);
    if (e > s) busy[r.rank] += e - s;
  }
  ASSERT_EQ(busy.size(), 7u);
  for (const auto& [rank, seconds] : busy) {
    EXPECT_LT(1.0 - seconds / window, 0.05) << "worker rank " << rank << " idle " << 100 * (1 - seconds / window)
                                            << "% of " << window << " s";
  }
}

TEST_F(SearchScalingTest, ASlowedWorkerDelaysTheRunByNoMoreThanItsLastUnit) {
  // Six workers alone, then the same six and a seventh that takes 1.5 s more
  // per unit (several times the others' units).
  ASSERT_EQ(search(7, "synthetic:seed=1,time_scale=1", path("six.h5")), 0) << path("log.txt");
  ASSERT_EQ(search(8, "synthetic:seed=1,time_scale=1,slow_rank=7,slow_ms=1500", path("slow.h5")), 0)
      << path("log.txt");
  const auto six = journal_rows(path("six.h5"));
  const auto slow = journal_rows(path("slow.h5"));
  double last_unit = 0, last_finish = 0;
  for (const auto& r : slow) {
    if (r.rank == 7 && r.finished_at > last_finish) last_finish = r.finished_at, last_unit = r.finished_at - r.started_at;
  }
  ASSERT_GT(last_unit, 1.5) << "the slowed worker measured nothing";
  // 0.5 s for the two runs' own scatter on a loaded machine.
  EXPECT_LE(run_end(slow), run_end(six) + last_unit + 0.5)
      << "six workers: " << run_end(six) << " s; with the slowed one: " << run_end(slow) << " s";
  EXPECT_EQ(answers(path("slow.h5")), answers(path("six.h5")));
}

}  // namespace
