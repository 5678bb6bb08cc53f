// The replay evaluator: answers from a results file written with ResultStore,
// prompt ranges scaled from whole rows, and clear errors for what the file lacks.
#include "coordinator/evaluator_replay.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "coordinator/evaluator_synthetic.h"
#include "coordinator/evaluators.h"
#include "io/error.h"
#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace diffsearch::coordinator {
namespace {

namespace fs = std::filesystem;

const char* kUnit = "sd15/ddim/20/512px/deepcache/{\"deepcache\":{\"cache_branch_id\":0,\"cache_interval\":3}}";
const char* kFailedUnit = "sd15/ddim/20/512px/deepcache/{\"deepcache\":{\"cache_branch_id\":0,\"cache_interval\":4}}";
const char* kBaselineUnit = "sd15/ddim/20/512px/{}";

io::EvaluationRow recorded_row(const std::string& key, double clip_offset, int prompts = 8) {
  io::EvaluationRow r;
  r.unit_key = key;
  r.model = "SD1.5";
  r.sampler = "DDIM";
  r.steps = 20;
  r.resolution = 512;
  r.status = "ok";
  r.num_samples = 8;
  r.prompt_begin = 0;
  r.prompt_end = prompts;
  r.batch_size = 8;
  r.seed = 0;
  r.time_base_s = 8.0;
  r.time_acc_s = 4.0;
  r.speedup = 2.0;
  r.macs_base = 8000;
  r.macs_acc = 3000;
  r.gpu_seconds = 6.0;
  r.device = "NVIDIA H200";
  double base = 0, acc = 0;
  for (int i = 0; i < prompts; ++i) {
    io::PromptScore p;
    p.prompt_index = i;
    p.clip_base = 30.0 + i;
    p.clip_acc = 29.5 + i + clip_offset;
    p.psnr = 30.0 + i;
    p.ssim = 0.9 + 0.01 * i;
    base += p.clip_base;
    acc += p.clip_acc;
    r.prompts.push_back(p);
  }
  r.clip_base = base / prompts;
  r.clip_acc = acc / prompts;
  r.score_loss = (r.clip_base - r.clip_acc) / r.clip_base;
  return r;
}

worker::MeasurementUnit unit_of(const std::string& key, int first, int count, uint64_t seed = 0) {
  worker::MeasurementUnit u;
  u.unit_key = key;
  u.steps = 20;
  u.first_prompt = first;
  u.seed = seed;
  for (int i = 0; i < count; ++i) u.prompts.push_back("p");
  return u;
}

class ReplayEvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("replay_test");
    path_ = (dir_ / "recorded.h5").string();
    auto store = io::ResultStore::open(path_, {{"samples", 8}, {"seed", 0}}, false);
    io::EvaluationRow failed = recorded_row(kFailedUnit, 0);
    failed.status = "failed";
    failed.error = "CUDA out of memory";
    failed.prompts.clear();
    store.append(failed);
    store.append(recorded_row(kUnit, 0));
    store.append(recorded_row(kUnit, -5.0));  // a later attempt: the first ok row wins
    io::EvaluationRow baseline = recorded_row(kBaselineUnit, 0.5);
    baseline.time_acc_s = baseline.time_base_s;
    baseline.macs_acc = baseline.macs_base;
    store.append(baseline);
    store.close();
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::string path_;
};

TEST_F(ReplayEvaluatorTest, AnswersTheWholeRecordedUnit) {
  ReplayEvaluator replay(path_);
  EXPECT_EQ(replay.unit_count(), 2u);
  EXPECT_EQ(replay.gpu_name("cuda:0"), "NVIDIA H200");
  const auto r = replay.evaluate(unit_of(kUnit, 0, 8));
  ASSERT_EQ(r.acc.clip.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(r.base.clip[i], 30.0 + i);
    EXPECT_EQ(r.acc.clip[i], 29.5 + i);
    EXPECT_EQ(r.psnr[i], 30.0 + i);
  }
  EXPECT_DOUBLE_EQ(r.base.total_s, 8.0);
  EXPECT_DOUBLE_EQ(r.acc.total_s, 4.0);
  EXPECT_DOUBLE_EQ(r.speedup, 2.0);
  EXPECT_EQ(r.base.macs, 8000);
  EXPECT_EQ(r.acc.macs, 3000);
  EXPECT_NEAR(r.speedup_macs, 8.0 / 3.0, 1e-12);
  EXPECT_DOUBLE_EQ(r.base.clip_mean, 33.5);
  EXPECT_DOUBLE_EQ(r.acc.clip_mean, 33.0);
  EXPECT_NEAR(r.score_loss, 0.5 / 33.5, 1e-12);
  EXPECT_NEAR(r.ssim_mean, 0.935, 1e-12);
  EXPECT_DOUBLE_EQ(r.simulated_seconds, 6.0);
  EXPECT_EQ(r.device_name, "NVIDIA H200");
  const auto e = replay.estimate_seconds(unit_of(kUnit, 0, 8));
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(*e, r.simulated_seconds);
}

// Times, MACs and GPU-seconds are the row's, shared evenly among its prompts.
TEST_F(ReplayEvaluatorTest, AnswersARangeWithItsShare) {
  ReplayEvaluator replay(path_);
  const auto r = replay.evaluate(unit_of(kUnit, 4, 4));
  ASSERT_EQ(r.acc.clip.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(r.base.clip[i], 34.0 + i);
    EXPECT_EQ(r.acc.clip[i], 33.5 + i);
    EXPECT_EQ(r.ssim[i], 0.9 + 0.01 * (4 + i));
  }
  EXPECT_DOUBLE_EQ(r.base.total_s, 4.0);
  EXPECT_DOUBLE_EQ(r.acc.total_s, 2.0);
  EXPECT_EQ(r.base.macs, 4000);
  EXPECT_EQ(r.acc.macs, 1500);
  EXPECT_DOUBLE_EQ(r.simulated_seconds, 3.0);
  EXPECT_EQ(*replay.estimate_seconds(unit_of(kUnit, 4, 4)), r.simulated_seconds);
  const auto baseline = replay.evaluate(unit_of(kBaselineUnit, 0, 2));
  EXPECT_DOUBLE_EQ(baseline.speedup, 1.0);
  EXPECT_DOUBLE_EQ(baseline.simulated_seconds, 1.5);
}

TEST_F(ReplayEvaluatorTest, UnitsTheFileLacksAreInputErrorsNamingThem) {
  ReplayEvaluator replay(path_);
  for (const std::string& key : {std::string(kFailedUnit), std::string("sd21/ddim/20/768px/tome/{}")}) {
    try {
      replay.evaluate(unit_of(key, 0, 8));
      ADD_FAILURE() << key << " was answered";
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(key), std::string::npos) << message;
      EXPECT_NE(message.find(path_), std::string::npos) << message;
      EXPECT_NE(message.find("exhaustively"), std::string::npos) << message;
    }
    EXPECT_FALSE(replay.estimate_seconds(unit_of(key, 0, 8)).has_value());
  }
}

TEST_F(ReplayEvaluatorTest, RangesBeyondTheRecordedPromptsAreErrors) {
  ReplayEvaluator replay(path_);
  try {
    replay.evaluate(unit_of(kUnit, 6, 4));
    ADD_FAILURE() << "prompts [6, 10) were answered";
  } catch (const InputError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(kUnit), std::string::npos) << message;
    EXPECT_NE(message.find("[6, 10)"), std::string::npos) << message;
    EXPECT_NE(message.find("[0, 8)"), std::string::npos) << message;
    EXPECT_NE(message.find("8 prompts per unit"), std::string::npos) << message;
  }
  EXPECT_THROW(replay.evaluate(unit_of(kUnit, 0, 16)), InputError);
  // Another seed gives other images: the file cannot answer for them.
  try {
    replay.evaluate(unit_of(kUnit, 0, 8, 42));
    ADD_FAILURE() << "seed 42 was answered";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--seed 0"), std::string::npos) << e.what();
  }
}

TEST_F(ReplayEvaluatorTest, RegistryAndUnreadableFiles) {
  auto evaluator = make_evaluator("replay:" + path_, 0);
  EXPECT_EQ(evaluator->evaluate(unit_of(kUnit, 0, 2)).acc.clip.size(), 2u);
  EXPECT_THROW(make_evaluator("replay:" + (dir_ / "absent.h5").string(), 0), InputError);
  EXPECT_THROW(make_evaluator("replay", 0), InputError);
  const std::string junk = (dir_ / "junk.h5").string();
  { std::ofstream(junk) << "not an HDF5 file"; }
  EXPECT_THROW(ReplayEvaluator{junk}, InputError);
}

// A synthetic exhaustive run recorded, then replayed: per-prompt scores come
// back exactly, for the whole list and for any range of it.
TEST_F(ReplayEvaluatorTest, ReplaysWhatTheSyntheticEvaluatorRecorded) {
  SyntheticEvaluator synthetic("seed=4");
  worker::MeasurementUnit unit = unit_of("sd15/ddim/20/512px/tome/{\"tome\":{\"ratio\":0.5}}", 0, 8);
  unit.setting = {{partition::Method::ToMe, {{"ratio", 0.5}}}};
  const auto whole = synthetic.evaluate(unit);
  const std::string path = (dir_ / "synthetic.h5").string();
  {
    auto store = io::ResultStore::open(path, {{"samples", 8}, {"seed", 0}}, false);
    io::EvaluationRow row;
    row.unit_key = unit.unit_key;
    row.status = "ok";
    row.num_samples = 8;
    row.prompt_end = 8;
    row.time_base_s = whole.base.total_s;
    row.time_acc_s = whole.acc.total_s;
    row.macs_base = whole.base.macs;
    row.macs_acc = whole.acc.macs;
    row.gpu_seconds = whole.simulated_seconds;
    row.device = "synthetic";
    for (int i = 0; i < 8; ++i) {
      row.prompts.push_back({i, whole.base.clip[i], whole.acc.clip[i], whole.psnr[i], whole.ssim[i]});
    }
    store.append(row);
    store.close();
  }
  ReplayEvaluator replay(path);
  const auto again = replay.evaluate(unit);
  EXPECT_EQ(again.acc.clip, whole.acc.clip);
  EXPECT_EQ(again.base.clip, whole.base.clip);
  EXPECT_DOUBLE_EQ(again.score_loss, whole.score_loss);
  EXPECT_DOUBLE_EQ(again.speedup, whole.speedup);
  EXPECT_DOUBLE_EQ(again.simulated_seconds, whole.simulated_seconds);
  auto part = unit;
  part.first_prompt = 2;
  part.prompts.resize(3);
  const auto synthetic_part = synthetic.evaluate(part);
  const auto replayed_part = replay.evaluate(part);
  EXPECT_EQ(replayed_part.acc.clip, synthetic_part.acc.clip);
  EXPECT_EQ(replayed_part.psnr, synthetic_part.psnr);
  EXPECT_NEAR(replayed_part.simulated_seconds, synthetic_part.simulated_seconds, 1e-9);
}

}  // namespace
}  // namespace diffsearch::coordinator
