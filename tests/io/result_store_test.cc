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
  r.prompt_begin = 0;
  r.prompt_end = r.num_samples;
  r.gpu_seconds = 0.5;
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

// A frontier search measures one setting on nested prompt prefixes, a row
// each; the ranges, the global prompt indices and the GPU-seconds survive
// the journal, the HDF5 file and a resume from the HDF5 file alone.
TEST_F(ResultStoreTest, PromptRangesAndGpuSecondsRoundTrip) {
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 4}, {4, 8}, {8, 16}, {16, 32}};
  auto frontier_row = [&](std::size_t i) {
    EvaluationRow r = make_row(7);
    r.num_samples = 32;
    r.prompt_begin = ranges[i].first;
    r.prompt_end = ranges[i].second;
    r.gpu_seconds = i == 2 ? std::nan("") : 0.75 * static_cast<double>(i + 1);
    r.prompts.clear();
    for (int64_t p = r.prompt_begin; p < r.prompt_end; ++p) r.prompts.push_back({p, 30.0, 29.0, 35.0, 0.9});
    return r;
  };
  {
    auto store = ResultStore::open(path_, config(), false);
    for (std::size_t i = 0; i < ranges.size(); ++i) store.append(frontier_row(i));
    store.close();
  }
  auto check = [&](const std::vector<EvaluationRow>& rows, const std::string& from) {
    ASSERT_EQ(rows.size(), ranges.size()) << from;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const EvaluationRow want = frontier_row(i);
      const EvaluationRow& r = rows[i];
      EXPECT_EQ(r.num_samples, 32) << from;
      EXPECT_EQ(r.prompt_begin, want.prompt_begin) << from;
      EXPECT_EQ(r.prompt_end, want.prompt_end) << from;
      if (std::isnan(want.gpu_seconds)) {
        EXPECT_TRUE(std::isnan(r.gpu_seconds)) << from << ": a NaN stays NaN, not the legacy default";
      } else {
        EXPECT_EQ(r.gpu_seconds, want.gpu_seconds) << from;
      }
      ASSERT_EQ(r.prompts.size(), want.prompts.size()) << from;
      for (std::size_t p = 0; p < r.prompts.size(); ++p) {
        EXPECT_EQ(r.prompts[p].prompt_index, want.prompt_begin + static_cast<int64_t>(p)) << from;
      }
    }
  };
  check(read_results(path_).rows, "journal");
  fs::remove(path_ + ".journal");
  check(read_results(path_).rows, "HDF5");
  auto store = ResultStore::open(path_, config(), true);
  check(store.rows(), "resumed from HDF5");
  store.close();
  check(read_results(path_).rows, "recreated journal");
}

// Journal lines written before prompt_begin, prompt_end and gpu_seconds
// existed: the row covered every prompt, and cost its wall time.
TEST_F(ResultStoreTest, JournalLinesWithoutTheNewKeysGetDefaults) {
  ResultStore::open(path_, config(), false).close();
  auto old_line = [](EvaluationRow r) {
    nlohmann::json j = r.to_json();
    j.erase("prompt_begin");
    j.erase("prompt_end");
    j.erase("gpu_seconds");
    j["kind"] = "evaluation";
    return j.dump() + "\n";
  };
  EvaluationRow clock_went_back = make_row(1);
  clock_went_back.finished_at = clock_went_back.started_at - 5;
  EvaluationRow never_started = make_row(2, false);
  never_started.started_at = std::nan("");
  {
    std::ofstream journal(path_ + ".journal", std::ios::app);
    journal << old_line(make_row(0)) << old_line(clock_went_back) << old_line(never_started);
  }
  auto check = [](const std::vector<EvaluationRow>& rows, const std::string& from) {
    ASSERT_EQ(rows.size(), 3u) << from;
    for (const auto& r : rows) {
      EXPECT_EQ(r.prompt_begin, 0) << from;
      EXPECT_EQ(r.prompt_end, 4) << from << ": num_samples";
    }
    EXPECT_EQ(rows[0].gpu_seconds, 1.0) << from << ": finished_at - started_at";
    EXPECT_TRUE(std::isnan(rows[1].gpu_seconds)) << from << ": finished before it started";
    EXPECT_TRUE(std::isnan(rows[2].gpu_seconds)) << from << ": no start time";
  };
  check(read_results(path_).rows, "journal");
  // Resuming rebuilds the HDF5 file (behind its journal) with the defaults.
  auto store = ResultStore::open(path_, config(), true);
  check(store.rows(), "resumed");
  store.close();
  fs::remove(path_ + ".journal");
  check(read_results(path_).rows, "rebuilt HDF5");

  // A null gpu_seconds is a NaN that was written, not an old line.
  nlohmann::json j = make_row(0).to_json();
  j["gpu_seconds"] = nullptr;
  EXPECT_TRUE(std::isnan(EvaluationRow::from_json(j).gpu_seconds));
}

// A results file as the previous version wrote it: /evaluations without
// prompt_begin, prompt_end and gpu_seconds (and a journal, when `journal`,
// of lines without them).
void write_old_format_file(const std::string& path, const std::vector<EvaluationRow>& rows, bool journal) {
  Schema old_schema;
  for (const auto& c : evaluations_schema()) {
    if (c.name != "prompt_begin" && c.name != "prompt_end" && c.name != "gpu_seconds" && c.name != "error_kind") {
      old_schema.push_back({c.name, c.type});
    }
  }
  ASSERT_EQ(old_schema.size(), 33u);
  // The columns' values by name, from the journal form (null is NaN).
  std::vector<Row> eval_rows, prompt_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const nlohmann::json j = rows[i].to_json();
    Row values;
    for (const auto& c : old_schema) {
      const auto& v = j.at(c.name);
      if (c.type == ColumnType::string) values.emplace_back(v.get<std::string>());
      if (c.type == ColumnType::int64) values.emplace_back(v.get<int64_t>());
      if (c.type == ColumnType::float64) values.emplace_back(v.is_null() ? std::nan("") : v.get<double>());
    }
    eval_rows.push_back(values);
    for (const auto& p : rows[i].prompts) {
      prompt_rows.push_back(Row{rows[i].unit_key, static_cast<int64_t>(i), p.prompt_index, p.clip_base,
                                p.clip_acc, p.psnr, p.ssim});
    }
  }
  H5File file = H5File::create(path);
  file.set_attribute("/", "format", kResultsFormat);
  file.set_attribute("/", "version", int64_t{1});
  file.set_attribute("/", "config", config().dump());
  H5Table::create(file, "/evaluations", old_schema);
  H5Table(file, "/evaluations", old_schema).append(eval_rows);
  H5Table::create(file, "/prompt_scores", prompt_scores_schema());
  H5Table(file, "/prompt_scores", prompt_scores_schema()).append(prompt_rows);
  file.create_group("/runs");
  file.flush();
  if (journal) {
    std::ofstream out(path + ".journal");
    out << nlohmann::json{{"kind", "header"}, {"format", kResultsFormat}, {"version", 1}, {"config", config()}}
               .dump()
        << "\n";
    for (const auto& r : rows) {
      nlohmann::json j = r.to_json();
      j.erase("prompt_begin");
      j.erase("prompt_end");
      j.erase("gpu_seconds");
      j.erase("error_kind");
      j["kind"] = "evaluation";
      out << j.dump() << "\n";
    }
  }
}

TEST_F(ResultStoreTest, ReadsHdf5WrittenBeforeTheNewColumns) {
  EvaluationRow never_started = make_row(1, false);
  never_started.started_at = std::nan("");
  write_old_format_file(path_, {make_row(0), never_started}, /*journal=*/false);
  auto check_old = [](const std::vector<EvaluationRow>& rows, const std::string& from) {
    ASSERT_GE(rows.size(), 2u) << from;
    EXPECT_EQ(rows[0].unit_key, make_row(0).unit_key) << from;
    EXPECT_EQ(rows[0].speedup_macs, 2.0) << from;
    EXPECT_EQ(rows[0].run_id, "run-1") << from;
    for (std::size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(rows[i].prompt_begin, 0) << from;
      EXPECT_EQ(rows[i].prompt_end, 4) << from << ": num_samples";
      ASSERT_EQ(rows[i].prompts.size(), 2u) << from;
      EXPECT_EQ(rows[i].prompts[1].prompt_index, 1) << from;
    }
    EXPECT_EQ(rows[0].gpu_seconds, 1.0) << from << ": finished_at - started_at";
    EXPECT_TRUE(std::isnan(rows[1].gpu_seconds)) << from;
    EXPECT_EQ(rows[0].error_kind, "") << from << ": an ok row has no kind";
    EXPECT_EQ(rows[1].error_kind, "transient") << from << ": what that version retried it as";
  };
  const auto old = read_results(path_);
  EXPECT_FALSE(old.from_journal);
  check_old(old.rows, "old HDF5");

  // Resuming rewrites it with every column, so new rows can be appended.
  EvaluationRow frontier = make_row(2);
  frontier.prompt_begin = 4;
  frontier.prompt_end = 8;
  frontier.gpu_seconds = 2.5;
  {
    auto store = ResultStore::open(path_, config(), true);
    check_old(store.rows(), "resumed");
    store.append(frontier);
    store.close();
  }
  {
    H5File file = H5File::open(path_, false);
    EXPECT_TRUE(H5Table(file, "/evaluations", evaluations_schema()).absent_columns().empty());
  }
  fs::remove(path_ + ".journal");
  const auto upgraded = read_results(path_);
  check_old(upgraded.rows, "upgraded HDF5");
  ASSERT_EQ(upgraded.rows.size(), 3u);
  EXPECT_EQ(upgraded.rows[2].prompt_begin, 4);
  EXPECT_EQ(upgraded.rows[2].prompt_end, 8);
  EXPECT_EQ(upgraded.rows[2].gpu_seconds, 2.5);
}

// The previous version's file and journal together: the journal is current,
// but the HDF5 file is rewritten with the new columns all the same.
TEST_F(ResultStoreTest, ResumesAnOldFileWithItsOldJournal) {
  write_old_format_file(path_, {make_row(0), make_row(1)}, /*journal=*/true);
  {
    auto store = ResultStore::open(path_, config(), true);
    ASSERT_EQ(store.rows().size(), 2u);
    EXPECT_EQ(store.rows()[1].prompt_end, 4);
    EXPECT_EQ(store.rows()[1].gpu_seconds, 1.0);
    store.append(make_row(2));
    store.close();
  }
  EXPECT_EQ(read_results(path_).rows.size(), 3u);
  fs::remove(path_ + ".journal");
  const auto h5 = read_results(path_);
  ASSERT_EQ(h5.rows.size(), 3u);
  EXPECT_EQ(h5.rows[0].prompt_end, 4);
  EXPECT_EQ(h5.rows[0].gpu_seconds, 1.0);
}

TEST_F(ResultStoreTest, ColumnOfTheWrongTypeNamesFileAndColumn) {
  Schema schema = evaluations_schema();
  {
    H5File file = H5File::create(path_);
    file.set_attribute("/", "format", kResultsFormat);
    file.set_attribute("/", "version", int64_t{1});
    file.set_attribute("/", "config", config().dump());
    for (auto& c : schema) {
      if (c.name == "gpu_seconds") c.type = ColumnType::string;
    }
    H5Table::create(file, "/evaluations", schema);
    H5Table::create(file, "/prompt_scores", prompt_scores_schema());
  }
  try {
    read_results(path_);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(path_), std::string::npos) << m;
    EXPECT_NE(m.find("'gpu_seconds'"), std::string::npos) << m;
  }
  EXPECT_THROW(ResultStore::open(path_, config(), true), InputError);
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

// Found by fuzz/results_fuzz.cc: damaged journal lines reached distill and
// status as values they index without checking (a float where an integer
// goes is undefined behaviour to convert; a non-object config or run record
// threw JSON library errors that named nothing). Each is now an InputError
// naming the file, the line and the field.
TEST_F(ResultStoreTest, DamagedJournalLinesNameTheLineAndTheField) {
  const std::string journal = path_ + ".journal";
  const std::string header = R"({"kind":"header","format":"diffsearch-results","version":1,"config":{"samples":4}})";
  const std::string row = make_row(1).to_json().dump();
  auto patched = [&](const std::string& key, const std::string& value) {
    auto j = nlohmann::json::parse(row);
    j["kind"] = "evaluation";
    j[key] = nlohmann::json::parse(value);
    return j.dump();
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {header + "\n" + patched("steps", "1e300") + "\n", "line 2: an evaluation's field \"steps\" is 1e+300"},
      {header + "\n" + patched("prompts", R"([["x",1,2,3,4]])") + "\n", "a prompt index \"x\""},
      {header + "\n" + patched("setting", R"("not json")") + "\n", "field \"setting\" of unit"},
      {R"({"kind":"header","format":"diffsearch-results","config":[1]})" "\n", "line 1: the header's \"config\""},
      {header + "\n" + R"({"kind":"run","run_id":"r","attributes":5})" + "\n", "line 2: a run record needs"},
      {header + "\n" + R"({"kind":"run","attributes":{}})" + "\n", "line 2: a run record needs"},
  };
  for (const auto& [text, expected] : cases) {
    std::ofstream(journal, std::ios::trunc) << text;
    try {
      read_results(path_);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(journal + ": line "), std::string::npos) << what;
      EXPECT_NE(what.find(expected), std::string::npos) << what;
      EXPECT_NE(what.find("the journal is damaged (remove it"), std::string::npos) << what;
    }
  }
  // Integers, absent fields and null still read.
  std::ofstream(journal, std::ios::trunc) << header << "\n" << patched("rank", "null") << "\n";
  EXPECT_EQ(read_results(path_).rows.at(0).rank, 0);
}

TEST_F(ResultStoreTest, DamagedHdf5ConfigRunsAndSettingsNameTheField) {
  ResultsContents good;
  good.config = config();
  good.runs.push_back({{"run_id", "run-1"}, {"attributes", {{"processes", 3}}}});
  good.rows.push_back(make_row(0));
  write_results_h5(path_, good);
  EXPECT_EQ(read_results(path_).rows.size(), 1u);
  auto expect_refused = [&](const ResultsContents& c, const std::string& expected) {
    write_results_h5(path_, c);
    try {
      read_results(path_);
      ADD_FAILURE() << "accepted; expected " << expected;
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(path_ + ": "), std::string::npos) << what;
      EXPECT_NE(what.find(expected), std::string::npos) << what;
    }
  };
  ResultsContents c = good;
  c.config = nlohmann::json::array({1, 2});
  expect_refused(c, "the root attribute 'config' is not a JSON object");
  write_results_h5(path_, good);
  {
    H5File f = H5File::open(path_, true);
    f.set_attribute("/runs/run-1", "attributes", "[\"text\"]");
  }
  try {
    read_results(path_);
    ADD_FAILURE() << "run attributes that are not an object were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("the attribute 'attributes' of /runs/run-1 is not a JSON object"),
              std::string::npos) << e.what();
  }
  c = good;
  c.rows[0].setting = "[1";
  expect_refused(c, "/evaluations row 0: field \"setting\" of unit");
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
                           "assert df['prompt_begin'][3] == 0 and df['prompt_end'][3] == 4\n"
                           "assert df['gpu_seconds'][3] == 0.5\n"
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
