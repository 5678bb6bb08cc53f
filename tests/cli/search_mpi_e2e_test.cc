// `diffsearch search` under mpirun with the fake evaluator: 2, 3 and 5
// processes answer as one process does; a worker whose evaluations throw has
// its units retried elsewhere; SIGKILL of every process at random moments,
// resumed each time, ends with the uninterrupted answers; bad input refused.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/hdf5_table.h"
#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::testing::read_text_file;
using diffsearch::testing::run_command;

const char* kSpace =
    R"({"deepcache": {"cache_interval": [2, 3, 5], "cache_branch_id": [0, 1]},
        "tome": {"ratio": [0.3, 0.5]},
        "tgate": {"gate_step_fraction": [0.5], "sp_interval": [1], "warm_up": [0]}})";

class SearchMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    diffsearch::testing::allow_mpirun_here();
    dir_ = diffsearch::testing::fresh_test_dir("search_mpi_e2e");
    std::ofstream(path("space.json")) << kSpace;
    std::ofstream tasks(path("tasks.txt"));
    tasks << "# a slice of category 4 and a basic task\n"
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps\n";
    for (const char* m : {"DeepCache", "T-Gate", "ToMe", "DeepCache and ToMe", "DeepCache, T-Gate, and ToMe"}) {
      for (const char* x : {"1.2", "2.0", "3.0", "4.0"}) {
        tasks << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by " << m << " with "
              << x << "x speedup and precision loss not exceeding 0.02\n";
      }
    }
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string search_args(const std::string& out, const std::string& evaluator = "fake") const {
    return std::string(DIFFSEARCH_BIN) + " search --tasks " + path("tasks.txt") + " --space " + path("space.json") +
           " --out " + out + " --num-samples 4 --batch-size 2 --speed-measure macs --evaluator " + evaluator +
           " --progress-interval 1";
  }
  // The frontier strategy over several rounds (prompt prefixes 2, 4, 8) on
  // the synthetic landscape, whose per-prompt numbers do not depend on how
  // prompts are split.
  std::string frontier_args(const std::string& out, const std::string& evaluator = "synthetic:seed=4") const {
    return std::string(DIFFSEARCH_BIN) + " search --tasks " + path("tasks.txt") + " --space " + path("space.json") +
           " --out " + out + " --num-samples 8 --race-prompts 2,4 --batch-size 2 --speed-measure macs --evaluator " +
           evaluator + " --progress-interval 1";
  }
  nlohmann::json status_json(const std::string& results) const {
    const auto r = run_command(std::string(DIFFSEARCH_BIN) + " status " + results + " --json");
    EXPECT_EQ(r.code, 0);
    return nlohmann::json::parse(r.out);
  }
  // Runs `command`, its output appended to log.txt; returns its exit status.
  int run(const std::string& command) const { return run_command(command + " >> " + path("log.txt") + " 2>&1").code; }
  std::string mpirun(int np) const { return "mpirun --oversubscribe -np " + std::to_string(np) + " "; }
  // search_params.json without the row numbers (where in the file a row is
  // depends on arrival order; the answers must not).
  std::string answers(const std::string& results) const {
    const std::string out = results + ".params.json";
    EXPECT_EQ(run(std::string(DIFFSEARCH_BIN) + " distill " + results + " --tasks " + path("tasks.txt") + " -o " + out), 0);
    std::ifstream in(out);
    auto j = nlohmann::json::parse(in);
    for (auto& [k, v] : j.items()) {
      if (k[0] != '_') v.erase("rows");
    }
    j.erase("_rows");
    j.erase("_spent");  // GPU-seconds: wall time, unlike the answers
    return j.dump(1);
  }
  std::string log_text() const { return read_text_file(path("log.txt")); }

  fs::path dir_;
};

TEST_F(SearchMpiTest, MpirunGivesTheAnswersOfOneProcess) {
  ASSERT_EQ(run(search_args(path("one.h5"))), 0) << log_text();
  const std::string expected = answers(path("one.h5"));
  EXPECT_NE(expected.find("\"ok\""), std::string::npos);
  for (int np : {2, 3, 5}) {
    const std::string out = path("np" + std::to_string(np) + ".h5");
    // A few ms per unit, so that no worker finds the work gone when it
    // starts; --isolate off: a worker child's start (about a second on a
    // loaded machine) would skew them more than that (isolated runs are
    // compared with one process in search_isolation_e2e_test.cc).
    ASSERT_EQ(run(mpirun(np) + search_args(out, "fake:sleep_ms=10") + " --isolate off"), 0) << log_text();
    EXPECT_EQ(answers(out), expected) << np << " processes";
    const auto contents = diffsearch::io::read_results(out);
    std::set<int64_t> ranks;
    for (const auto& r : contents.rows) ranks.insert(r.rank);
    EXPECT_EQ(ranks.size(), static_cast<std::size_t>(np - 1)) << "every worker should work";
  }
}

TEST_F(SearchMpiTest, FailingWorkerHasItsUnitsRetriedElsewhere) {
  ASSERT_EQ(run(search_args(path("one.h5"))), 0) << log_text();
  const std::string out = path("faulty.h5");
  ASSERT_EQ(run(mpirun(3) + search_args(out, "fake:fail_rank=1,fail_every=2,sleep_ms=10")), 0) << log_text();
  const auto contents = diffsearch::io::read_results(out);
  std::map<std::string, std::vector<const diffsearch::io::EvaluationRow*>> by_unit;
  std::size_t failed = 0;
  for (const auto& r : contents.rows) by_unit[r.unit_key].push_back(&r);
  for (const auto& [key, rows] : by_unit) {
    ASSERT_EQ(rows.back()->status, "ok") << key;
    for (std::size_t i = 0; i + 1 < rows.size(); ++i) {
      EXPECT_EQ(rows[i]->status, "failed");
      EXPECT_EQ(rows[i]->rank, 1);
      EXPECT_NE(rows[i]->error.find("injected"), std::string::npos);
      ++failed;
    }
    if (rows.size() > 1) {
      EXPECT_EQ(rows.back()->rank, 2) << key << " retried on the other worker";
      EXPECT_EQ(rows.back()->attempt, 2);
    }
  }
  EXPECT_GT(failed, 0u) << "the fault injection should have hit some units";
  EXPECT_EQ(answers(out), answers(path("one.h5")));
}

TEST_F(SearchMpiTest, PlatformTasksRunOnlyOnAGpuOfThatName) {
  std::ofstream(path("tasks.txt"), std::ios::app)
      << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 1.5s "
         "latency on \"NVIDIA H200\" and precision loss not exceeding 0.02\n";
  // Rank 2 of 3 has the H200: every unit of the platform task runs there,
  // the rest anywhere.
  const std::string out = path("routed.h5");
  // Without isolation: a child's start (about a second on a loaded machine)
  // can let one worker take every other unit of so short a run.
  ASSERT_EQ(run(mpirun(4) + search_args(out, "\"fake:gpu_rank=2,gpu=NVIDIA H200,timing=CUDA graphs,sleep_ms=5\"") +
                " --isolate off"),
            0)
      << log_text();
  std::size_t platform_rows = 0;
  std::set<int64_t> other_ranks;
  for (const auto& r : diffsearch::io::read_results(out).rows) {
    if (r.unit_key.find("@") != std::string::npos) {
      ++platform_rows;
      EXPECT_EQ(r.rank, 2) << r.unit_key;
      EXPECT_EQ(r.device, "NVIDIA H200");
    } else {
      other_ranks.insert(r.rank);
    }
  }
  EXPECT_GT(platform_rows, 0u);
  EXPECT_GE(other_ranks.size(), 2u) << "the other units still spread over the workers";
  // The run record names each worker's device, what it is and how it times
  // runs; the rows keep the bare GPU name (above), which distill matches.
  const auto runs = diffsearch::io::read_results(out).runs;
  ASSERT_FALSE(runs.empty());
  const std::string devices = runs.back()["attributes"]["devices"].get<std::string>();
  EXPECT_NE(devices.find("cpu (NVIDIA H200, CUDA graphs)"), std::string::npos) << devices;
  EXPECT_NE(devices.find("cpu (CUDA graphs)"), std::string::npos) << devices;
  const std::string params = out + ".params.json";
  ASSERT_EQ(run(std::string(DIFFSEARCH_BIN) + " distill " + out + " --tasks " + path("tasks.txt") + " -o " + params), 0);
  const auto answer = nlohmann::json::parse(std::ifstream(params))["sd15/ddim/20/deepcache/lat1.5s@NVIDIA_H200/loss0.02"];
  ASSERT_TRUE(answer.is_object()) << "no answer for the platform task";
  EXPECT_NE(answer["status"].get<std::string>(), "not_measured");

  // No worker has it: everything else is measured, the platform's units stay
  // unmeasured with a message that says so, and the exit code is 1.
  const std::string none = path("none.h5");
  EXPECT_EQ(run(mpirun(3) + search_args(none, "fake:sleep_ms=1")), 1) << log_text();
  EXPECT_NE(log_text().find("need a GPU named \"NVIDIA H200\""), std::string::npos) << log_text();
  for (const auto& r : diffsearch::io::read_results(none).rows) {
    EXPECT_EQ(r.unit_key.find("@"), std::string::npos) << r.unit_key;
  }
  // --resume on a machine that has one measures just those, to the same answer.
  EXPECT_EQ(run(search_args(none, "\"fake:gpu=NVIDIA H200\"") + " --resume"), 0) << log_text();
  const std::string key = "sd15/ddim/20/deepcache/lat1.5s@NVIDIA_H200/loss0.02";
  EXPECT_EQ(nlohmann::json::parse(answers(none))[key], nlohmann::json::parse(answers(out))[key]);
}

TEST_F(SearchMpiTest, UnitPastItsDeadlineGoesToAnotherWorker) {
  ASSERT_EQ(run(search_args(path("one.h5"))), 0) << log_text();
  const std::string out = path("slow.h5");
  // --isolate off: a worker hung itself (with isolation its child would be
  // killed by the worker; tests/cli/search_isolation_e2e_test.cc).
  ASSERT_EQ(run(mpirun(3) + search_args(out, "fake:hang_rank=1,hang_ms=1500,sleep_ms=10") +
                " --unit-deadline 0.3 --isolate off"),
            0)
      << log_text();
  EXPECT_NE(log_text().find("handing it to another worker"), std::string::npos) << log_text();
  const auto contents = diffsearch::io::read_results(out);
  std::set<std::string> ok_units;
  for (const auto& r : contents.rows) {
    if (r.status == "ok") {
      EXPECT_TRUE(ok_units.insert(r.unit_key).second) << r.unit_key << " recorded twice";
    }
  }
  EXPECT_EQ(answers(out), answers(path("one.h5")));
}

// The frontier strategy's rounds depend only on recorded results: any number
// of processes gives the same answers, and the run accounts for what it
// spent against what exhaustive would have on the same plan.
TEST_F(SearchMpiTest, FrontierAnswersAreTheSameForAnyProcessCount) {
  ASSERT_EQ(run(frontier_args(path("f1.h5"))), 0) << log_text();
  const std::string expected = answers(path("f1.h5"));
  for (int np : {2, 3, 5}) {
    const std::string out = path("f" + std::to_string(np) + ".h5");
    ASSERT_EQ(run(mpirun(np) + frontier_args(out)), 0) << log_text();
    EXPECT_EQ(answers(out), expected) << np << " processes";
  }
  const auto status = status_json(path("f3.h5"));
  EXPECT_EQ(status.at("strategy"), "frontier");
  const double spent = status.at("gpu_seconds").get<double>();
  EXPECT_GT(spent, 0);
  ASSERT_TRUE(status.at("gpu_seconds_exhaustive").is_number()) << status.dump();
  EXPECT_GT(status.at("gpu_seconds_exhaustive").get<double>(), spent);
  // Rows are prompt ranges that extend one another.
  std::map<std::string, int64_t> reached;
  for (const auto& r : diffsearch::io::read_results(path("f3.h5")).rows) {
    if (r.status != "ok" || r.methods.empty()) continue;
    EXPECT_EQ(r.prompt_begin, reached[r.unit_key]) << r.unit_key;
    reached[r.unit_key] = r.prompt_end;
    EXPECT_TRUE(std::isfinite(r.gpu_seconds) && r.gpu_seconds > 0);
  }
  std::size_t full = 0;
  for (const auto& [unit, end] : reached) full += end == 8;
  EXPECT_GT(full, 0u);
  EXPECT_LT(full, reached.size()) << "some settings leave the race before the last prompt";
  // The exhaustive strategy on the same landscape: every unit in full.
  ASSERT_EQ(run(frontier_args(path("ex.h5")) + " --strategy exhaustive"), 0) << log_text();
  const auto ex = status_json(path("ex.h5"));
  EXPECT_EQ(ex.at("strategy"), "exhaustive");
  EXPECT_GT(ex.at("gpu_seconds").get<double>(), spent);
}

// Every process of a session (mpirun and its ranks, each in its own group).
void kill_session(pid_t sid) {
  DIR* proc = opendir("/proc");
  ASSERT_NE(proc, nullptr);
  while (dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    if (getsid(pid) == sid) kill(pid, SIGKILL);
  }
  closedir(proc);
}

TEST_F(SearchMpiTest, KilledAtRandomMomentsAndResumedGivesTheSameAnswers) {
  // The frontier strategy over three rounds: a resume replays it to where
  // the file left it, mid-round or between rounds.
  ASSERT_EQ(run(frontier_args(path("one.h5"))), 0) << log_text();
  const std::string expected = answers(path("one.h5"));
  const std::string out = path("chaos.h5");
  std::mt19937 rng(12345);
  int kills = 0;
  bool finished = false;
  int launches = 0;
  for (int attempt = 0; launches < 24 && !finished; ++attempt, ++launches) {
    const std::string command = mpirun(3) + frontier_args(out, "synthetic:seed=4,sleep_ms=40") + (attempt > 0 ? " --resume" : "") +
                                " >> " + path("log.txt") + " 2>&1";
    const pid_t child = diffsearch::testing::start_command_in_own_session(command);
    ASSERT_GE(child, 0);
    const int delay_ms = kills < 3 ? std::uniform_int_distribution<int>(300, 900)(rng) : 60000;
    const auto start = std::chrono::steady_clock::now();
    int status = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(delay_ms)) {
      if (waitpid(child, &status, WNOHANG) == child) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited) {
      kill_session(child);
      waitpid(child, &status, 0);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      kill_session(child);  // ranks that outlived mpirun
      ++kills;
      continue;
    }
    ASSERT_TRUE(WIFEXITED(status)) << log_text();
    ASSERT_EQ(WEXITSTATUS(status), 0) << log_text();
    finished = kills >= 3;
    if (!finished) {
      // Finished before the third kill: start over with a fresh file.
      fs::remove(out);
      fs::remove(out + ".journal");
      kills = 0;
      attempt = -1;  // the next run creates the file again
    }
  }
  ASSERT_TRUE(finished) << "could not kill the search three times before it finished\n" << log_text();
  const auto contents = diffsearch::io::read_results(out);
  std::set<std::string> ok_items;
  for (const auto& r : contents.rows) {
    if (r.status == "ok") {
      const std::string item = r.unit_key + "#" + std::to_string(r.prompt_begin);
      EXPECT_TRUE(ok_items.insert(item).second) << item << " recorded twice";
    }
  }
  EXPECT_EQ(answers(out), expected);
  // The HDF5 file alone (no journal) holds the same.
  fs::remove(out + ".journal");
  EXPECT_EQ(answers(out), expected);
}

// SIGTERM (as Slurm sends it to every task before a time limit): no new work,
// everything received written, exit 75; --resume then finishes the search.
TEST_F(SearchMpiTest, SigtermStopsWithResumeCodeAndResumeFinishes) {
  ASSERT_EQ(run(search_args(path("one.h5"))), 0) << log_text();
  const std::string expected = answers(path("one.h5"));
  for (int np : {1, 3}) {
    const std::string out = path("term" + std::to_string(np) + ".h5");
    const std::string command = (np > 1 ? mpirun(np) : std::string()) + search_args(out, "fake:sleep_ms=20") +
                                " >> " + path("log.txt") + " 2>&1";
    const pid_t child = diffsearch::testing::start_command_in_own_session(command);
    ASSERT_GE(child, 0);
    const auto start = std::chrono::steady_clock::now();
    while (diffsearch::testing::journal_evaluation_rows(out) < 5 && std::chrono::steady_clock::now() - start < std::chrono::seconds(30)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // Every diffsearch process of the session, not mpirun (which would
    // abort the job): what srun does.
    DIR* proc = opendir("/proc");
    ASSERT_NE(proc, nullptr);
    while (dirent* e = readdir(proc)) {
      const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
      if (pid <= 0 || getsid(pid) != child) continue;
      std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
      std::string name;
      comm >> name;
      if (name == "diffsearch") kill(pid, SIGTERM);
    }
    closedir(proc);
    int status = 0;
    waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 75) << np << " processes\n" << log_text();
    const std::size_t rows = diffsearch::testing::journal_evaluation_rows(out);
    EXPECT_GE(rows, 5u);
    EXPECT_LT(rows, diffsearch::io::read_results(path("one.h5")).rows.size());
    ASSERT_EQ(run((np > 1 ? mpirun(np) : std::string()) + search_args(out) + " --resume"), 0) << log_text();
    EXPECT_EQ(answers(out), expected);
  }
}

TEST_F(SearchMpiTest, BadInputIsRefusedClearly) {
  std::ofstream(path("bad_tasks.txt")) << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps\n"
                                          "Generate a SD9 pipeline using the DDIM sampler with 20 steps\n";
  const std::string bin = DIFFSEARCH_BIN;
  EXPECT_EQ(run(bin + " search --tasks " + path("bad_tasks.txt") + " --out " + path("x.h5") +
                " --evaluator fake"), 2);
  EXPECT_NE(log_text().find("bad_tasks.txt:2"), std::string::npos) << log_text();
  EXPECT_FALSE(fs::exists(path("x.h5")));

  std::ofstream(path("models.json")) << R"({"SD1.5": "no_such_folder"})";
  EXPECT_EQ(run(bin + " search --tasks " + path("tasks.txt") + " --models " + path("models.json") + " --clip " +
                dir_.string() + " --out " + path("y.h5")), 2);
  EXPECT_NE(log_text().find("no_such_folder"), std::string::npos) << log_text();

  std::ofstream(path("text.h5")) << "hello";
  EXPECT_EQ(run(bin + " distill " + path("text.h5") + " --tasks " + path("tasks.txt") + " -o " + path("p.json")), 2);
  EXPECT_NE(log_text().find("not an HDF5 file"), std::string::npos) << log_text();
  {
    auto f = diffsearch::io::H5File::create(path("other.h5"));
    f.set_attribute("/", "creator", "another tool");
  }
  EXPECT_EQ(run(bin + " status " + path("other.h5")), 2);
  EXPECT_NE(log_text().find("not a diffsearch results file"), std::string::npos) << log_text();

  ASSERT_EQ(run(search_args(path("r.h5"))), 0);
  {
    // A recorded configuration with a field of the wrong type: status names
    // the file and the field instead of a JSON library's type error.
    fs::copy_file(path("r.h5"), path("damaged.h5"));
    auto f = diffsearch::io::H5File::open(path("damaged.h5"), true);
    auto config = nlohmann::json::parse(f.string_attribute("/", "config"));
    config["strategy"] = 5;
    f.set_attribute("/", "config", config.dump());
  }
  EXPECT_EQ(run(bin + " status " + path("damaged.h5")), 2);
  EXPECT_NE(log_text().find("damaged.h5: the recorded configuration's field 'strategy' is number"), std::string::npos)
      << log_text();
  EXPECT_EQ(run(search_args(path("r.h5"))), 2) << "an existing file needs --resume";
  EXPECT_EQ(run(search_args(path("r.h5")) + " --resume --seed 3"), 2);
  EXPECT_NE(log_text().find("fields that differ: seed"), std::string::npos) << log_text();
  // The frontier's knobs are part of the configuration too.
  EXPECT_EQ(run(search_args(path("r.h5")) + " --resume --loss-tolerance 0.002"), 2);
  EXPECT_NE(log_text().find("fields that differ: frontier"), std::string::npos) << log_text();
}

}  // namespace
