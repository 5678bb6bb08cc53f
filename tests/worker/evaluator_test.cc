// The engine evaluator on the tiny models: what a record holds, that one
// baseline serves every setting, that the accelerations do less work, and
// the errors for bad units.
#include "worker/evaluator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "io/error.h"

using namespace diffsearch;

namespace {

worker::MeasurementUnit tiny_unit() {
  worker::MeasurementUnit unit;
  unit.model_dir = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models/tiny-sd15";
  unit.clip_dir = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models/tiny-clip";
  unit.sampler = partition::SamplerKind::DDIM;
  unit.steps = 6;
  unit.height = unit.width = 64;
  unit.prompts = {"a red apple on a table", "a lighthouse at dusk", "a cat asleep on a sofa"};
  unit.batch_size = 2;
  return unit;
}

partition::Setting deepcache(int interval) {
  return {{partition::Method::DeepCache, {{"cache_interval", interval}, {"cache_branch_id", 0}}}};
}

}  // namespace

TEST(EngineEvaluator, BaselineAloneComparesWithItself) {
  auto evaluator = worker::make_engine_evaluator();
  const worker::EvaluationRecord r = evaluator->evaluate(tiny_unit());
  EXPECT_EQ(r.base.batch_times_s.size(), 2u);  // 3 prompts in batches of 2
  EXPECT_EQ(r.base.clip.size(), 3u);
  EXPECT_DOUBLE_EQ(r.score_loss, 0.0);
  EXPECT_DOUBLE_EQ(r.speedup_macs, 1.0);
  EXPECT_TRUE(std::isinf(r.psnr_mean));
  EXPECT_DOUBLE_EQ(r.ssim_mean, 1.0);
  EXPECT_GT(r.base.macs, 0);
  EXPECT_EQ(r.device_name, "cpu");
}

TEST(EngineEvaluator, OneBaselineServesEverySettingAndAccelerationsDoLess) {
  auto evaluator = worker::make_engine_evaluator();
  worker::MeasurementUnit unit = tiny_unit();
  unit.setting = deepcache(2);
  const worker::EvaluationRecord a = evaluator->evaluate(unit);
  unit.setting = deepcache(3);
  const worker::EvaluationRecord b = evaluator->evaluate(unit);
  // The same cached baseline run: identical times, not just similar ones.
  EXPECT_EQ(a.base.batch_times_s, b.base.batch_times_s);
  EXPECT_EQ(a.base.clip, b.base.clip);
  EXPECT_GT(a.speedup_macs, 1.2);
  EXPECT_GT(b.speedup_macs, a.speedup_macs);
  EXPECT_LT(a.acc.macs, a.base.macs);
  EXPECT_EQ(a.psnr.size(), 3u);
  EXPECT_TRUE(std::isfinite(a.psnr_mean));
  EXPECT_LT(a.ssim_mean, 1.0);
  const double expected_loss = (a.base.clip_mean - a.acc.clip_mean) / a.base.clip_mean;
  EXPECT_NEAR(a.score_loss, expected_loss, 1e-12);
  // Deterministic: the same setting again gives the same images and scores.
  unit.setting = deepcache(2);
  EXPECT_EQ(evaluator->evaluate(unit).acc.clip, a.acc.clip);
  EXPECT_NO_THROW(a.to_json().dump());
}

TEST(EngineEvaluator, BadUnitsAreInputErrors) {
  auto evaluator = worker::make_engine_evaluator();
  worker::MeasurementUnit unit = tiny_unit();
  unit.prompts.clear();
  EXPECT_THROW(evaluator->evaluate(unit), InputError);
  unit = tiny_unit();
  unit.clip_dir = "/nonexistent/clip";
  EXPECT_THROW(evaluator->evaluate(unit), InputError);
  unit = tiny_unit();
  unit.height = 100;
  EXPECT_THROW(evaluator->evaluate(unit), InputError);
  unit = tiny_unit();
  unit.setting = {{partition::Method::ToMe, {{"ratio", 1.5}}}};
  EXPECT_THROW(evaluator->evaluate(unit), InputError);
}

