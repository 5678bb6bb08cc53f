// Sharded searches and `diffsearch merge`, through the executable with the
// fake evaluator (fast, no Slurm): two shards merged answer as one unsharded
// search, the merged file is an ordinary results file (status, distill,
// h5py, --resume with the unsharded command), and wrong inputs are refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::testing::read_text_file;
using diffsearch::testing::run_command;

class ShardMergeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("shard_merge");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Three baseline groups (SD1.5, SD2.1, SDXL with DDIM, 20 steps): 21 DeepCache tasks, 18 units.
  std::string search(const std::string& out, const std::string& extra = "") const {
    return std::string(DIFFSEARCH_BIN) + " search --grid 4 --filter /ddim/20/deepcache/ --space " + DIFFSEARCH_SOURCE_DIR +
           "/data/demo/space.json --num-samples 2 --speed-measure macs --evaluator fake --strategy exhaustive --out " + out +
           " " + extra;
  }
  // Runs `command`, its output appended to log.txt; returns its exit status.
  int run(const std::string& command) const { return run_command(command + " >> " + path("log.txt") + " 2>&1").code; }
  std::string log() const { return read_text_file(path("log.txt")); }
  // search_params.json without row numbers (where a row sits depends on the file).
  std::string answers(const std::string& results) {
    const std::string out = results + ".params.json";
    EXPECT_EQ(run(std::string(DIFFSEARCH_BIN) + " distill " + results + " --grid 4 -o " + out), 0) << log();
    auto j = nlohmann::json::parse(read_text_file(out));
    std::size_t answered = 0;
    for (auto& [k, v] : j.items()) {
      if (k[0] == '_') continue;
      v.erase("rows");
      answered += v["status"] != "not_measured";
    }
    j.erase("_rows");
    j.erase("_spent");  // GPU-seconds: wall time, unlike the answers
    EXPECT_GT(answered, 0u);
    return j.dump(1);
  }

  fs::path dir_;
};

TEST_F(ShardMergeTest, TwoShardsMergedAnswerAsOneSearch) {
  ASSERT_EQ(run(search(path("whole.h5"))), 0) << log();
  ASSERT_EQ(run(search(path("s0.h5"), "--shard 0/2")), 0) << log();
  ASSERT_EQ(run(search(path("s1.h5"), "--shard 1/2")), 0) << log();

  const auto whole = diffsearch::io::read_results(path("whole.h5"));
  const auto s0 = diffsearch::io::read_results(path("s0.h5"));
  const auto s1 = diffsearch::io::read_results(path("s1.h5"));
  EXPECT_EQ(s0.config["shard"], (nlohmann::json{{"index", 0}, {"count", 2}}));
  std::set<std::string> units0, units1, units_whole;
  std::set<std::string> baselines0, baselines1;
  for (const auto& r : s0.rows) units0.insert(r.unit_key), baselines0.insert(r.baseline_key);
  for (const auto& r : s1.rows) units1.insert(r.unit_key), baselines1.insert(r.baseline_key);
  for (const auto& r : whole.rows) units_whole.insert(r.unit_key);
  EXPECT_FALSE(units0.empty());
  EXPECT_FALSE(units1.empty());
  for (const auto& b : baselines0) EXPECT_EQ(baselines1.count(b), 0u) << b << " measured by both shards";
  std::set<std::string> both = units0;
  both.insert(units1.begin(), units1.end());
  EXPECT_EQ(both.size(), units0.size() + units1.size());
  EXPECT_EQ(both, units_whole) << "the shards' units together are the unsharded search's";

  ASSERT_EQ(run(std::string(DIFFSEARCH_BIN) + " merge " + path("s1.h5") + " " + path("s0.h5") + " -o " +
                path("all.h5")),
            0)
      << log();
  EXPECT_FALSE(fs::exists(path("all.h5.journal")));
  EXPECT_EQ(answers(path("all.h5")), answers(path("whole.h5")));
  const auto merged = diffsearch::io::read_results(path("all.h5"));
  EXPECT_EQ(merged.config, whole.config);
  EXPECT_EQ(merged.rows.size(), s0.rows.size() + s1.rows.size());

  // status reads it, counting the units of both shards.
  const auto status_run = run_command(std::string(DIFFSEARCH_BIN) + " status --json " + path("all.h5"));
  ASSERT_EQ(status_run.code, 0);
  const auto status = nlohmann::json::parse(status_run.out);
  EXPECT_EQ(status["units_ok"], units_whole.size());
  EXPECT_EQ(status["units_total"], units_whole.size());

  // h5py reads it with no diffsearch code.
  ASSERT_EQ(run("/usr/bin/python3 -c \"import h5py, json, sys; f = h5py.File(sys.argv[1], 'r'); "
                "assert f.attrs['format'] in (b'diffsearch-results', 'diffsearch-results'); "
                "assert len(f['evaluations']) == int(sys.argv[2]), len(f['evaluations']); "
                "assert 'shard' not in json.loads(f.attrs['config'])\" " +
                path("all.h5") + " " + std::to_string(merged.rows.size())),
            0)
      << log();

  // The unsharded command resumes the merged file: nothing left to measure.
  ASSERT_EQ(run(search(path("all.h5"), "--resume")), 0) << log();
  EXPECT_NE(log().find("(" + std::to_string(units_whole.size()) + " already in"), std::string::npos) << log();
  EXPECT_EQ(diffsearch::io::read_results(path("all.h5")).rows.size(), merged.rows.size());
}

TEST_F(ShardMergeTest, WrongShardsAndFilesRefused) {
  ASSERT_EQ(run(search(path("s0.h5"), "--shard 0/2")), 0) << log();
  ASSERT_EQ(run(search(path("s1.h5"), "--shard 1/2")), 0) << log();
  ASSERT_EQ(run(search(path("seed.h5"), "--shard 1/2 --seed 5")), 0) << log();
  const std::string merge = std::string(DIFFSEARCH_BIN) + " merge ";

  EXPECT_EQ(run(merge + path("s0.h5") + " " + path("seed.h5") + " -o " + path("x.h5")), 2);
  EXPECT_NE(log().find("seed.h5: another search configuration than " + path("s0.h5") + " (fields that differ: seed)"),
            std::string::npos)
      << log();
  EXPECT_EQ(run(merge + path("s0.h5") + " " + path("s0.h5") + " -o " + path("x.h5")), 2);
  EXPECT_NE(log().find("are both shard 0/2"), std::string::npos) << log();
  EXPECT_EQ(run(merge + path("s0.h5") + " -o " + path("x.h5")), 2);
  EXPECT_NE(log().find("shard 1/2 missing"), std::string::npos) << log();
  EXPECT_EQ(run(merge + path("s0.h5") + " " + path("s1.h5") + " -o " + path("s0.h5")), 2);
  EXPECT_NE(log().find("is also an input"), std::string::npos) << log();
  std::ofstream(path("taken.h5")) << "x";
  EXPECT_EQ(run(merge + path("s0.h5") + " " + path("s1.h5") + " -o " + path("taken.h5")), 2);
  EXPECT_NE(log().find("taken.h5 already exists"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(path("x.h5")));

  // A shard file resumed as another shard, or sharded past its groups.
  EXPECT_EQ(run(search(path("s0.h5"), "--shard 1/2 --resume")), 2);
  EXPECT_NE(log().find("fields that differ: shard"), std::string::npos) << log();
  EXPECT_EQ(run(search(path("y.h5"), "--shard 0/4")), 2);
  EXPECT_NE(log().find("3 baseline groups"), std::string::npos) << log();
  EXPECT_EQ(run(search(path("y.h5"), "--shard 2/2")), 2);
  EXPECT_NE(log().find("--shard 2/2: shard numbers run from 0 to K-1"), std::string::npos) << log();

  // An unfinished shard (its journal cut short): refused, or merged with --partial.
  {
    const std::string journal = read_text_file(path("s1.h5.journal"));
    std::size_t cut = journal.size() - 1;
    for (int lines = 0; lines < 3; ++lines) cut = journal.rfind('\n', cut - 1);
    std::ofstream(path("s1.h5.journal"), std::ios::trunc) << journal.substr(0, cut + 1);
  }
  EXPECT_EQ(run(merge + path("s0.h5") + " " + path("s1.h5") + " -o " + path("x.h5")), 2);
  EXPECT_NE(log().find("has not finished"), std::string::npos) << log();
  EXPECT_FALSE(fs::exists(path("x.h5")));
  ASSERT_EQ(run(merge + path("s0.h5") + " " + path("s1.h5") + " -o " + path("x.h5") + " --partial"), 0) << log();
  EXPECT_NE(answers(path("x.h5")).find("not_measured"), std::string::npos);
}

}  // namespace
