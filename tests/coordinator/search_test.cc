// The search in one process with the fake evaluator: every unit measured once,
// resume after a kill measures only what is missing and gives the same
// answers, failures retried then recorded, out of memory halving the batch.
#include "coordinator/search.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "coordinator/distill.h"
#include "io/results_merge.h"
#include "io/error.h"
#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace diffsearch::coordinator {
namespace {

namespace fs = std::filesystem;

std::vector<partition::Task> test_tasks() {
  std::vector<partition::Task> tasks;
  for (const char* s : {
           "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps",
           "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with "
           "1.5x speedup and precision loss not exceeding 0.02",
           "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with "
           "3.0x speedup and precision loss not exceeding 0.02",
           "Generate a SD2.1 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache and ToMe "
           "with 2.0x speedup and precision loss not exceeding 0.02",
           "Generate a SD2.1 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe",
       }) {
    tasks.push_back(partition::parse_task(s));
  }
  return tasks;
}

// Units an exhaustive run measures: every setting of every task space and
// the baselines basic tasks are answered by.
std::size_t exhaustive_units(const SearchPlan& plan) {
  std::size_t n = plan.basic_baselines.size();
  for (std::size_t s = 0; s < plan.task_spaces; ++s) n += plan.plan.spaces[s].size;
  return n;
}

class SearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("search_test");
    options_.tasks = test_tasks();
    options_.samples = 4;
    options_.batch_size = 8;
    options_.space_json = {{"deepcache", {{"cache_interval", {2, 3, 5}}, {"cache_branch_id", {0, 1}}}},
                           {"tome", {{"ratio", {0.3, 0.5}}}}};
    options_.space_source = "test space";
    options_.prompts = {"a cat", "a dog", "a red house"};
    options_.speed_measure = "macs";
    options_.evaluator = "fake";
    options_.strategy = "exhaustive";  // these tests are of the dispatch; the frontier has its own
    options_.progress_interval_s = 1000;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) { return (dir_ / name).string(); }

  fs::path dir_;
  SearchOptions options_;
};

TEST_F(SearchTest, MeasuresEveryUnitOnceAndAnswersDeterministically) {
  options_.out = out("r.h5");
  const auto plan = make_search_plan(options_);
  ASSERT_EQ(run_search_local(options_), 0);
  const auto contents = io::read_results(options_.out);
  ASSERT_EQ(contents.rows.size(), exhaustive_units(plan));
  std::set<std::string> keys;
  for (const auto& r : contents.rows) {
    EXPECT_EQ(r.status, "ok");
    keys.insert(r.unit_key);
  }
  EXPECT_EQ(keys.size(), exhaustive_units(plan));
  const auto answers = distill(contents, options_.tasks);
  EXPECT_EQ(distill_text(answers), distill_text(distill(io::read_results(options_.out), options_.tasks)));
  const auto& basic = answers.at("sd15/ddim/20/basic");
  EXPECT_EQ(basic.at("status"), "ok");
  EXPECT_EQ(basic.at("speedup"), 1.0);
  std::map<std::string, int> statuses;
  for (const auto& [key, a] : answers.items()) {
    if (key[0] == '_') continue;
    statuses[a.at("status").get<std::string>()]++;
    if (a.at("status") == "ok" && a.at("task").get<std::string>().find("speedup") != std::string::npos) {
      const auto task = partition::parse_task(a.at("task").get<std::string>());
      EXPECT_GE(a.at("speedup").get<double>(), *task.speedup);
      EXPECT_LE(a.at("score_loss").get<double>(), task.max_score_loss);
    }
  }
  EXPECT_EQ(statuses["not_measured"], 0);
  EXPECT_EQ(statuses["failed"], 0);
  // An evaluator that cannot estimate a unit unmeasured (the fake one):
  // exhaustive's cost is extrapolated from the rows, here all of them.
  const auto& run = contents.runs.back()["attributes"];
  EXPECT_EQ(run.at("strategy"), "exhaustive");
  double spent = 0;
  for (const auto& r : contents.rows) spent += r.gpu_seconds;
  EXPECT_GT(spent, 0);
  EXPECT_NEAR(run.at("gpu_seconds").get<double>(), spent, 1e-9 * spent);
  EXPECT_NEAR(run.at("gpu_seconds_exhaustive").get<double>(), spent, 0.25 * spent);
}

// One process names its device in the run record as a worker under mpirun
// does: host, device, GPU and how runs are timed.
TEST_F(SearchTest, RunRecordNamesTheDeviceAsUnderMpirun) {
  options_.out = out("r.h5");
  options_.evaluator = "fake:gpu=NVIDIA H200,timing=CUDA graphs";
  ASSERT_EQ(run_search_local(options_), 0);
  const auto runs = io::read_results(options_.out).runs;
  ASSERT_FALSE(runs.empty());
  const std::string devices = runs.back()["attributes"]["devices"].get<std::string>();
  EXPECT_NE(devices.find(" cpu (NVIDIA H200, CUDA graphs)"), std::string::npos) << devices;
  EXPECT_EQ(devices.find("\"cpu\""), std::string::npos) << "not the bare device: " << devices;
}

TEST_F(SearchTest, ResumeAfterKillMeasuresOnlyWhatIsMissing) {
  options_.out = out("full.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const std::string expected = distill_text(distill(io::read_results(options_.out), options_.tasks));

  // The interrupted copy: the journal cut in the middle of a line, no HDF5.
  std::ifstream in(options_.out + ".journal");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = out("cut.h5");
  std::ofstream(cut + ".journal") << text.substr(0, text.size() / 2);
  options_.out = cut;
  options_.resume = true;
  ASSERT_EQ(run_search_local(options_), 0);
  const auto contents = io::read_results(cut);
  std::set<std::string> keys;
  for (const auto& r : contents.rows) EXPECT_TRUE(keys.insert(r.unit_key).second) << r.unit_key << " twice";
  EXPECT_EQ(keys.size(), exhaustive_units(make_search_plan(options_)));
  auto strip = [](nlohmann::json j) {
    for (auto& [k, v] : j.items()) {
      if (k[0] != '_') v.erase("rows");
    }
    j.erase("_spent");  // wall-clock GPU-seconds of the fake evaluator
    return j.dump();
  };
  EXPECT_EQ(strip(nlohmann::json::parse(expected)), strip(distill(contents, options_.tasks)));

  // Nothing left: a second resume measures nothing.
  const auto before = contents.rows.size();
  ASSERT_EQ(run_search_local(options_), 0);
  EXPECT_EQ(io::read_results(cut).rows.size(), before);
}

TEST_F(SearchTest, ResumeWithOtherSamplesIsRefused) {
  options_.out = out("r.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  options_.resume = true;
  options_.samples = 8;
  EXPECT_THROW(run_search_local(options_), InputError);
}

// An exhaustive file (and a file of an earlier version) records no strategy:
// resuming it with the frontier default is refused, saying what to add.
TEST_F(SearchTest, ResumeWithAnotherStrategyNamesTheFilesStrategy) {
  options_.out = out("r.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  EXPECT_FALSE(io::read_results(options_.out).config.contains("strategy"));
  options_.resume = true;
  options_.strategy = "frontier";
  try {
    run_search_local(options_);
    FAIL() << "resumed an exhaustive file with the frontier strategy";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("add --strategy exhaustive"), std::string::npos) << e.what();
  }
  options_.strategy = "exhaustive";
  EXPECT_EQ(run_search_local(options_), 0);
}

TEST_F(SearchTest, FailuresAreRetriedThenRecordedFailed) {
  options_.out = out("r.h5");
  options_.evaluator = "fake:fail_always,fail_every=4";
  options_.max_attempts = 2;
  ASSERT_EQ(run_search_local(options_), 0);
  const auto contents = io::read_results(options_.out);
  std::map<std::string, std::vector<int64_t>> failed_attempts;
  std::size_t ok = 0;
  for (const auto& r : contents.rows) {
    if (r.status == "ok") ++ok;
    else failed_attempts[r.unit_key].push_back(r.attempt);
  }
  ASSERT_FALSE(failed_attempts.empty());
  for (const auto& [key, attempts] : failed_attempts) EXPECT_EQ(attempts, (std::vector<int64_t>{1, 2})) << key;
  EXPECT_EQ(ok + failed_attempts.size(), exhaustive_units(make_search_plan(options_)));
  const auto answers = distill(contents, options_.tasks);
  for (const auto& [key, a] : answers.items()) {
    if (key[0] != '_') {
      EXPECT_NE(a.at("status"), "not_measured") << key;
    }
  }
}

TEST_F(SearchTest, OutOfMemoryRetriesWithSmallerBatch) {
  options_.out = out("r.h5");
  options_.evaluator = "fake:fail_always,oom,fail_every=5";
  options_.max_attempts = 3;
  ASSERT_EQ(run_search_local(options_), 0);
  std::map<std::string, std::vector<int64_t>> batches;
  for (const auto& r : io::read_results(options_.out).rows) {
    if (r.status == "failed") batches[r.unit_key].push_back(r.batch_size);
  }
  ASSERT_FALSE(batches.empty());
  for (const auto& [key, b] : batches) EXPECT_EQ(b, (std::vector<int64_t>{8, 4, 2})) << key;
}

// The frontier strategy on the synthetic landscape over three rounds (2, 4
// and 8 prompts): a resume from a journal cut anywhere replays the strategy
// to where the file left it and ends with the uninterrupted answers, and so
// do shards merged.
class FrontierSearchTest : public SearchTest {
 protected:
  void SetUp() override {
    SearchTest::SetUp();
    options_.strategy = "frontier";
    options_.evaluator = "synthetic:seed=9";
    options_.samples = 8;
    options_.frontier.race_prompts = {2, 4};
  }
  static std::string answers_of(const io::ResultsContents& c, const std::vector<partition::Task>& tasks) {
    auto j = distill(c, tasks);
    for (auto& [k, v] : j.items()) {
      if (k[0] != '_') v.erase("rows");
    }
    j.erase("_rows");
    j.erase("_spent");
    j["_config"].erase("shard");
    return j.dump();
  }
};

TEST_F(FrontierSearchTest, ResumeFromAJournalCutAnywhereGivesTheSameAnswers) {
  options_.out = out("full.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const auto full = io::read_results(options_.out);
  const std::string expected = answers_of(full, options_.tasks);
  std::size_t answered = 0;
  const auto expected_json = nlohmann::json::parse(expected);  // items() must not outlive it
  for (const auto& [k, v] : expected_json.items()) answered += k[0] != '_' && v["status"] != "not_measured";
  EXPECT_EQ(answered, options_.tasks.size());
  std::ifstream in(options_.out + ".journal");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (double at : {0.1, 0.37, 0.5, 0.83, 0.97}) {
    const std::string cut = out("cut" + std::to_string(static_cast<int>(at * 100)) + ".h5");
    std::ofstream(cut + ".journal") << text.substr(0, static_cast<std::size_t>(text.size() * at));
    auto resumed = options_;
    resumed.out = cut;
    resumed.resume = true;
    ASSERT_EQ(run_search_local(resumed), 0) << at;
    const auto contents = io::read_results(cut);
    std::set<std::string> items;
    for (const auto& r : contents.rows) {
      EXPECT_TRUE(items.insert(r.unit_key + "#" + std::to_string(r.prompt_begin)).second) << r.unit_key << " twice";
    }
    EXPECT_EQ(contents.rows.size(), full.rows.size()) << at;
    EXPECT_EQ(answers_of(contents, options_.tasks), expected) << "cut at " << at;
  }
}

TEST_F(FrontierSearchTest, ShardsMergedGiveTheSameAnswers) {
  options_.out = out("whole.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const std::string expected = answers_of(io::read_results(options_.out), options_.tasks);
  std::vector<io::MergeInput> inputs;
  for (int i = 0; i < 2; ++i) {
    auto shard = options_;
    shard.shard = {i, 2};
    shard.out = out("shard" + std::to_string(i) + ".h5");
    ASSERT_EQ(run_search_local(shard), 0);
    inputs.push_back({shard.out, io::read_results(shard.out)});
  }
  const auto merged = io::merge_shards(inputs, "run-merge", nlohmann::json::object());
  EXPECT_EQ(answers_of(merged, options_.tasks), expected);
  EXPECT_EQ(merged.runs.back()["attributes"]["spaces_done"], merged.runs.back()["attributes"]["spaces"]);

  // A frontier shard measures a sliver of its units by design: it is
  // unfinished while its strategy has not answered every space (here: a
  // copy whose last run record is the one written as the run began).
  auto unfinished = inputs;
  auto& runs = unfinished[1].contents.runs;
  for (auto& run : runs) {
    run["attributes"].erase("spaces");
    run["attributes"].erase("spaces_done");
  }
  try {
    io::merge_shards(unfinished, "run-merge-2", nlohmann::json::object());
    FAIL() << "merged a frontier shard without a finished run";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("has no finished run"), std::string::npos) << e.what();
  }
  runs.back()["attributes"]["spaces"] = 3;
  runs.back()["attributes"]["spaces_done"] = 1;
  try {
    io::merge_shards(unfinished, "run-merge-3", nlohmann::json::object());
    FAIL() << "merged a frontier shard that answered 1 of 3 spaces";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("has answered 1 of its 3 spaces"), std::string::npos) << e.what();
  }
}

TEST_F(FrontierSearchTest, MeasuresFarLessThanExhaustiveAndAccountsForIt) {
  options_.out = out("frontier.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const auto contents = io::read_results(options_.out);
  const auto& run = contents.runs.back()["attributes"];
  EXPECT_EQ(run.at("strategy"), "frontier");
  const double spent = run.at("gpu_seconds").get<double>();
  const double exhaustive = run.at("gpu_seconds_exhaustive").get<double>();
  EXPECT_GT(spent, 0);
  EXPECT_LT(spent, exhaustive);
  EXPECT_EQ(run.at("spaces_done"), run.at("spaces"));
  double sum = 0;
  for (const auto& r : contents.rows) sum += r.gpu_seconds;
  EXPECT_NEAR(spent, sum, 1e-9 * sum);
  const auto answers = distill(contents, options_.tasks);
  EXPECT_EQ(answers.at("_strategy"), "frontier");
  EXPECT_NEAR(answers.at("_spent").at("gpu_seconds").get<double>(), sum, 1e-9 * sum);
  EXPECT_EQ(answers.at("_spent").at("gpu_seconds_exhaustive").get<double>(), exhaustive);
}

}  // namespace
}  // namespace diffsearch::coordinator
