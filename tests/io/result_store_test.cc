// The results file: round trip through HDF5 and the journal, replay after a
// simulated kill (torn journal line, damaged HDF5), configuration checks,
// other files refused, and h5py/pandas reading it with no diffsearch code.
#include "io/result_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/error.h"
#include "io/hdf5_table.h"

namespace diffsearch::io {
namespace {

namespace fs = std::filesystem;

class ResultStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("result_store_test_" + std::to_string(getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "results.h5").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string path_;
};

nlohmann::json config() { return {{"samples", 4}, {"seed", 0}, {"speed_measure", "macs"}}; }

EvaluationRow make_row(int i, bool ok = true) {
  EvaluationRow r;
  r.unit_key = "sd15/ddim/20/512px/deepcache/{\"x\":" + std::to_string(i) + "}";
  r.space_key = "sd15/ddim/20/512px/deepcache";
  r.baseline_key = "sd15/ddim/20/512px";
  r.model = "SD1.5";
  r.sampler = "DDIM";
  r.steps = 20;
  r.resolution = 512;
  r.methods = "deepcache";
  r.setting = "{\"deepcache\":{\"cache_interval\":" + std::to_string(i) + "}}";
  r.status = ok ? "ok" : "failed";
  r.error = ok ? "" : "boom \"quoted\" \u00e9";
  r.attempt = 1;
  r.num_samples = 4;
  r.batch_size = 2;
  r.speedup = ok ? 1.5 + i : std::nan("");
  r.speedup_macs = 2.0 + i;
  r.score_loss = 0.01 * i;
  r.macs_base = 1000000LL * i;
  r.device = "cpu";
  r.host = "host";
  r.rank = i % 3;
  r.started_at = 1000.0 + i;
  r.finished_at = 1001.0 + i;
  r.run_id = "run-1";
  for (int p = 0; p < 2; ++p) r.prompts.push_back({p, 30.0 + p, 29.5 + p, 35.0, 0.9});
  return r;
}

TEST_F(ResultStoreTest, RoundTripThroughHdf5AndJournal) {
  {
    auto store = ResultStore::open(path_, config(), false);
    store.begin_run("run-1", {{"command_line", "diffsearch search"}, {"hosts", "[\"host\"]"}});
    for (int i = 0; i < 5; ++i) store.append(make_row(i, i != 3));
    store.close();
  }
  const auto from_journal = read_results(path_);
  EXPECT_TRUE(from_journal.from_journal);
  fs::remove(path_ + ".journal");
  const auto from_h5 = read_results(path_);
  EXPECT_FALSE(from_h5.from_journal);
  for (const auto* c : {&from_journal, &from_h5}) {
    ASSERT_EQ(c->rows.size(), 5u);
    EXPECT_EQ(c->config, config());
    ASSERT_EQ(c->runs.size(), 1u);
    EXPECT_EQ(c->runs[0]["attributes"]["command_line"], "diffsearch search");
    EXPECT_EQ(c->rows[2].unit_key, make_row(2).unit_key);
    EXPECT_EQ(c->rows[2].speedup_macs, 4.0);
    EXPECT_EQ(c->rows[3].status, "failed");
    EXPECT_EQ(c->rows[3].error, make_row(3, false).error);
    EXPECT_TRUE(std::isnan(c->rows[3].speedup));
    ASSERT_EQ(c->rows[4].prompts.size(), 2u);
    EXPECT_EQ(c->rows[4].prompts[1].clip_acc, 30.5);
  }
  // Resuming a file without a journal (copied elsewhere) recreates the journal.
  auto store = ResultStore::open(path_, config(), true);
  EXPECT_EQ(store.rows().size(), 5u);
  store.close();
  EXPECT_TRUE(fs::exists(path_ + ".journal"));
}

TEST_F(ResultStoreTest, ExistingFileNeedsResume) {
  ResultStore::open(path_, config(), false).close();
  EXPECT_THROW(ResultStore::open(path_, config(), false), InputError);
}

TEST_F(ResultStoreTest, ReplaysJournalAfterKillWithTornLineAndDamagedHdf5) {
  // A child process writes and "dies" (_exit, no destructors): 6 rows
  // flushed to HDF5, 3 more only in the journal, then half a line.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = ResultStore::open(path_, config(), false);
    for (int i = 0; i < 6; ++i) store.append(make_row(i));
    store.flush();
    for (int i = 6; i < 9; ++i) store.append(make_row(i));
    std::ofstream(path_ + ".journal", std::ios::app) << "{\"kind\":\"evaluation\",\"unit_key\":\"torn";
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  {
    // Damage the HDF5 file's second half, as a kill in the middle of a write might.
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0, std::ios::end);
    const auto size = static_cast<long>(f.tellp());
    f.seekp(size / 2);
    const std::string junk(static_cast<std::size_t>(size - size / 2), '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto store = ResultStore::open(path_, config(), true);
  EXPECT_EQ(store.rows().size(), 9u);
  store.append(make_row(9));
  store.close();
  const auto c = read_results(path_);
  ASSERT_EQ(c.rows.size(), 10u);
  fs::remove(path_ + ".journal");
  const auto h5 = read_results(path_);
  ASSERT_EQ(h5.rows.size(), 10u);
  EXPECT_EQ(h5.rows[8].unit_key, make_row(8).unit_key);
  EXPECT_EQ(h5.rows[9].unit_key, make_row(9).unit_key);
}

// A group commit defers only the fdatasync: every row is in the journal the
// moment append returns, so a process killed before any sync loses none.
TEST_F(ResultStoreTest, DeferredSyncLosesNothingWhenTheProcessDies) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto store = ResultStore::open(path_, config(), false);
    store.set_sync_interval(3600);
    for (int i = 0; i < 5; ++i) store.append(make_row(i), /*defer_sync=*/true);
    _exit(0);  // no sync, no flush, no destructor
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  auto store = ResultStore::open(path_, config(), true);
  ASSERT_EQ(store.rows().size(), 5u);
  EXPECT_EQ(store.rows()[4].unit_key, make_row(4).unit_key);
  store.sync();
  store.close();
  EXPECT_EQ(read_results(path_).rows.size(), 5u);
}

TEST_F(ResultStoreTest, UnreadableHdf5IsRebuiltFromJournal) {
  {
    auto store = ResultStore::open(path_, config(), false);
    for (int i = 0; i < 3; ++i) store.append(make_row(i));
    store.close();
  }
  std::ofstream(path_, std::ios::trunc) << "garbage";
  auto store = ResultStore::open(path_, config(), true);
  EXPECT_EQ(store.rows().size(), 3u);
  store.close();
  fs::remove(path_ + ".journal");
  EXPECT_EQ(read_results(path_).rows.size(), 3u);
}

TEST_F(ResultStoreTest, ResumeWithOtherConfigNamesTheFields) {
  ResultStore::open(path_, config(), false).close();
  auto other = config();
  other["samples"] = 8;
  other["dtype"] = "float64";
  try {
    ResultStore::open(path_, other, true);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("samples"), std::string::npos) << m;
    EXPECT_NE(m.find("dtype"), std::string::npos) << m;
    EXPECT_EQ(m.find("seed"), std::string::npos) << m;
  }
}

TEST_F(ResultStoreTest, RefusesNonHdf5AndOtherToolsHdf5) {
  std::ofstream(path_) << "not hdf5 at all";
  EXPECT_THROW(read_results(path_), InputError);
  EXPECT_THROW(ResultStore::open(path_, config(), true), InputError);
  {
    H5File f = H5File::create(path_);
    f.set_attribute("/", "creator", "someone else");
  }
  try {
    read_results(path_);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not a diffsearch results file"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ResultStore::open(path_, config(), true), InputError);
}

TEST_F(ResultStoreTest, PandasAndH5pyReadTheFile) {
  if (std::system("/usr/bin/python3 -c 'import h5py, pandas' 2>/dev/null") != 0) {
    GTEST_SKIP() << "Debian's python3-h5py and python3-pandas are not installed";
  }
  {
    auto store = ResultStore::open(path_, config(), false);
    store.begin_run("run-1", {{"command_line", "diffsearch search"}});
    for (int i = 0; i < 4; ++i) store.append(make_row(i, i != 1));
    store.close();
  }
  const std::string script = (dir_ / "read.py").string();
  std::ofstream(script) << "import sys, json, h5py, pandas\n"
                           "f = h5py.File(sys.argv[1], 'r')\n"
                           "df = pandas.DataFrame(f['evaluations'][:])\n"
                           "assert len(df) == 4, len(df)\n"
                           "assert df['unit_key'][2].decode() .endswith('{\"x\":2}'), df['unit_key'][2]\n"
                           "assert df['status'][1] == b'failed'\n"
                           "assert df['speedup_macs'][3] == 5.0\n"
                           "p = pandas.DataFrame(f['prompt_scores'][:])\n"
                           "assert len(p) == 8 and p['row'].max() == 3\n"
                           "assert f.attrs['format'] == 'diffsearch-results'\n"
                           "assert json.loads(f.attrs['config'])['samples'] == 4\n"
                           "assert f['runs/run-1'].attrs['command_line'] == 'diffsearch search'\n"
                           "print('ok')\n";
  EXPECT_EQ(std::system(("/usr/bin/python3 " + script + " " + path_).c_str()), 0);
}

}  // namespace
}  // namespace diffsearch::io
