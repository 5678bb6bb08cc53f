// Answering by SSIM or PSNR instead of CLIP: the search records the measure,
// the frontier races it, distill's losses are the rows' own by that measure,
// each answer is the least such loss among the feasible settings, and a file
// searched by one measure can be distilled by another.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "coordinator/distill.h"
#include "coordinator/quality.h"
#include "coordinator/search.h"
#include "io/error.h"
#include "io/result_store.h"
#include "partition/task.h"
#include "tests/support/test_support.h"

namespace diffsearch::coordinator {
namespace {

namespace fs = std::filesystem;

class DistillQualityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("distill_quality");
    for (const char* s : {
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with "
             "1.5x speedup and precision loss not exceeding 0.05",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with "
             "2.5x speedup and precision loss not exceeding 0.1",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by T-GATE with "
             "1.2x speedup and precision loss not exceeding 0.05",
         }) {
      options_.tasks.push_back(partition::parse_task(s));
    }
    options_.samples = 8;
    options_.space_json = {{"deepcache", {{"cache_interval", {2, 3, 4, 5, 6}}, {"cache_branch_id", {0, 1, 2}}}},
                           {"tome", {{"ratio", {0.2, 0.4, 0.6}}}},
                           {"tgate", {{"gate_step", {6, 10, 14}}, {"sp_interval", {1, 3}}}}};
    options_.space_source = "test space";
    options_.prompts = {"a cat", "a dog", "a red house"};
    options_.speed_measure = "macs";
    options_.evaluator = "synthetic:seed=4,noise=0.5";
    options_.progress_interval_s = 1000;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string out(const std::string& name) { return (dir_ / name).string(); }

  // Checks every answer against the rows: its loss is the row's by `q`, it
  // is feasible when "ok", and no feasible setting of its space has less.
  static void expect_least_loss_answers(const io::ResultsContents& c, const nlohmann::json& answers, Quality q,
                                        const std::vector<partition::Task>& tasks) {
    for (const auto& task : tasks) {
      const auto& a = answers.at(partition::task_key(task));
      if (a.at("status") != "ok" || task.methods.empty()) continue;
      ASSERT_EQ(a.at("rows").size(), 1u) << "exhaustive answers come from one row";
      const auto& row = c.rows[a.at("rows")[0].get<std::size_t>()];
      const double loss = a.at("loss").get<double>();
      EXPECT_DOUBLE_EQ(loss, row_loss(q, row));
      EXPECT_DOUBLE_EQ(a.at("score_loss").get<double>(), row.score_loss);
      EXPECT_LE(loss, task.max_score_loss);
      if (!task.speedup) continue;
      EXPECT_GE(a.at("speedup").get<double>(), *task.speedup);
      for (const auto& r : c.rows) {
        if (r.space_key != row.space_key || r.status != "ok") continue;
        const double l = row_loss(q, r);
        if (r.speedup_macs >= *task.speedup && l <= task.max_score_loss) {
          EXPECT_GE(l, loss) << r.unit_key;
        }
      }
    }
  }

  fs::path dir_;
  SearchOptions options_;
};

TEST_F(DistillQualityTest, ExhaustiveAnswersBySsimAndPsnrAreTheLeastLossesOfTheRows) {
  options_.strategy = "exhaustive";
  options_.quality = Quality::Ssim;
  options_.out = out("ssim.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const auto contents = io::read_results(options_.out);
  EXPECT_EQ(contents.config.at("quality"), "ssim");
  const auto by_ssim = distill(contents, options_.tasks);
  EXPECT_EQ(by_ssim.at("_quality"), "ssim");
  EXPECT_FALSE(by_ssim.contains("_quality_searched"));  // exhaustive: every measure is exact
  expect_least_loss_answers(contents, by_ssim, Quality::Ssim, options_.tasks);
  const auto by_psnr = distill(contents, options_.tasks, Quality::Psnr);
  EXPECT_EQ(by_psnr.at("_quality"), "psnr");
  expect_least_loss_answers(contents, by_psnr, Quality::Psnr, options_.tasks);
  const auto by_clip = distill(contents, options_.tasks, Quality::Clip);
  expect_least_loss_answers(contents, by_clip, Quality::Clip, options_.tasks);
  // The measures rank differently here, or the test would prove little.
  EXPECT_NE(by_ssim.dump(), by_clip.dump());
}

TEST_F(DistillQualityTest, FrontierRacedBySsimAnswersAsExhaustiveDoes) {
  options_.quality = Quality::Ssim;
  options_.strategy = "exhaustive";
  options_.out = out("exhaustive.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  options_.strategy = "frontier";
  options_.frontier.race_prompts = {2, 4};
  options_.out = out("frontier.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  const auto ex = distill(io::read_results(out("exhaustive.h5")), options_.tasks);
  const auto fr_contents = io::read_results(out("frontier.h5"));
  const auto fr = distill(fr_contents, options_.tasks);
  for (const auto& task : options_.tasks) {
    const auto key = partition::task_key(task);
    EXPECT_EQ(fr.at(key).at("status"), ex.at(key).at("status")) << key;
    EXPECT_EQ(fr.at(key).at("params"), ex.at(key).at("params")) << key;
    EXPECT_EQ(fr.at(key).at("loss"), ex.at(key).at("loss")) << key;
  }
  // Distilled by a measure it did not race: said so, not hidden.
  const auto by_clip = distill(fr_contents, options_.tasks, Quality::Clip);
  EXPECT_EQ(by_clip.at("_quality_searched"), "ssim");
}

TEST_F(DistillQualityTest, ClipSearchesRecordNoQualitySoEarlierFilesStillResume) {
  options_.strategy = "exhaustive";
  const partition::Plan plan = make_search_plan(options_).plan;
  EXPECT_FALSE(search_config(options_, plan).contains("quality"));
  options_.quality = Quality::Psnr;
  const auto config = search_config(options_, plan);
  EXPECT_EQ(config.at("quality"), "psnr");
  EXPECT_EQ(options_from_config(config, options_.tasks).quality, Quality::Psnr);
  auto bad = config;
  bad["quality"] = "lpips";
  EXPECT_THROW(options_from_config(bad, options_.tasks), InputError);
}

// Found by fuzz/results_fuzz.cc: a results file whose recorded frontier
// knobs are impossible (prompt counts that do not increase) made distill
// throw the command line's message, naming neither the file nor the field.
TEST_F(DistillQualityTest, ADamagedConfigurationNamesTheFileAndTheField) {
  options_.strategy = "frontier";
  options_.frontier.race_prompts = {2, 4};
  options_.out = out("frontier.h5");
  ASSERT_EQ(run_search_local(options_), 0);
  auto contents = io::read_results(options_.out);
  EXPECT_EQ(contents.path, options_.out);
  contents.config["frontier"]["race_prompts"] = {4, 8, 16, 4};
  try {
    distill(contents, options_.tasks);
    FAIL() << "a decreasing prompt schedule was accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(options_.out), std::string::npos) << what;
    EXPECT_NE(what.find("race-prompts"), std::string::npos) << what;
  }
  contents.config["frontier"]["race_prompts"] = {2, 4};
  contents.config["speed_measure"] = 5;  // a number where a name goes
  try {
    distill(contents, options_.tasks);
    FAIL() << "a numeric speed_measure was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(options_.out), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace diffsearch::coordinator
