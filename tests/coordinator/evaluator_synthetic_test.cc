// The synthetic evaluator: determinism and additivity over prompt ranges,
// the calibration points of docs/evaluators.md, monotone losses, noise, bumps and options.
#include "coordinator/evaluator_synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "coordinator/evaluators.h"
#include "io/error.h"

namespace diffsearch::coordinator {
namespace {

using partition::Method;
using partition::Model;
using partition::SamplerKind;

partition::MethodSetting deepcache(int interval, int branch) {
  return {Method::DeepCache, {{"cache_branch_id", branch}, {"cache_interval", interval}}};
}
partition::MethodSetting tome(double ratio, int max_downsample = 1) {
  return {Method::ToMe, {{"max_downsample", max_downsample}, {"ratio", ratio}, {"sx", 2}, {"sy", 2}, {"use_rand", false}}};
}
partition::MethodSetting tgate(int gate, int sp = 1, int warm_up = 0, int fi = 1) {
  return {Method::TGate, {{"fi_interval", fi}, {"gate_step", gate}, {"sp_interval", sp}, {"warm_up", warm_up}}};
}

worker::MeasurementUnit make_unit(partition::Setting setting, Model model = Model::SD15, int steps = 50,
                                  int prompts = 8, int first = 0, int height = 0) {
  worker::MeasurementUnit u;
  u.model = model;
  u.sampler = SamplerKind::DDIM;
  u.steps = steps;
  u.height = u.width = height;
  u.first_prompt = first;
  u.seed = 7;
  u.setting = std::move(setting);
  for (int i = 0; i < prompts; ++i) u.prompts.push_back("prompt " + std::to_string(first + i));
  return u;
}

double speedup(const std::string& options, const worker::MeasurementUnit& unit) {
  SyntheticEvaluator ev(options);
  return ev.evaluate(unit).speedup;
}
double loss(const std::string& options, const worker::MeasurementUnit& unit) {
  SyntheticEvaluator ev(options);
  return ev.evaluate(unit).score_loss;
}

TEST(SyntheticEvaluator, SameUnitSameRecordWhateverTheBatchOrFolder) {
  SyntheticEvaluator a(""), b("");
  auto unit = make_unit({deepcache(3, 1), tome(0.4)});
  const auto r1 = a.evaluate(unit);
  const auto r2 = a.evaluate(unit);
  unit.batch_size = 3;
  unit.model_dir = "/elsewhere/sd15";
  unit.device = "cuda:3";
  unit.prompts.assign(unit.prompts.size(), "other text");  // only the global index counts
  const auto r3 = b.evaluate(unit);
  for (const auto* r : {&r2, &r3}) {
    EXPECT_EQ(r->base.clip, r1.base.clip);
    EXPECT_EQ(r->acc.clip, r1.acc.clip);
    EXPECT_EQ(r->acc.batch_times_s, r1.acc.batch_times_s);
    EXPECT_EQ(r->psnr, r1.psnr);
    EXPECT_EQ(r->speedup, r1.speedup);
    EXPECT_EQ(r->acc.macs, r1.acc.macs);
    EXPECT_EQ(r->simulated_seconds, r1.simulated_seconds);
  }
  EXPECT_EQ(r1.device_name, "synthetic");
  EXPECT_EQ(a.gpu_name("cuda:0"), "synthetic");
}

TEST(SyntheticEvaluator, PromptRangesConcatenateToTheWholeList) {
  SyntheticEvaluator ev("noise=1,bumps=0.3");
  for (const auto& setting : {partition::Setting{}, partition::Setting{deepcache(4, 2), tgate(8, 3, 2)}}) {
    const auto whole = ev.evaluate(make_unit(setting, Model::SD21, 20, 8, 0));
    const auto first = ev.evaluate(make_unit(setting, Model::SD21, 20, 4, 0));
    const auto second = ev.evaluate(make_unit(setting, Model::SD21, 20, 4, 4));
    auto concat = [](std::vector<double> a, const std::vector<double>& b) {
      a.insert(a.end(), b.begin(), b.end());
      return a;
    };
    EXPECT_EQ(concat(first.base.clip, second.base.clip), whole.base.clip);
    EXPECT_EQ(concat(first.acc.clip, second.acc.clip), whole.acc.clip);
    EXPECT_EQ(concat(first.psnr, second.psnr), whole.psnr);
    EXPECT_EQ(concat(first.ssim, second.ssim), whole.ssim);
    EXPECT_EQ(concat(first.base.batch_times_s, second.base.batch_times_s), whole.base.batch_times_s);
    EXPECT_EQ(concat(first.acc.batch_times_s, second.acc.batch_times_s), whole.acc.batch_times_s);
    EXPECT_EQ(first.base.macs + second.base.macs, whole.base.macs);
    EXPECT_EQ(first.acc.macs + second.acc.macs, whole.acc.macs);
    EXPECT_NEAR(first.acc.total_s + second.acc.total_s, whole.acc.total_s, 1e-12 * whole.acc.total_s);
    EXPECT_NEAR(first.base.total_s + second.base.total_s, whole.base.total_s, 1e-12 * whole.base.total_s);
    EXPECT_NEAR(first.simulated_seconds + second.simulated_seconds, whole.simulated_seconds,
                1e-12 * whole.simulated_seconds);
    EXPECT_DOUBLE_EQ(whole.acc.total_s,
                     std::accumulate(whole.acc.batch_times_s.begin(), whole.acc.batch_times_s.end(), 0.0));
  }
}

// docs/evaluators.md's table: DeepCache (Ma et al.; diffusers' SD2.1 benchmark
// 2.32x at (3, 0), 3.18x at (5, 0)), ToMe (Bolya & Hoffman: more at higher
// resolution), T-GATE (10-50%).
TEST(SyntheticEvaluator, SpeedupsMatchThePublishedShape) {
  const std::string exact = "noise=0,jitter=0";
  for (Model model : {Model::SD15, Model::SD21}) {
    for (int steps : {20, 25, 50}) {
      SCOPED_TRACE(partition::model_name(model) + " " + std::to_string(steps) + " steps");
      const double dc3 = speedup(exact, make_unit({deepcache(3, 0)}, model, steps));
      const double dc5 = speedup(exact, make_unit({deepcache(5, 0)}, model, steps));
      EXPECT_GE(dc3, 2.0);
      EXPECT_LE(dc3, 2.6);
      EXPECT_GE(dc5, 2.8);
      EXPECT_LE(dc5, 3.6);
    }
  }
  const double sd21_dc3 = speedup(exact, make_unit({deepcache(3, 0)}, Model::SD21, 50));
  const double sd21_dc5 = speedup(exact, make_unit({deepcache(5, 0)}, Model::SD21, 50));
  EXPECT_NEAR(sd21_dc3, 2.32, 0.1);
  EXPECT_NEAR(sd21_dc5, 3.18, 0.15);
  // Deeper branches recompute more: slower.
  EXPECT_LT(speedup(exact, make_unit({deepcache(3, 6)})), speedup(exact, make_unit({deepcache(3, 2)})));

  const double tome512 = speedup(exact, make_unit({tome(0.5)}, Model::SD15, 50, 8, 0, 512));
  const double tome1024 = speedup(exact, make_unit({tome(0.5)}, Model::SD15, 50, 8, 0, 1024));
  const double tome2048 = speedup(exact, make_unit({tome(0.5)}, Model::SD15, 50, 8, 0, 2048));
  EXPECT_GE(tome512, 1.1);
  EXPECT_LE(tome512, 1.35);
  EXPECT_GT(tome1024, tome512 + 0.1);
  EXPECT_GT(tome2048, tome1024 + 0.1);
  EXPECT_LE(tome2048, 2.2);
  // Merging little costs more than it saves at 512 px.
  EXPECT_LT(speedup(exact, make_unit({tome(0.1, 2)}, Model::SD15, 50, 8, 0, 512)), 1.0);

  for (Model model : {Model::SD15, Model::SD21, Model::SDXL}) {
    SCOPED_TRACE(partition::model_name(model));
    const double late = speedup(exact, make_unit({tgate(45)}, model, 50));
    const double mid = speedup(exact, make_unit({tgate(20)}, model, 50));
    const double early = speedup(exact, make_unit({tgate(5)}, model, 50));
    EXPECT_GE(late, 1.0);
    EXPECT_LT(late, mid);
    EXPECT_GE(mid, 1.15);
    EXPECT_LE(mid, 1.5);
    EXPECT_LT(mid, early);
    EXPECT_LE(early, 1.6);
  }
  // Combinations compose: faster than either part, slower than their product.
  const double dc = speedup(exact, make_unit({deepcache(3, 0)}));
  const double tm = speedup(exact, make_unit({tome(0.5)}));
  const double both = speedup(exact, make_unit({deepcache(3, 0), tome(0.5)}));
  EXPECT_GT(both, dc);
  EXPECT_LT(both, dc * tm);
}

TEST(SyntheticEvaluator, LossesMatchTheCalibration) {
  const std::string exact = "noise=0";
  const double dc3 = loss(exact, make_unit({deepcache(3, 0)}));
  EXPECT_GE(dc3, 0.005);
  EXPECT_LE(dc3, 0.01);
  EXPECT_GE(loss(exact, make_unit({deepcache(10, 0)})), 0.05);
  const double tome7 = loss(exact, make_unit({tome(0.7)}));
  EXPECT_GE(tome7, 0.01);
  EXPECT_LE(tome7, 0.02);
  const double early_gate = loss(exact, make_unit({tgate(5)}));
  EXPECT_GE(early_gate, 0.02);
  EXPECT_LE(early_gate, 0.04);
  // Fewer steps lose more; moderately aggressive settings still meet 0.02.
  EXPECT_GT(loss(exact, make_unit({deepcache(3, 0)}, Model::SD15, 20)), dc3);
  EXPECT_LT(loss(exact, make_unit({deepcache(3, 0)}, Model::SD15, 20)), 0.02);
  EXPECT_LT(loss(exact, make_unit({deepcache(3, 0), tome(0.3)}, Model::SD15, 25)), 0.02);
  // A combination loses more than its parts.
  const double tm = loss(exact, make_unit({tome(0.5)}));
  const double both = loss(exact, make_unit({deepcache(3, 0), tome(0.5)}));
  EXPECT_GT(both, dc3 + tm);
  EXPECT_LT(both, 1.5 * (dc3 + tm));
}

// Loss never decreases as a setting gets more aggressive on any declared
// axis (partition::ParamSpec::aggressive), alone and inside combinations.
TEST(SyntheticEvaluator, LossIsMonotoneAlongEveryDeclaredAxisWithoutBumps) {
  SyntheticEvaluator ev("noise=0,bumps=0");
  auto l = [&](const partition::Setting& s, Model model = Model::SD15, int steps = 25) {
    return ev.evaluate(make_unit(s, model, steps)).score_loss;
  };
  for (Model model : {Model::SD15, Model::SDXL}) {
    const int branches = 3 * partition::down_block_count(model);
    for (int b = 0; b < branches; ++b) {
      for (int i = 2; i < 10; ++i) {
        EXPECT_LT(l({deepcache(i, b)}, model), l({deepcache(i + 1, b)}, model)) << i << " " << b;
        EXPECT_LT(l({deepcache(i, b), tome(0.5)}, model), l({deepcache(i + 1, b), tome(0.5)}, model));
      }
      if (b + 1 < branches) {
        EXPECT_GT(l({deepcache(3, b)}, model), l({deepcache(3, b + 1)}, model));
      }
    }
    for (int k = 1; k < 7; ++k) {
      const int ds = model == Model::SDXL ? 2 : 1;
      EXPECT_LT(l({tome(k / 10.0, ds)}, model), l({tome((k + 1) / 10.0, ds)}, model)) << k;
      EXPECT_LT(l({tome(k / 10.0, ds)}, model), l({tome(k / 10.0, 2 * ds)}, model)) << k;
      EXPECT_LT(l({deepcache(3, 0), tome(k / 10.0, ds)}, model), l({deepcache(3, 0), tome((k + 1) / 10.0, ds)}, model));
    }
  }
  // The merge flags: merging more operations is more aggressive.
  auto flags = [](bool attn, bool cross, bool mlp) {
    auto s = tome(0.5);
    s.params["merge_attn"] = attn;
    s.params["merge_crossattn"] = cross;
    s.params["merge_mlp"] = mlp;
    return partition::Setting{s};
  };
  EXPECT_LT(l(flags(true, false, false)), l(flags(true, true, false)));
  EXPECT_LT(l(flags(true, false, false)), l(flags(true, false, true)));
  EXPECT_LT(l(flags(false, true, false)), l(flags(true, true, false)));
  for (int steps : {20, 50}) {
    for (int g = 1; g < steps; ++g) {
      EXPECT_GT(l({tgate(g)}, Model::SD15, steps), l({tgate(g + 1)}, Model::SD15, steps)) << g;
      EXPECT_GT(l({deepcache(2, 0), tgate(g), tome(0.3)}, Model::SD15, steps),
                l({deepcache(2, 0), tgate(g + 1), tome(0.3)}, Model::SD15, steps));
    }
    for (int w = 0; w < 4; ++w) EXPECT_GT(l({tgate(steps / 2, 3, w)}, Model::SD15, steps), l({tgate(steps / 2, 3, w + 1)}, Model::SD15, steps));
  }
}

TEST(SyntheticEvaluator, BumpsBreakMonotonicityButNotSpeed) {
  SyntheticEvaluator flat("noise=0"), bumpy("noise=0,bumps=0.5");
  int changed = 0, inversions = 0;
  for (int b = 0; b < 12; ++b) {
    double previous = -1;
    for (int i = 2; i <= 10; ++i) {
      const auto unit = make_unit({deepcache(i, b)});
      const auto f = flat.evaluate(unit);
      const auto r = bumpy.evaluate(unit);
      EXPECT_EQ(f.speedup, r.speedup);
      if (r.score_loss != f.score_loss) ++changed;
      EXPECT_LE(std::abs(r.score_loss / f.score_loss - 1.0), 0.5 + 1e-9);
      if (r.score_loss < previous) ++inversions;
      previous = r.score_loss;
    }
  }
  EXPECT_GT(changed, 100);
  EXPECT_GT(inversions, 0);
}

TEST(SyntheticEvaluator, NoiseZeroIsTheExactLandscape) {
  SyntheticEvaluator exact("noise=0"), noisy("noise=1");
  const auto unit = make_unit({deepcache(4, 0), tome(0.4)}, Model::SD15, 25, 32);
  const auto r = exact.evaluate(unit);
  const double ratio = 1.0 - r.score_loss;
  for (std::size_t i = 0; i < r.acc.clip.size(); ++i) {
    EXPECT_NEAR(r.acc.clip[i] / r.base.clip[i], ratio, 1e-12) << i;
    EXPECT_EQ(r.psnr[i], r.psnr[0]);
    EXPECT_EQ(r.ssim[i], r.ssim[0]);
  }
  // Noise moves the accelerated scores, never the baseline's; paired
  // differences vary far less than the scores themselves, as in reality.
  const auto n = noisy.evaluate(unit);
  EXPECT_EQ(n.base.clip, r.base.clip);
  EXPECT_NE(n.acc.clip, r.acc.clip);
  auto sd = [](const std::vector<double>& v) {
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double ss = 0;
    for (double x : v) ss += (x - mean) * (x - mean);
    return std::sqrt(ss / (v.size() - 1));
  };
  std::vector<double> diff;
  for (std::size_t i = 0; i < n.acc.clip.size(); ++i) diff.push_back(n.base.clip[i] - n.acc.clip[i]);
  EXPECT_GT(sd(n.base.clip), 1.5);
  EXPECT_LT(sd(diff), 0.6);
  EXPECT_GT(sd(diff), 0.1);
  // The landscape's seed draws other prompts' difficulties.
  SyntheticEvaluator other("seed=5");
  EXPECT_NE(other.evaluate(unit).base.clip, r.base.clip);
}

TEST(SyntheticEvaluator, BaselineUnitIsTheBaseline) {
  SyntheticEvaluator ev("");
  const auto r = ev.evaluate(make_unit({}, Model::SDXL, 20, 4));
  EXPECT_EQ(r.acc.clip, r.base.clip);
  EXPECT_EQ(r.speedup, 1.0);
  EXPECT_EQ(r.speedup_macs, 1.0);
  EXPECT_EQ(r.score_loss, 0.0);
  EXPECT_EQ(r.psnr_mean, 100.0);
  EXPECT_EQ(r.ssim_mean, 1.0);
  // SDXL at 1024 px: 8.4 cost units a step, 21.5 steps an image, 4 images.
  EXPECT_NEAR(r.simulated_seconds, 4 * 21.5 * 8.4 * kSyntheticSecondsPerCostUnit, 1e-9);
  EXPECT_NEAR(static_cast<double>(r.base.macs), 4 * 21.5 * 8.4 * kSyntheticMacsPerCostUnit, 8);
}

TEST(SyntheticEvaluator, EstimateIsTheSimulatedSeconds) {
  SyntheticEvaluator ev("noise=2,bumps=0.2,seed=3");
  for (const auto& setting :
       {partition::Setting{}, partition::Setting{deepcache(3, 0)}, partition::Setting{tgate(7, 3, 2)},
        partition::Setting{tome(0.6, 2)}, partition::Setting{deepcache(5, 4), tgate(12, 5, 0), tome(0.3)}}) {
    for (Model model : {Model::SD15, Model::SDXL}) {
      auto unit = make_unit(setting, model, 25, 16, 16);
      const auto r = ev.evaluate(unit);
      const auto e = ev.estimate_seconds(unit);
      ASSERT_TRUE(e.has_value());
      EXPECT_EQ(*e, r.simulated_seconds);
      EXPECT_GT(*e, 0);
      // Close to the jittered measured time.
      EXPECT_NEAR(*e, setting.empty() ? r.base.total_s : r.acc.total_s, 0.01 * *e);
    }
  }
}

TEST(SyntheticEvaluator, BadOptionsNameTheOptionAndTheAcceptedOnes) {
  for (const char* options : {"noise=-1", "bumps=x", "colour=blue", "seed=abc", "seed=-3", "seed=18446744073709551616", "jitter=0.5", "noise=1x",
                              "noise"}) {
    try {
      SyntheticEvaluator ev(options);
      ADD_FAILURE() << options << " was accepted";
    } catch (const InputError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(options), std::string::npos) << message;
      EXPECT_NE(message.find("seed=S"), std::string::npos) << message;
      EXPECT_NE(message.find("bumps=Y"), std::string::npos) << message;
    }
  }
  EXPECT_NO_THROW(SyntheticEvaluator("seed=18446744073709551615,noise=0.5,bumps=1,jitter=0"));
  EXPECT_NO_THROW(make_evaluator("synthetic", 0));
  EXPECT_NO_THROW(make_evaluator("synthetic:seed=2,noise=0", 1));
  EXPECT_THROW(make_evaluator("synthetic:noise=", 0), InputError);
  try {
    make_evaluator("simulated", 0);
    ADD_FAILURE();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("synthetic"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("replay:FILE.h5"), std::string::npos);
  }
}

}  // namespace
}  // namespace diffsearch::coordinator
