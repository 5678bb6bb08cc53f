// Isolation under mpirun on the CPU (--isolate on, the default): worker
// children that are SIGKILLed or segfault mid-unit cost their unit one
// attempt, recorded with the cause, and the run ends with exit 0 and the
// answers of an undisturbed run; a rank whose children cannot load retires
// while the others finish; a hung child is killed at the deadline and
// replaced. Errors keep their kind: a bad input is recorded once, never
// retried, and a wrong evaluator spec is refused with exit 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::io::EvaluationRow;
using diffsearch::testing::read_text_file;
using diffsearch::testing::run_command;

const char* kSpace =
    R"({"deepcache": {"cache_interval": [2, 3, 5], "cache_branch_id": [0, 1]},
        "tome": {"ratio": [0.3, 0.5]},
        "tgate": {"gate_step_fraction": [0.5], "sp_interval": [1], "warm_up": [0]}})";

class SearchIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    diffsearch::testing::allow_mpirun_here();
    dir_ = diffsearch::testing::fresh_test_dir("search_isolation_e2e");
    std::ofstream(path("space.json")) << kSpace;
    std::ofstream tasks(path("tasks.txt"));
    tasks << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps\n";
    for (const char* m : {"DeepCache", "T-Gate", "ToMe", "DeepCache and ToMe"}) {
      for (const char* x : {"1.2", "2.0", "3.0"}) {
        tasks << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by " << m << " with "
              << x << "x speedup and precision loss not exceeding 0.02\n";
      }
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string search_args(const std::string& out, const std::string& evaluator) const {
    return std::string(DIFFSEARCH_BIN) + " search --tasks " + path("tasks.txt") + " --space " + path("space.json") +
           " --out " + out + " --num-samples 4 --batch-size 2 --speed-measure macs --strategy exhaustive" +
           " --evaluator " + evaluator + " --progress-interval 1";
  }
  std::string mpirun(int np) const { return "mpirun --oversubscribe -np " + std::to_string(np) + " "; }
  // Runs `command`, its output appended to log.txt; returns its exit status.
  int run(const std::string& command) const { return run_command(command + " >> " + path("log.txt") + " 2>&1").code; }
  std::string log_text() const { return read_text_file(path("log.txt")); }
  // search_params.json without row numbers and GPU-seconds (arrival order
  // and wall time; the answers must not depend on them).
  std::string answers(const std::string& results) const {
    const std::string out = results + ".params.json";
    EXPECT_EQ(run(std::string(DIFFSEARCH_BIN) + " distill " + results + " --tasks " + path("tasks.txt") + " -o " + out), 0);
    std::ifstream in(out);
    auto j = nlohmann::json::parse(in);
    for (auto& [k, v] : j.items()) {
      if (k[0] != '_') v.erase("rows");
    }
    j.erase("_rows");
    j.erase("_spent");
    return j.dump(1);
  }
  nlohmann::json status_json(const std::string& results) const {
    const auto r = run_command(std::string(DIFFSEARCH_BIN) + " status " + results + " --json");
    EXPECT_EQ(r.code, 0);
    return nlohmann::json::parse(r.out);
  }
  // The undisturbed run's answers (one process, no child).
  const std::string& expected() {
    if (expected_.empty()) {
      EXPECT_EQ(run(search_args(path("one.h5"), "fake") + " --isolate off"), 0) << log_text();
      expected_ = answers(path("one.h5"));
    }
    return expected_;
  }
  // Every unit has exactly one ok row, after any failed ones. The pointers
  // are into `rows`: keep the results alive while they are used.
  std::map<std::string, std::vector<const EvaluationRow*>> by_unit(const std::vector<EvaluationRow>& rows) const {
    std::map<std::string, std::vector<const EvaluationRow*>> units;
    for (const auto& r : rows) units[r.unit_key].push_back(&r);
    for (const auto& [key, list] : units) {
      std::size_t ok = 0;
      for (const auto* r : list) ok += r->status == "ok";
      EXPECT_EQ(ok, 1u) << key << ": measured once";
      EXPECT_EQ(list.back()->status, "ok") << key;
    }
    return units;
  }

  fs::path dir_;
  std::string expected_;
};

TEST_F(SearchIsolationTest, KilledAndSegfaultingChildrenCostOnlyTheirUnit) {
  // Under mpirun each child SIGKILLs itself on its 5th unit (what the OOM
  // killer does); in one process (no MPI) each child segfaults on its 5th.
  // A fresh child counts from 1. --max-attempts 10: a retried unit may land
  // on another child's fatal count by chance.
  const std::string out = path("killed.h5"), local = path("segv.h5");
  ASSERT_EQ(run(mpirun(3) + search_args(out, "fake:kill_every=5,sleep_ms=2") + " --max-attempts 10"), 0)
      << log_text();
  ASSERT_EQ(run(search_args(local, "fake:segv_every=5") + " --max-attempts 10"), 0) << log_text();
  for (const auto& [file, signal] : {std::pair<std::string, std::string>{out, "signal 9 (SIGKILL)"},
                                     std::pair<std::string, std::string>{local, "signal 11 (SIGSEGV)"}}) {
    std::size_t killed = 0;
    const auto contents = diffsearch::io::read_results(file);  // by_unit points into its rows
    for (const auto& [key, rows] : by_unit(contents.rows)) {
      for (std::size_t i = 0; i + 1 < rows.size(); ++i) {
        const EvaluationRow& r = *rows[i];
        EXPECT_EQ(r.status, "failed");
        EXPECT_EQ(r.error_kind, "device_fault") << r.error;
        EXPECT_NE(r.error.find("died during the unit: killed by " + signal), std::string::npos) << file << ": " << r.error;
        EXPECT_EQ(r.attempt, static_cast<int64_t>(i + 1));
        ++killed;
      }
      if (rows.size() > 1) {
        EXPECT_EQ(rows.back()->attempt, static_cast<int64_t>(rows.size())) << key << " retried";
      }
    }
    EXPECT_GE(killed, 3u) << file << ": the children should have died several times";
    EXPECT_EQ(answers(file), expected()) << file;
    const auto status = status_json(file);
    EXPECT_EQ(status.at("failed_attempts_by_kind").at("device_fault").get<std::size_t>(), killed) << file;
    EXPECT_EQ(status.at("units_failed"), 0) << file;
  }
}

TEST_F(SearchIsolationTest, RankWhoseChildrenCannotLoadRetiresWhileTheOthersFinish) {
  const std::string out = path("retired.h5");
  ASSERT_EQ(run(mpirun(4) + search_args(out, "fake:exit_at_load_rank=1,sleep_ms=20")), 0) << log_text();
  const std::string log = log_text();
  EXPECT_NE(log.find("worker 1 stops measuring: its worker child failed to start 3 times in a row"),
            std::string::npos) << log;
  EXPECT_NE(log.find("died while loading: exited with code 3"), std::string::npos) << log;
  std::set<int64_t> ranks;
  const auto contents = diffsearch::io::read_results(out);
  for (const auto& r : contents.rows) {
    ranks.insert(r.rank);
    EXPECT_EQ(r.status, "ok");
  }
  EXPECT_FALSE(ranks.empty());
  EXPECT_EQ(ranks.count(1), 0u) << "rank 1 measured nothing";
  const std::set<int64_t> others = {2, 3};
  EXPECT_TRUE(std::includes(others.begin(), others.end(), ranks.begin(), ranks.end()));
  by_unit(contents.rows);
  EXPECT_EQ(answers(out), expected());

  // No rank can load: the run ends (exit 1, --resume) instead of waiting.
  EXPECT_EQ(run(mpirun(2) + search_args(path("none.h5"), "fake:exit_at_load_rank=1")), 1) << log_text();
  EXPECT_NE(log_text().find("no worker can measure any more"), std::string::npos) << log_text();
}

TEST_F(SearchIsolationTest, HungChildIsKilledAtTheDeadlineAndReplaced) {
  const std::string out = path("hung.h5");
  const auto start = std::chrono::steady_clock::now();
  // Rank 1's first child sleeps 60 s in its first unit; later children
  // of that rank do not.
  // sleep_ms=100: rank 1 gets units even if its child starts last.
  ASSERT_EQ(run(mpirun(3) + search_args(out, "fake:hang_rank=1,hang_ms=60000,sleep_ms=100") + " --unit-deadline 1"), 0)
      << log_text();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(40)) << "the hang was not cut short";
  EXPECT_NE(log_text().find("gave no answer within the unit deadline (1.0s): killed (SIGKILL) and replaced"),
            std::string::npos) << log_text();
  std::size_t hung = 0;
  const auto contents = diffsearch::io::read_results(out);  // by_unit points into its rows
  for (const auto& [key, rows] : by_unit(contents.rows)) {
    for (const auto* r : rows) {
      if (r->status != "failed") continue;
      ++hung;
      EXPECT_EQ(r->rank, 1);
      EXPECT_EQ(r->error_kind, "device_fault");
    }
  }
  EXPECT_EQ(hung, 1u);
  EXPECT_EQ(answers(out), expected());
}

TEST_F(SearchIsolationTest, BadInputIsRecordedOnceAndTheRunGoesOn) {
  const std::string out = path("bad.h5");
  ASSERT_EQ(run(mpirun(3) + search_args(out, "fake:fail_always,fail_every=4,fail_kind=bad_input,sleep_ms=2")), 0)
      << log_text();
  std::size_t bad = 0, ok = 0;
  std::map<std::string, int> rows_of;
  for (const auto& r : diffsearch::io::read_results(out).rows) {
    ++rows_of[r.unit_key];
    if (r.status == "ok") {
      ++ok;
      continue;
    }
    ++bad;
    EXPECT_EQ(r.error_kind, "bad_input");
    EXPECT_EQ(r.attempt, 1) << "never retried";
    EXPECT_NE(r.error.find("injected bad input for unit " + r.unit_key), std::string::npos) << r.error;
  }
  for (const auto& [key, n] : rows_of) EXPECT_EQ(n, 1) << key;
  EXPECT_GT(bad, 0u);
  EXPECT_GT(ok, bad);
  const auto status = status_json(out);
  EXPECT_EQ(status.at("units_failed").get<std::size_t>(), bad);
  EXPECT_EQ(status.at("units_failed_by_kind").at("bad_input").get<std::size_t>(), bad);
  const auto text = run_command(std::string(DIFFSEARCH_BIN) + " status " + out);
  ASSERT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("failed attempts by kind: bad_input " + std::to_string(bad)), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("[bad_input]: injected bad input"), std::string::npos) << text.out;
}

TEST_F(SearchIsolationTest, WrongEvaluatorOptionsAreRefusedWithExitTwo) {
  EXPECT_EQ(run(mpirun(3) + search_args(path("x.h5"), "fake:no_such_option=1")), 2) << log_text();
  EXPECT_NE(log_text().find("bad option \"no_such_option=1\""), std::string::npos) << log_text();
  EXPECT_EQ(run(search_args(path("y.h5"), "fake:fail_kind=sometimes")), 2) << log_text();
  EXPECT_NE(log_text().find("bad option \"fail_kind=sometimes\""), std::string::npos) << log_text();
  EXPECT_EQ(run(search_args(path("z.h5"), "fake") + " --isolate maybe"), 2) << log_text();
  EXPECT_NE(log_text().find("--isolate \"maybe\": expected on"), std::string::npos) << log_text();
}

}  // namespace
