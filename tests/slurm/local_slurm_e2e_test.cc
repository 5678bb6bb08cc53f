// Batch scripts from `diffsearch slurm render` on a real one-node Slurm
// (slurm/testing/local-slurm-start.sh: munged, slurmctld and slurmd from
// Debian's packages, started for this test program and stopped after it):
// the demo search on the tiny models (CPU, 3 tasks) submitted and finished;
// a job requeued mid-run (scontrol requeue) and one stopped by the signal
// before its time limit, each resuming and measuring every unit exactly once;
// a two-shard job array whose merged results answer as one unsharded search.
// Skipped, saying so, only where slurmctld is not installed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kSource = DIFFSEARCH_SOURCE_DIR;
const std::string kBin = DIFFSEARCH_BIN;

using diffsearch::testing::read_text_file;
using diffsearch::testing::run_command;

bool slurm_installed() {
  for (const char* dir : {"/usr/sbin/", "/usr/bin/", "/usr/local/sbin/"}) {
    if (access((std::string(dir) + "slurmctld").c_str(), X_OK) == 0) return true;
  }
  return false;
}

class LocalSlurm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!slurm_installed()) return;
    const auto started = run_command("bash " + kSource + "/slurm/testing/local-slurm-start.sh --stop-with " +
                                     std::to_string(getpid()) + " 2>&1");
    const std::string& out = started.out;
    start_output_ = out;
    if (started.code != 0) return;
    std::smatch m;
    if (std::regex_search(out, m, std::regex("export SLURM_CONF=(\\S+)"))) setenv("SLURM_CONF", m[1].str().c_str(), 1);
    if (std::regex_search(out, m, std::regex("export DIFFSEARCH_SLURM_DIR=(\\S+)"))) cluster_dir_ = m[1].str();
  }
  static void TearDownTestSuite() {
    if (!cluster_dir_.empty()) run_command("bash " + kSource + "/slurm/testing/local-slurm-stop.sh " + cluster_dir_);
    cluster_dir_.clear();
  }

  void SetUp() override {
    if (!slurm_installed()) {
      GTEST_SKIP() << "slurmctld is not installed (Debian packages slurm-wlm and munge; scripts/setup.sh installs "
                      "them): the Slurm end-to-end tests need a real Slurm";
    }
    ASSERT_FALSE(cluster_dir_.empty()) << "the local Slurm did not start:\n" << start_output_;
    dir_ = diffsearch::testing::fresh_test_dir("local_slurm_e2e");
  }
  void TearDown() override {
    if (!HasFailure() && !dir_.empty()) fs::remove_all(dir_);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // The demo search's arguments (tiny models at 64 px, CPU, MAC speedups) on
  // a slice of category 4.
  std::string search_args(const std::string& filter, const std::string& out = "results.h5") const {
    return "--grid 4 --filter " + filter + " --models " + kSource + "/data/demo/models.json --clip " + kSource +
           "/tests/data/fixtures/models/tiny-clip --space " + kSource + "/data/demo/space.json --out " + out +
           " --num-samples 2 --batch-size 2 --speed-measure macs --strategy exhaustive"
           " --resolution SD1.5=64 --resolution SD2.1=64 --resolution SDXL=64 --device cpu --progress-interval 1";
  }
  // Renders a CPU job of `tasks` processes on this node's 2 cores; returns the script's path.
  std::string render(const std::string& options, const std::string& filter, int tasks = 3) const {
    const std::string script = path("job.sh");
    const auto rendered = run_command("cd " + dir_.string() + " && " + kBin +
                                      " slurm render --gpus-per-node 0 --ntasks-per-node " + std::to_string(tasks) +
                                      " --overcommit --time 00:30:00 " + options + " -o " + script + " -- " +
                                      search_args(filter) + " 2>&1");
    EXPECT_EQ(rendered.code, 0) << rendered.out;
    return script;
  }
  std::string submit(const std::string& script) const {
    const auto r = run_command("sbatch --parsable " + script + " 2>&1");
    EXPECT_EQ(r.code, 0) << r.out;
    return r.out.substr(0, r.out.find_first_of(";\n"));
  }
  static std::string job_field(const std::string& job, const std::string& field) {
    const std::string out = run_command("scontrol show job " + job + " 2>/dev/null").out;
    std::smatch m;
    if (std::regex_search(out, m, std::regex(field + "=(\\S+)"))) return m[1].str();
    return "";
  }
  // Waits until no task of `job` is pending, running or completing; returns
  // the final states (one per array task).
  std::vector<std::string> wait_for(const std::string& job, int timeout_s = 300) const {
    const auto start = Clock::now();
    while (Clock::now() - start < std::chrono::seconds(timeout_s)) {
      const std::string queued = run_command("squeue -h -j " + job + " -o %T 2>/dev/null").out;
      if (queued.find_first_not_of(" \n") == std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    const std::string out = run_command("scontrol show job " + job + " 2>/dev/null").out;
    std::vector<std::string> states;
    const std::regex state("JobState=(\\S+)");
    for (auto it = std::sregex_iterator(out.begin(), out.end(), state); it != std::sregex_iterator(); ++it) {
      states.push_back((*it)[1].str());
    }
    return states;
  }
  std::string logs() const {
    std::string text;
    if (fs::exists(path("slurm-logs"))) {
      for (const auto& f : fs::directory_iterator(path("slurm-logs"))) {
        text += "== " + f.path().string() + "\n" + read_text_file(f.path());
      }
    }
    text += "== slurmd.log (tail)\n";
    return text + run_command("tail -n 30 " + cluster_dir_ + "/log/slurmd.log").out;
  }
  // search_params.json without row numbers (where a row sits depends on the file).
  std::string answers(const std::string& results) const {
    const std::string out = results + ".params.json";
    const auto distill = run_command(kBin + " distill " + results + " --grid 4 -o " + out + " 2>&1");
    EXPECT_EQ(distill.code, 0) << distill.out;
    auto j = nlohmann::json::parse(read_text_file(out));
    for (auto& [k, v] : j.items()) {
      if (k[0] != '_') v.erase("rows");
    }
    j.erase("_rows");
    j.erase("_spent");  // GPU-seconds: wall time, unlike the answers
    return j.dump(1);
  }

  // Every planned unit measured: one ok row each, none failed; returns the units.
  static std::set<std::string> expect_complete(const diffsearch::io::ResultsContents& c) {
    std::map<std::string, int> ok;
    for (const auto& r : c.rows) {
      EXPECT_EQ(r.status, "ok") << r.unit_key << ": " << r.error;
      if (r.status == "ok") ok[r.unit_key]++;
    }
    std::set<std::string> units;
    for (const auto& [unit, n] : ok) {
      EXPECT_EQ(n, 1) << unit << " measured " << n << " times";
      units.insert(unit);
    }
    EXPECT_FALSE(c.runs.empty());
    if (!c.runs.empty()) {
      EXPECT_EQ(c.runs.back()["attributes"]["units_total"].get<std::size_t>(), units.size());
    }
    return units;
  }

  void interrupt_and_resume(const std::string& launcher, const std::string& interrupt,
                            const std::string& expected_log);

  fs::path dir_;
  static inline std::string cluster_dir_;
  static inline std::string start_output_;
};

TEST_F(LocalSlurm, RenderedScriptRunsTheDemoSearch) {
  const std::string job = submit(render("--launcher srun", "/ddim/20/deepcache/"));
  const auto states = wait_for(job);
  ASSERT_EQ(states, std::vector<std::string>{"COMPLETED"}) << logs();
  EXPECT_EQ(job_field(job, "ExitCode"), "0:0");

  const auto results = diffsearch::io::read_results(path("results.h5"));
  const auto units = expect_complete(results);
  EXPECT_EQ(units.size(), 18u) << "3 models x 6 DeepCache settings";
  std::set<int64_t> ranks;
  for (const auto& r : results.rows) ranks.insert(r.rank);
  EXPECT_EQ(ranks, (std::set<int64_t>{1, 2})) << "two workers under srun --mpi=pmix";
  EXPECT_EQ(results.runs.back()["attributes"]["processes"], 3);

  ASSERT_EQ(run_command(kBin + " distill " + path("results.h5") + " --grid 4 -o " + path("search_params.json")).code, 0);
  const auto params = nlohmann::json::parse(read_text_file(path("search_params.json")));
  std::size_t tasks = 0;
  for (const auto& [key, answer] : params.items()) {
    if (key[0] == '_' || key.find("/ddim/20/deepcache/") == std::string::npos) continue;
    ++tasks;
    EXPECT_TRUE(answer["status"] == "ok" || answer["status"] == "infeasible") << key << ": " << answer["status"];
    EXPECT_EQ(answer["units"]["measured"], 6) << key;
  }
  EXPECT_EQ(tasks, 21u) << "3 models x 7 speedup targets";
  const std::string log = logs();
  EXPECT_NE(log.find("start 1 on"), std::string::npos) << log;
  EXPECT_NE(log.find("search finished"), std::string::npos) << log;
}

// Submits the demo slice, interrupts it with `interrupt` once a few units are
// in, lets the requeued job start at once, and checks that it finished with
// every unit measured exactly once, across two starts.
void LocalSlurm::interrupt_and_resume(const std::string& launcher, const std::string& interrupt,
                                      const std::string& expected_log) {
  const std::string job = submit(render("--launcher " + launcher, "/ddim/20/deepcache/"));
  const auto start = Clock::now();
  while (diffsearch::testing::journal_evaluation_rows(path("results.h5")) < 4 && Clock::now() - start < std::chrono::seconds(180)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::size_t before = diffsearch::testing::journal_evaluation_rows(path("results.h5"));
  ASSERT_GE(before, 4u) << logs();
  const auto interrupted = run_command(interrupt + " " + job + " 2>&1");
  ASSERT_EQ(interrupted.code, 0) << interrupted.out;
  // Slurm holds a requeued job back for two minutes (BeginTime); release it once pending.
  const auto requeued = Clock::now();
  while (job_field(job, "JobState") != "PENDING" && Clock::now() - requeued < std::chrono::seconds(120)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(job_field(job, "JobState"), "PENDING") << logs();
  // Not at once: slurmd refuses to launch a job whose last credential was revoked (by
  // the requeue) within the same second as the new one was made.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const auto released = run_command("scontrol update JobId=" + job + " StartTime=now 2>&1");
  ASSERT_EQ(released.code, 0) << released.out;

  const auto states = wait_for(job);
  ASSERT_EQ(states, std::vector<std::string>{"COMPLETED"}) << logs();
  EXPECT_EQ(job_field(job, "Restarts"), "1");

  const auto results = diffsearch::io::read_results(path("results.h5"));
  const auto units = expect_complete(results);
  EXPECT_EQ(units.size(), 18u);
  EXPECT_LT(before, units.size()) << "the interruption came before the end";
  std::map<std::string, std::size_t> rows_per_run;
  for (const auto& r : results.rows) rows_per_run[r.run_id]++;
  EXPECT_EQ(rows_per_run.size(), 2u) << "rows from the first start and from the requeued one";
  const std::string log = logs();
  EXPECT_NE(log.find(expected_log), std::string::npos) << log;
  EXPECT_NE(log.find("start 2 on"), std::string::npos) << log;
  EXPECT_NE(log.find("search finished"), std::string::npos) << log;
}

// What an administrator or preemption does: Slurm terminates the job
// (SIGTERM everywhere) and queues it again. mpirun inside the job this time.
TEST_F(LocalSlurm, RequeuedMidRunResumesAndMeasuresEveryUnitOnce) {
  interrupt_and_resume("mpirun", "scontrol requeue", "terminated by Slurm");
}

// What --signal=B:USR1@300 does before the time limit: SIGUSR1 to the batch
// shell alone; the search stops (exit 75) and the job requeues itself.
TEST_F(LocalSlurm, SignalBeforeTheTimeLimitStopsAndRequeuesItself) {
  interrupt_and_resume("srun", "scancel --batch --signal=USR1", "stopped before the time limit and requeued");
}

TEST_F(LocalSlurm, TwoShardArrayMergedAnswersAsOneSearch) {
  const std::string filter = "/ddim/20/deepcache/";
  // Two processes per shard (a coordinator and a worker): both shards run at once on 2 cores.
  const std::string job = submit(render("--launcher srun --array 2", filter, 2));
  const auto states = wait_for(job);
  ASSERT_EQ(states, (std::vector<std::string>{"COMPLETED", "COMPLETED"})) << logs();

  std::set<std::string> all_units;
  for (int shard : {0, 1}) {
    const auto c = diffsearch::io::read_results(path("results.shard-" + std::to_string(shard) + "-of-2.h5"));
    EXPECT_EQ(c.config["shard"]["index"], shard);
    for (const auto& unit : expect_complete(c)) EXPECT_TRUE(all_units.insert(unit).second) << unit << " in both shards";
  }
  const auto merged_run = run_command(kBin + " merge " + path("results.shard-0-of-2.h5") + " " +
                                     path("results.shard-1-of-2.h5") + " -o " + path("merged.h5") + " 2>&1");
  ASSERT_EQ(merged_run.code, 0) << merged_run.out;

  // The same search unsharded, in one process outside Slurm.
  const auto whole_run =
      run_command("cd " + dir_.string() + " && " + kBin + " search " + search_args(filter, path("whole.h5")) + " 2>&1");
  ASSERT_EQ(whole_run.code, 0) << whole_run.out;
  const auto whole = diffsearch::io::read_results(path("whole.h5"));
  EXPECT_EQ(expect_complete(whole), all_units);
  EXPECT_EQ(diffsearch::io::read_results(path("merged.h5")).config, whole.config);
  EXPECT_EQ(answers(path("merged.h5")), answers(path("whole.h5")));
}

}  // namespace
