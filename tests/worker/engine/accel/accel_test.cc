// Tests of the acceleration policies: `--accel` parsing and checks, the
// DeepCache numbering and schedules, T-GATE's schedule, ToMe's matching
// against a plain re-statement of tomesd, seeded randomness, and that each
// policy really skips work (fewer MACs, skipped blocks never entered).
#include "worker/engine/accel/accel.h"

#include <algorithm>
#include <map>
#include <set>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "io/error.h"
#include "tests/support/engine/forwarding_hooks.h"
#include "tests/support/engine/pipeline_fixtures.h"
#include "worker/engine/core/device.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/accel/policy_deepcache.h"
#include "worker/engine/accel/policy_tgate.h"
#include "worker/engine/accel/policy_tome.h"
#include "worker/engine/models/unet.h"

namespace diffsearch::engine {
namespace {

using testing::model_dir;
using testing::reference_json;

const Pipeline& pipeline(const std::string& model) {
  static std::map<std::string, std::unique_ptr<Pipeline>> cache;
  auto& p = cache[model];
  if (!p) p = Pipeline::load(model_dir(model), {c10::kDouble, c10::Device(c10::kCPU)});
  return *p;
}

const UNet2DCondition& sd15_unet() { return pipeline("tiny-sd15").unet(); }

// ---------------------------------------------------------------- specs

TEST(AccelSpec, IssueExamplesParse) {
  AccelSpec d = parse_accel_spec("deepcache:cache_interval=3,cache_branch_id=0");
  EXPECT_EQ(d.method, "deepcache");
  EXPECT_EQ(d.params, (nlohmann::json{{"cache_interval", 3}, {"cache_branch_id", 0}}));
  EXPECT_TRUE(d.params.at("cache_interval").is_number_integer());

  AccelSpec t = parse_accel_spec("tome:ratio=0.5,max_downsample=1,sx=2,sy=2,use_rand=false");
  EXPECT_EQ(t.method, "tome");
  EXPECT_EQ(t.params.at("ratio").get<double>(), 0.5);
  EXPECT_EQ(t.params.at("use_rand"), false);
  EXPECT_EQ(t.params.at("sx"), 2);

  AccelSpec g = parse_accel_spec(" tgate:gate_step=10, sp_interval=5,fi_interval=1,warm_up=2 ");
  EXPECT_EQ(g.method, "tgate");
  EXPECT_EQ(g.params, (nlohmann::json{{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1},
                                      {"warm_up", 2}}));

  EXPECT_TRUE(parse_accel_spec("tome").params.empty());
  EXPECT_EQ(parse_accel_spec("deepcache:skip_mode=non-uniform,center=12,pow=1.3").params.at("skip_mode"),
            "non-uniform");
  EXPECT_EQ(format_accel_spec(t), "tome:max_downsample=1,ratio=0.5,sx=2,sy=2,use_rand=false");
  EXPECT_EQ(format_accel_spec(parse_accel_spec(format_accel_spec(t))), format_accel_spec(t));
}

TEST(AccelSpec, MissingKeysTakeTheReferenceDefaults) {
  const auto& unet = sd15_unet();
  EXPECT_EQ(complete_accel_params(parse_accel_spec("deepcache"), unet, 20),
            (nlohmann::json{{"cache_interval", 1}, {"cache_branch_id", 0}, {"skip_mode", "uniform"},
                            {"center", 15}, {"pow", 1.4}}));
  EXPECT_EQ(complete_accel_params(parse_accel_spec("tome:ratio=0.3"), unet, 20),
            (nlohmann::json{{"ratio", 0.3}, {"max_downsample", 1}, {"sx", 2}, {"sy", 2},
                            {"use_rand", true}, {"merge_attn", true}, {"merge_crossattn", false},
                            {"merge_mlp", false}}));
  EXPECT_EQ(complete_accel_params(parse_accel_spec("tgate"), unet, 20),
            (nlohmann::json{{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}}));
  // Specs made in code (or read from JSON) with whole floats are fine.
  AccelSpec j{"deepcache", {{"cache_interval", 3.0}}};
  EXPECT_EQ(complete_accel_params(j, unet, 20).at("cache_interval"), 3);
}

struct BadSpec {
  std::string text;
  std::vector<std::string> mentions;  // each must appear in the message
};

TEST(AccelSpec, BadSpecsAreRejectedClearly) {
  const auto& unet = sd15_unet();  // 4 down blocks: branch ids 0..11
  const std::vector<BadSpec> cases = {
      {"", {"empty"}},
      {"fastmode:x=1", {"fastmode", "deepcache, tome or tgate"}},
      {"tome:speed=2", {"tome:speed=2", "speed", "ratio"}},
      {"tome:ratio=abc", {"ratio", "number", "abc"}},
      {"tome:ratio", {"KEY=VALUE", "ratio"}},
      {"tome:ratio=0.5,", {"KEY=VALUE"}},
      {"tome:ratio=1", {"ratio", "[0, 1)", "1"}},
      {"tome:ratio=1.5", {"ratio", "1.5"}},
      {"tome:ratio=-0.1", {"ratio", "-0.1"}},
      {"tome:sx=0", {"sx", "at least 1"}},
      {"tome:use_rand=maybe", {"use_rand", "true or false", "maybe"}},
      {"tome:ratio=0.5,ratio=0.4", {"ratio", "twice"}},
      {"deepcache:cache_interval=0", {"cache_interval", "at least 1", "0"}},
      {"deepcache:cache_interval=2.5", {"cache_interval", "whole number", "2.5"}},
      {"deepcache:cache_interval=three", {"cache_interval", "three"}},
      {"deepcache:cache_branch_id=12", {"cache_branch_id", "[0, 11]", "12"}},
      {"deepcache:cache_branch_id=-1", {"cache_branch_id", "at least 0", "-1"}},
      {"deepcache:skip_mode=random", {"skip_mode", "uniform or non-uniform", "random"}},
      {"deepcache:center=10", {"center", "non-uniform"}},
      {"deepcache:skip_mode=non-uniform,cache_interval=3,pow=0.9", {"pow", "above 1"}},
      {"deepcache:skip_mode=non-uniform,cache_interval=3,center=20", {"center", "20"}},
      {"tgate:gate_step=30", {"gate_step", "30", "20 steps"}},
      {"tgate:gate_step=0", {"gate_step", "at least 1"}},
      {"tgate:sp_interval=0", {"sp_interval", "at least 1"}},
      {"tgate:fi_interval=0", {"fi_interval", "at least 1"}},
      {"tgate:warm_up=-1", {"warm_up", "-1"}},
  };
  for (const BadSpec& c : cases) {
    try {
      complete_accel_params(parse_accel_spec(c.text), unet, 20);
      ADD_FAILURE() << "accepted: " << c.text;
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
      for (const auto& m : c.mentions) EXPECT_NE(msg.find(m), std::string::npos) << c.text << " -> " << msg;
    }
  }
  // Specs built in code are checked the same way.
  EXPECT_THROW(complete_accel_params({"tome", {{"ratio", "0.5"}}}, unet, 20), InputError);
  EXPECT_THROW(complete_accel_params({"tome", {{"rate", 0.5}}}, unet, 20), InputError);
  EXPECT_THROW(complete_accel_params({"blur", {}}, unet, 20), InputError);
  // A method given twice.
  try {
    Acceleration::create({parse_accel_spec("tome"), parse_accel_spec("tome:ratio=0.3")}, unet, 20);
    ADD_FAILURE() << "two tome specs accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("twice"), std::string::npos) << e.what();
  }
  // Without the UNet, everything but the branch id's upper bound is checked.
  EXPECT_THROW(complete_accel_params(parse_accel_spec("tome:ratio=1"), 20), InputError);
  EXPECT_THROW(complete_accel_params(parse_accel_spec("tgate:gate_step=21"), 20), InputError);
  EXPECT_THROW(complete_accel_params(parse_accel_spec("deepcache:cache_branch_id=-1"), 20), InputError);
  EXPECT_NO_THROW(complete_accel_params(parse_accel_spec("deepcache:cache_branch_id=40"), 20));
  // SDXL's tiny UNet has 3 down blocks.
  EXPECT_THROW(complete_accel_params(parse_accel_spec("deepcache:cache_branch_id=9"),
                                     pipeline("tiny-sdxl").unet(), 20),
               InputError);
}

TEST(AccelSpec, NoSpecsNoHooks) {
  auto acc = Acceleration::create({}, sd15_unet(), 20);
  EXPECT_EQ(acc->unet_hooks(), nullptr);
  EXPECT_TRUE(acc->step_policies().empty());
}

// ---------------------------------------------------------------- DeepCache

TEST(DeepCache, NonUniformFullStepsAreThePapers) {
  EXPECT_EQ(deepcache_nonuniform_full_steps(50, 5, 15, 1.4),
            (std::vector<int64_t>{0, 5, 9, 13, 17, 21, 26, 31, 37, 43}));
  EXPECT_EQ(deepcache_nonuniform_full_steps(50, 3, 15, 1.4),
            (std::vector<int64_t>{0, 3, 6, 8, 11, 13, 15, 17, 20, 22, 25, 28, 32, 35, 38, 42, 46}));
  EXPECT_EQ(deepcache_nonuniform_full_steps(50, 2, 15, 1.4),
            (std::vector<int64_t>{0,  2,  4,  6,  7,  9,  11, 12, 14, 15, 17, 18, 20,
                                  22, 24, 26, 28, 30, 32, 35, 37, 39, 42, 44, 47}));
  std::vector<int64_t> all(7);
  for (int i = 0; i < 7; ++i) all[i] = i;
  EXPECT_EQ(deepcache_nonuniform_full_steps(7, 1, 3, 1.4), all);
  // As many full steps as the uniform schedule has, for other lengths too.
  EXPECT_EQ(deepcache_nonuniform_full_steps(20, 3, 6, 1.4).size(), 7u);
  EXPECT_THROW(deepcache_nonuniform_full_steps(50, 2, 15, 1.0), InputError);
}

TEST(DeepCache, HelperNumberingOnSd15) {
  const auto& unet = sd15_unet();
  using P = UNetPart;
  using M = UNetModule;
  // Up blocks count from the other end, their layers too; the downsampler is layer 2.
  DeepCacheAddress a = deepcache_address(unet, {P::up, 3, M::resnet, 2});
  EXPECT_TRUE(a.up);
  EXPECT_EQ(a.block, 0);
  EXPECT_EQ(a.layer, 0);
  a = deepcache_address(unet, {P::up, 0, M::upsampler, 0});
  EXPECT_EQ(a.block, 3);
  EXPECT_EQ(a.layer, 0);
  EXPECT_EQ(deepcache_address(unet, {P::down, 1, M::downsampler, 0}).layer, 2);
  EXPECT_TRUE(deepcache_address(unet, {P::mid, 0, M::resnet, 1}).mid);

  // Branch 0: only the last resnet/attention pair of the last up block runs.
  DeepCachePolicy b0({3, 0}, unet);
  EXPECT_TRUE(b0.reused_on_partial_steps({P::down, 0, M::block, 0}));
  EXPECT_TRUE(b0.reused_on_partial_steps({P::mid, 0, M::block, 0}));
  EXPECT_FALSE(b0.reused_on_partial_steps({P::up, 3, M::block, 0}));
  EXPECT_TRUE(b0.reused_on_partial_steps({P::up, 3, M::resnet, 0}));
  EXPECT_TRUE(b0.reused_on_partial_steps({P::up, 3, M::attention, 1}));
  EXPECT_FALSE(b0.reused_on_partial_steps({P::up, 3, M::resnet, 2}));
  EXPECT_FALSE(b0.reused_on_partial_steps({P::up, 3, M::attention, 2}));
  EXPECT_TRUE(b0.reused_on_partial_steps({P::up, 2, M::block, 0}));
  // Branch 2 (block 0, layer 2): down block 0 runs except its downsampler;
  // the last up block runs whole.
  DeepCachePolicy b2({5, 2}, unet);
  EXPECT_FALSE(b2.reused_on_partial_steps({P::down, 0, M::block, 0}));
  EXPECT_FALSE(b2.reused_on_partial_steps({P::down, 0, M::resnet, 1}));
  EXPECT_TRUE(b2.reused_on_partial_steps({P::down, 0, M::downsampler, 0}));
  EXPECT_TRUE(b2.reused_on_partial_steps({P::down, 1, M::block, 0}));
  for (int l = 0; l < 3; ++l) EXPECT_FALSE(b2.reused_on_partial_steps({P::up, 3, M::resnet, l}));
  // Branch 4 (block 1, layer 1).
  DeepCachePolicy b4({2, 4}, unet);
  EXPECT_FALSE(b4.reused_on_partial_steps({P::down, 0, M::downsampler, 0}));
  EXPECT_FALSE(b4.reused_on_partial_steps({P::down, 1, M::resnet, 0}));
  EXPECT_TRUE(b4.reused_on_partial_steps({P::down, 1, M::resnet, 1}));
  EXPECT_FALSE(b4.reused_on_partial_steps({P::up, 2, M::resnet, 1}));  // helper layer 1
  EXPECT_TRUE(b4.reused_on_partial_steps({P::up, 2, M::resnet, 0}));   // helper layer 2
  EXPECT_FALSE(b4.reused_on_partial_steps({P::up, 2, M::upsampler, 0}));
}

TEST(DeepCache, UniformFullStepsAndRestarts) {
  DeepCachePolicy p({3, 0}, sd15_unet());
  std::vector<int64_t> full;
  for (int64_t i = 0; i < 12; ++i) {
    if (p.is_full_step(i)) full.push_back(i);
  }
  EXPECT_EQ(full, (std::vector<int64_t>{0, 3, 6, 9}));
  p.set_restart_steps({4, 5});
  full.clear();
  for (int64_t i = 0; i < 12; ++i) {
    if (p.is_full_step(i)) full.push_back(i);
  }
  // The helper's reset at 4 and 5 (T-GATE's gate - 1 and gate) restarts the count.
  EXPECT_EQ(full, (std::vector<int64_t>{0, 3, 4, 5, 8, 11}));
}

// The first resnet partial steps recompute (branch 0: the last up block's
// last) gets a share only where its h is the kept output: on a full step
// (to fill), and on a partial step once the source of h was reused; not at
// all on a partial step that computed h afresh, nor elsewhere.
TEST(DeepCache, InputShareOnlyWhereHIsTheKeptOutput) {
  const UNet2DCondition& unet = sd15_unet();
  DeepCachePolicy p({3, 0}, unet);
  const int last_up = unet.num_up_blocks() - 1;
  const int last = unet.num_resnets(UNetPart::up, last_up) - 1;
  const UNetLocation input{UNetPart::up, last_up, UNetModule::resnet, last};
  const UNetLocation source{UNetPart::up, last_up, UNetModule::attention, last - 1};
  p.begin_run({901, 801, 701});
  UNetForwardInfo info;
  info.batch = 2;
  info.height = info.width = 16;
  p.begin_forward(info);  // step 0: full
  ResnetInputShare* share = p.resnet_input_share(input);
  ASSERT_NE(share, nullptr);
  EXPECT_EQ(p.resnet_input_share({UNetPart::up, last_up, UNetModule::resnet, last - 1}), nullptr);
  EXPECT_EQ(p.resnet_input_share({UNetPart::up, 0, UNetModule::resnet, 0}), nullptr);
  share->conv1 = at::ones({1});  // as forward_split fills it
  LayerOutput kept;
  kept.hidden = at::zeros({2, 4});
  p.layer_computed(source, kept);

  p.begin_forward(info);  // step 1: partial
  EXPECT_EQ(p.resnet_input_share(input), nullptr) << "h's source not reused in this forward";
  EXPECT_FALSE(share->filled()) << "a share of another h is dropped";
  LayerOutput out;
  ASSERT_TRUE(p.reuse_layer(source, out));
  EXPECT_EQ(p.resnet_input_share(input), share);

  DeepCachePolicy every_step({1, 0}, unet);  // interval 1: every step full, nothing kept
  every_step.begin_run({901, 801});
  every_step.begin_forward(info);
  EXPECT_EQ(every_step.resnet_input_share(input), nullptr);
}

// ---------------------------------------------------------------- T-GATE

TEST(TGate, ScheduleOfTheReference) {
  const TGateParams p;  // gate 10, sp 5, fi 1, warm-up 2
  std::string self, cross;
  for (int64_t c = 0; c < 14; ++c) {
    const TGateStep s = tgate_step(p, c);
    auto code = [](const TGateAction& a) { return a.cache ? 'C' : a.reuse ? 'R' : '-'; };
    self += code(s.self);
    cross += code(s.cross);
    EXPECT_EQ(s.average_halves, c == 9) << c;
    EXPECT_EQ(s.drop_cfg, c >= 10) << c;
  }
  // -: compute, C: compute and keep, R: reuse.
  EXPECT_EQ(self, "--CRRCRRRCCCCC");
  EXPECT_EQ(cross, "---------CRRRR");
  TGateParams q{6, 2, 3, 1};
  std::string s2;
  for (int64_t c = 0; c < 10; ++c) {
    const TGateStep s = tgate_step(q, c);
    s2 += s.self.cache ? 'C' : s.self.reuse ? 'R' : '-';
  }
  EXPECT_EQ(s2, "-CCRCCCRRC");
}

// ---------------------------------------------------------------- ToMe

// tomesd's matching spelled out with loops, for comparison.
struct PlainMatch {
  std::vector<int64_t> dst, src;            // positions
  std::vector<std::vector<int64_t>> unm;    // per batch: unmerged source positions, best first
  std::vector<std::vector<int64_t>> merged;  // per batch: merged source positions
  std::vector<std::vector<int64_t>> into;    // per batch: destination index of each merged source
};

PlainMatch plain_match(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx, int64_t sy,
                       int64_t r, const std::vector<int64_t>& choice) {
  PlainMatch m;
  const int64_t batch = metric.size(0), n = metric.size(1);
  std::set<int64_t> dsts;
  for (int64_t i = 0; i < h / sy; ++i) {
    for (int64_t j = 0; j < w / sx; ++j) {
      const int64_t k = choice.empty() ? 0 : choice[i * (w / sx) + j];
      dsts.insert((i * sy + k / sx) * w + j * sx + k % sx);
    }
  }
  for (int64_t p = 0; p < n; ++p) (dsts.count(p) ? m.dst : m.src).push_back(p);
  at::Tensor unit = metric / metric.norm(2, {-1}, true);
  r = std::min<int64_t>(r, m.src.size());
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<std::pair<double, int64_t>> best;  // (score, source index)
    std::vector<int64_t> arg(m.src.size());
    for (std::size_t s = 0; s < m.src.size(); ++s) {
      double top = -1e300;
      for (std::size_t d = 0; d < m.dst.size(); ++d) {
        const double v = (unit[b][m.src[s]] * unit[b][m.dst[d]]).sum().item<double>();
        if (v > top) {
          top = v;
          arg[s] = static_cast<int64_t>(d);
        }
      }
      best.push_back({top, static_cast<int64_t>(s)});
    }
    std::stable_sort(best.begin(), best.end(),
                     [](const auto& x, const auto& y) { return x.first > y.first; });
    m.unm.emplace_back();
    m.merged.emplace_back();
    m.into.emplace_back();
    for (int64_t q = 0; q < static_cast<int64_t>(best.size()); ++q) {
      const int64_t s = best[q].second;
      if (q < r) {
        m.merged[b].push_back(m.src[s]);
        m.into[b].push_back(arg[s]);
      } else {
        m.unm[b].push_back(m.src[s]);
      }
    }
  }
  return m;
}

void check_against_plain(int64_t w, int64_t h, int64_t r, const std::vector<int64_t>& choice) {
  torch::manual_seed(3);
  const int64_t batch = 2, channels = 5, n = w * h;
  at::Tensor metric = torch::randn({batch, n, channels}, torch::kDouble);
  at::Tensor x = torch::randn({batch, n, 3}, torch::kDouble);
  at::Tensor choice_t;
  if (!choice.empty()) choice_t = torch::tensor(choice, torch::kLong).view({h / 2, w / 2});
  TokenMerge tm = bipartite_soft_matching_2d(metric, w, h, 2, 2, r, choice_t);
  PlainMatch pm = plain_match(metric, w, h, 2, 2, r, choice);
  ASSERT_TRUE(tm.active());
  const int64_t merged_r = static_cast<int64_t>(pm.merged[0].size());
  EXPECT_EQ(tm.merged_tokens(), n - merged_r);

  at::Tensor m = tm.merge(x);
  ASSERT_EQ(m.sizes().vec(), (std::vector<int64_t>{batch, n - merged_r, 3}));
  at::Tensor back = tm.unmerge(m);
  ASSERT_EQ(back.sizes().vec(), x.sizes().vec());
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t nu = static_cast<int64_t>(pm.unm[b].size());
    for (int64_t q = 0; q < nu; ++q) {
      EXPECT_TRUE(torch::equal(m[b][q], x[b][pm.unm[b][q]])) << b << " " << q;
      EXPECT_TRUE(torch::equal(back[b][pm.unm[b][q]], x[b][pm.unm[b][q]]));
    }
    for (std::size_t d = 0; d < pm.dst.size(); ++d) {
      at::Tensor sum = x[b][pm.dst[d]].clone();
      int count = 1;
      for (std::size_t s = 0; s < pm.merged[b].size(); ++s) {
        if (pm.into[b][s] == static_cast<int64_t>(d)) {
          sum += x[b][pm.merged[b][s]];
          ++count;
        }
      }
      at::Tensor expected = sum / count;
      EXPECT_LT((m[b][nu + d] - expected).abs().max().item<double>(), 1e-12) << b << " " << d;
      EXPECT_TRUE(torch::equal(back[b][pm.dst[d]], m[b][nu + d]));
    }
    for (std::size_t s = 0; s < pm.merged[b].size(); ++s) {
      EXPECT_TRUE(torch::equal(back[b][pm.merged[b][s]], m[b][nu + pm.into[b][s]]));
    }
  }
}

TEST(ToMe, MatchingIsTomesds) {
  check_against_plain(4, 4, 8, {});
  check_against_plain(6, 4, 12, {3, 0, 2, 1, 1, 0});
  // Odd sizes: the last row and column are sources only.
  check_against_plain(5, 7, 10, {});
  // More merges asked than sources: all sources merge.
  check_against_plain(4, 4, 100, {});
  // Nothing to merge.
  at::Tensor metric = torch::randn({1, 16, 4}, torch::kDouble);
  EXPECT_FALSE(bipartite_soft_matching_2d(metric, 4, 4, 2, 2, 0, at::Tensor()).active());
}

TEST(ToMe, PartitionPutsOneDestinationPerWindow) {
  auto [dst, src] = token_partition_2d(4, 4, 2, 2, torch::tensor({0, 1, 2, 3}, torch::kLong).view({2, 2}));
  EXPECT_EQ(std::vector<int64_t>(dst.data_ptr<int64_t>(), dst.data_ptr<int64_t>() + dst.numel()),
            (std::vector<int64_t>{0, 3, 12, 15}));
  EXPECT_EQ(src.numel(), 12);
}

// ---------------------------------------------------------------- whole runs

SampleRequest short_run(const std::string& model, int64_t steps) {
  const auto ref = reference_json(model);
  SampleRequest r;
  r.prompts = {ref.at("prompt").get<std::string>()};
  r.negative_prompts = {""};
  r.sampler = SamplerKind::ddim;
  r.steps = steps;
  r.guidance_scale = 7.5;
  r.height = r.width = 128;
  r.seed = 0;
  return r;
}

std::string name_of(const UNetLocation& w) {
  static const char* parts[] = {"down", "mid", "up"};
  static const char* modules[] = {"block", "resnet", "attention", "downsampler", "upsampler"};
  return std::string(parts[static_cast<int>(w.part)]) + std::to_string(w.block) + "." +
         modules[static_cast<int>(w.module)] + std::to_string(w.layer);
}

// Wraps a run's hooks and writes down, per UNet forward, what was entered,
// reused and computed, and the MACs counted so far.
class Recorder final : public testing::ForwardingHooks {
 public:
  using ForwardingHooks::ForwardingHooks;
  struct Forward {
    int64_t batch = 0;
    std::set<std::string> entered, reused, computed;
    std::set<std::string> shared;  // resnets given h's share: "<name> filled" / "<name> reused"
    int64_t attention_reused = 0, attention_computed = 0;
    int64_t macs_before = 0;
  };
  std::vector<Forward> forwards;

  void begin_forward(const UNetForwardInfo& info) override {
    forwards.push_back({});
    forwards.back().batch = info.batch;
    forwards.back().macs_before = macs::total();
    ForwardingHooks::begin_forward(info);
  }
  bool reuse_layer(const UNetLocation& where, LayerOutput& out) override {
    forwards.back().entered.insert(name_of(where));
    if (!ForwardingHooks::reuse_layer(where, out)) return false;
    forwards.back().reused.insert(name_of(where));
    return true;
  }
  void layer_computed(const UNetLocation& where, const LayerOutput& out) override {
    forwards.back().computed.insert(name_of(where));
    ForwardingHooks::layer_computed(where, out);
  }
  bool reuse_attention(const AttentionLocation& where, at::Tensor& out) override {
    if (!ForwardingHooks::reuse_attention(where, out)) return false;
    ++forwards.back().attention_reused;
    return true;
  }
  void attention_computed(const AttentionLocation& where, const at::Tensor& out) override {
    ++forwards.back().attention_computed;
    ForwardingHooks::attention_computed(where, out);
  }
  ResnetInputShare* resnet_input_share(const UNetLocation& where) override {
    ResnetInputShare* share = ForwardingHooks::resnet_input_share(where);
    if (share != nullptr) {
      forwards.back().shared.insert(name_of(where) + (share->filled() ? " reused" : " filled"));
    }
    return share;
  }
};

struct Measured {
  at::Tensor latents;
  int64_t macs = 0;
  std::vector<Recorder::Forward> forwards;
};

Measured run_with(const std::string& model, const std::vector<std::string>& specs, int64_t steps,
                  uint64_t seed = 0) {
  const Pipeline& p = pipeline(model);
  SampleRequest r = short_run(model, steps);
  r.seed = seed;
  std::vector<AccelSpec> parsed;
  for (const auto& s : specs) parsed.push_back(parse_accel_spec(s));
  auto acc = Acceleration::create(parsed, p.unet(), steps, seed);
  Recorder rec(acc->unet_hooks());
  r.unet_hooks = &rec;
  r.policies = acc->step_policies();
  macs::reset();
  Measured m;
  m.latents = p.sample(r).latents;
  m.macs = macs::total();
  m.forwards = rec.forwards;
  return m;
}

int64_t macs_of_forward(const Measured& m, std::size_t k) {
  const int64_t end = k + 1 < m.forwards.size() ? m.forwards[k + 1].macs_before : m.macs;
  return end - m.forwards[k].macs_before;
}

TEST(AccelWork, DeepCacheSkipsTheDeepBranch) {
  const Measured base = run_with("tiny-sd15", {}, 6);
  const Measured dc = run_with("tiny-sd15", {"deepcache:cache_interval=3,cache_branch_id=0"}, 6);
  EXPECT_LT(dc.macs, base.macs);
  ASSERT_EQ(dc.forwards.size(), 6u);
  const std::set<std::string> partial_computed = {"up3.block0", "up3.resnet2", "up3.attention2"};
  for (std::size_t k = 0; k < 6; ++k) {
    const auto& f = dc.forwards[k];
    if (k % 3 == 0) {
      // Full step: everything runs, nothing is reused; the first resnet of
      // the partial steps keeps its input's share.
      EXPECT_TRUE(f.reused.empty()) << k;
      EXPECT_EQ(f.shared, std::set<std::string>{"up3.resnet2 filled"}) << k;
      EXPECT_EQ(macs_of_forward(dc, k), macs_of_forward(base, k)) << k;
      EXPECT_TRUE(f.computed.count("mid0.block0")) << k;
      continue;
    }
    EXPECT_EQ(f.computed, partial_computed) << k;
    EXPECT_EQ(f.shared, std::set<std::string>{"up3.resnet2 reused"}) << k;
    // Reused blocks are not entered below their top.
    EXPECT_TRUE(f.reused.count("down0.block0")) << k;
    EXPECT_TRUE(f.reused.count("mid0.block0")) << k;
    EXPECT_TRUE(f.reused.count("up0.block0")) << k;
    EXPECT_TRUE(f.reused.count("down1.block0")) << k;
    for (const char* inner : {"down0.resnet0", "down1.resnet0", "mid0.resnet0",
                              "mid0.attention0", "up0.resnet0", "up2.attention1"}) {
      EXPECT_FALSE(f.entered.count(inner)) << k << " " << inner;
    }
    EXPECT_TRUE(f.reused.count("up3.resnet0")) << k;
    EXPECT_TRUE(f.reused.count("up3.attention1")) << k;
    // Only the one transformer of the last pair runs (self + cross).
    EXPECT_EQ(f.attention_computed, 2) << k;
    EXPECT_LT(macs_of_forward(dc, k) * 3, macs_of_forward(base, k)) << k;
  }
}

TEST(AccelWork, DeepCacheAtIntervalOneKeepsNoInputShare) {
  const Measured dc = run_with("tiny-sd15", {"deepcache:cache_interval=1,cache_branch_id=0"}, 3);
  ASSERT_EQ(dc.forwards.size(), 3u);
  for (const auto& f : dc.forwards) EXPECT_TRUE(f.shared.empty());
}

TEST(AccelWork, ToMeMergesTokens) {
  const Measured base = run_with("tiny-sd15", {}, 3);
  const Measured tome = run_with("tiny-sd15", {"tome:ratio=0.5,use_rand=false"}, 3);
  EXPECT_LT(tome.macs, base.macs);
  // Merging only at full resolution leaves the rest: still most of the work.
  EXPECT_GT(tome.macs, base.macs / 2);
  const Measured more = run_with("tiny-sd15", {"tome:ratio=0.5,max_downsample=8,use_rand=false"}, 3);
  EXPECT_LT(more.macs, tome.macs);
}

TEST(AccelWork, TGateDropsGuidanceAndCrossAttention) {
  const Measured base = run_with("tiny-sd15", {}, 6);
  const Measured tg = run_with("tiny-sd15", {"tgate:gate_step=4,sp_interval=3,fi_interval=1,warm_up=1"}, 6);
  EXPECT_LT(tg.macs, base.macs);
  ASSERT_EQ(tg.forwards.size(), 6u);
  const int64_t transformers = tg.forwards[0].attention_computed / 2;
  ASSERT_GT(transformers, 0);
  for (std::size_t k = 0; k < 6; ++k) {
    const auto& f = tg.forwards[k];
    EXPECT_EQ(f.batch, k < 4 ? 2 : 1) << k;
    if (k >= 4) {
      // Cross-attention reused everywhere, self-attention computed.
      EXPECT_EQ(f.attention_reused, transformers) << k;
      EXPECT_EQ(f.attention_computed, transformers) << k;
      EXPECT_LT(macs_of_forward(tg, k) * 2, macs_of_forward(base, k)) << k;
    }
  }
  // sp_interval 3 after warm-up 1: step 2 reuses the self-attention kept at step 1.
  EXPECT_EQ(tg.forwards[2].attention_reused, transformers);
  EXPECT_EQ(tg.forwards[3].attention_reused, 0);
}

TEST(AccelWork, StackedPoliciesSkipMoreThanEither) {
  const Measured dc = run_with("tiny-sd15", {"deepcache:cache_interval=3"}, 10);
  const Measured both = run_with("tiny-sd15", {"deepcache:cache_interval=3", "tome:use_rand=false"}, 10);
  EXPECT_LT(both.macs, dc.macs);
  // With T-GATE the cache starts over at gate - 1 and at the gate (full steps
  // 0, 3, 4, 7), and from the gate on each step is one pass.
  const Measured all = run_with(
      "tiny-sd15", {"deepcache:cache_interval=3", "tome:use_rand=false", "tgate:gate_step=4"}, 10);
  EXPECT_LT(all.macs, both.macs);
  std::vector<int64_t> full;
  for (std::size_t k = 0; k < all.forwards.size(); ++k) {
    if (all.forwards[k].reused.empty()) full.push_back(static_cast<int64_t>(k));
  }
  EXPECT_EQ(full, (std::vector<int64_t>{0, 3, 4, 7}));
  // Composed, DeepCache still keeps its input share: filled on each full step
  // (at the gate again, for the batch of one), reused in between.
  for (std::size_t k = 0; k < all.forwards.size(); ++k) {
    const bool is_full = std::find(full.begin(), full.end(), static_cast<int64_t>(k)) != full.end();
    EXPECT_EQ(all.forwards[k].shared,
              std::set<std::string>{is_full ? "up3.resnet2 filled" : "up3.resnet2 reused"})
        << k;
  }
  EXPECT_EQ(all.forwards[9].batch, 1);
  EXPECT_TRUE(torch::isfinite(all.latents).all().item<bool>());
}

TEST(ToMe, SeededRandomDestinationsAreDeterministic) {
  const std::string spec = "tome:ratio=0.5,use_rand=true";
  const Measured a = run_with("tiny-sd15", {spec}, 3, 7);
  const Measured b = run_with("tiny-sd15", {spec}, 3, 7);
  EXPECT_TRUE(torch::equal(a.latents, b.latents));
  // Another seed draws other destinations (and other starting noise); with
  // the same noise, random and top-left destinations differ too.
  const Measured fixed = run_with("tiny-sd15", {"tome:ratio=0.5,use_rand=false"}, 3, 7);
  EXPECT_FALSE(torch::equal(a.latents, fixed.latents));
  // The policy reseeds on every run: one Acceleration used twice repeats itself.
  const Pipeline& p = pipeline("tiny-sd15");
  auto acc = Acceleration::create({parse_accel_spec(spec)}, p.unet(), 3, 7);
  SampleRequest r = short_run("tiny-sd15", 3);
  r.seed = 7;
  r.unet_hooks = acc->unet_hooks();
  r.policies = acc->step_policies();
  at::Tensor first = p.sample(r).latents;
  at::Tensor second = p.sample(r).latents;
  EXPECT_TRUE(torch::equal(first, second));
  EXPECT_TRUE(torch::equal(first, a.latents));
}

// The policy's batched random draws are token_partition_2d's destinations.
TEST(ToMe, RandomDrawsAreWindowDestinations) {
  // Square windows, and 3 x 2 ones that leave two columns of sources over.
  for (const auto& [sx, sy] : {std::pair<int64_t, int64_t>{2, 2}, {3, 2}}) {
    ToMePolicy policy({0.5, 1, sx, sy, true}, 3);
    UNetForwardInfo info;
    info.batch = 2;
    info.height = 6;
    info.width = 8;
    policy.begin_forward(info);
    at::Tensor x = torch::randn({2, 48, 4}, torch::kDouble);
    at::Tensor y = torch::randn({2, 48, 3}, torch::kDouble);
    // The policy's generator restated: splitmix64 from the seed, one draw per
    // window in row-major order, its high 32 bits scaled to the window's rows
    // and its low 32 bits to its columns.
    uint64_t state = 3;
    at::Tensor choices = at::empty({64, 6 / sy, 8 / sx}, at::TensorOptions().dtype(at::kLong));
    auto* c = choices.data_ptr<int64_t>();
    std::vector<int64_t> counts(static_cast<std::size_t>(sx * sy), 0);
    for (int64_t i = 0; i < choices.numel(); ++i) {
      state += 0x9E3779B97F4A7C15ull;
      uint64_t z = state;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const auto row = static_cast<int64_t>(((z >> 32) * static_cast<uint64_t>(sy)) >> 32);
      const auto col = static_cast<int64_t>(((z & 0xFFFFFFFFull) * static_cast<uint64_t>(sx)) >> 32);
      c[i] = row * sx + col;
      ++counts[static_cast<std::size_t>(c[i])];
    }
    // Every position of a window comes up about equally (384 or more draws).
    for (int64_t n : counts) EXPECT_GT(n, choices.numel() / (sx * sy) / 2) << sx << "x" << sy;
    for (int k = 0; k < 3; ++k) {
      policy.transformer_begin({}, x, 6, 8);
      TokenMerge expected = bipartite_soft_matching_2d(x, 8, 6, sx, sy, 24, choices[k]);
      EXPECT_TRUE(torch::equal(policy.current().merge(y), expected.merge(y))) << sx << "x" << sy << " " << k;
    }
  }
}

TEST(ToMe, OddBatchUsesTopLeftDestinations) {
  ToMePolicy random_policy({0.5, 1, 2, 2, true}, 11);
  ToMePolicy fixed_policy({0.5, 1, 2, 2, false}, 11);
  UNetForwardInfo info;
  info.batch = 1;
  info.height = info.width = 8;
  random_policy.begin_forward(info);
  fixed_policy.begin_forward(info);
  at::Tensor x = torch::randn({1, 64, 6}, torch::kDouble);
  TransformerLocation where;
  random_policy.transformer_begin(where, x, 8, 8);
  fixed_policy.transformer_begin(where, x, 8, 8);
  at::Tensor y = torch::randn({1, 64, 3}, torch::kDouble);
  EXPECT_TRUE(torch::equal(random_policy.current().merge(y), fixed_policy.current().merge(y)));
  // An even batch draws random windows.
  at::Tensor x2 = torch::cat({x, x}, 0), y2 = torch::cat({y, y}, 0);
  random_policy.transformer_begin(where, x2, 8, 8);
  fixed_policy.transformer_begin(where, x2, 8, 8);
  EXPECT_FALSE(torch::equal(random_policy.current().merge(y2), fixed_policy.current().merge(y2)));
}

TEST(AccelWork, NonUniformDeepCacheRunsItsSchedule) {
  const Measured dc =
      run_with("tiny-sd15", {"deepcache:cache_interval=3,skip_mode=non-uniform,center=4"}, 10);
  const auto full = deepcache_nonuniform_full_steps(10, 3, 4, 1.4);
  ASSERT_EQ(dc.forwards.size(), 10u);
  for (std::size_t k = 0; k < 10; ++k) {
    const bool is_full = std::find(full.begin(), full.end(), static_cast<int64_t>(k)) != full.end();
    EXPECT_EQ(dc.forwards[k].reused.empty(), is_full) << k;
  }
}

// ---------------------------------------------------------------- CUDA twins

// The policies on the GPU compute what they compute on the CPU: float64 on
// both (float32 on the GPU convolves in TF32, and ToMe's discrete matching
// turns such differences into other merges), with ToMe's random destinations
// from the same seeded generator; and they run in half precision. Skipped
// where libtorch or the machine has no GPU.
TEST(AccelCuda, RunsMatchTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA";
  const std::vector<std::vector<std::string>> variants = {
      {"deepcache:cache_interval=3,cache_branch_id=0"},
      {"deepcache:cache_interval=5,cache_branch_id=2,skip_mode=non-uniform,center=4"},
      {"tome:ratio=0.5,use_rand=true"},
      {"tome:ratio=0.3,max_downsample=2,use_rand=false"},
      {"tgate:gate_step=5,sp_interval=2,fi_interval=2,warm_up=1"},
      {"deepcache:cache_interval=3", "tome:max_downsample=2", "tgate:gate_step=6"},
  };
  for (const char* model : {"tiny-sd15", "tiny-sdxl"}) {
    std::map<int, std::unique_ptr<Pipeline>> pipes;
    auto run = [&](c10::ScalarType dtype, c10::Device device, const std::vector<std::string>& specs) {
      auto& p = pipes[static_cast<int>(dtype) * 10 + static_cast<int>(device.type())];
      if (!p) p = Pipeline::load(model_dir(model), {dtype, device});
      SampleRequest r = short_run(model, 10);
      r.seed = 5;
      std::vector<AccelSpec> parsed;
      for (const auto& s : specs) parsed.push_back(parse_accel_spec(s));
      auto acc = Acceleration::create(parsed, p->unet(), r.steps, r.seed);
      r.unet_hooks = acc->unet_hooks();
      r.policies = acc->step_policies();
      return p->sample(r).latents.to(at::kCPU, at::kDouble);
    };
    for (const auto& specs : variants) {
      std::string name = model;
      for (const auto& s : specs) name += " " + s;
      const at::Tensor cpu = run(c10::kDouble, c10::Device(c10::kCPU), specs);
      const at::Tensor gpu = run(c10::kDouble, c10::Device(c10::kCUDA, 0), specs);
      EXPECT_LT(testing::rel_err(gpu, cpu), 1e-5) << name;
      const at::Tensor half = run(c10::kHalf, c10::Device(c10::kCUDA, 0), specs);
      EXPECT_TRUE(torch::isfinite(half).all().item<bool>()) << name;
      EXPECT_LT(testing::rel_err(half, cpu), 0.15) << name;
    }
  }
}

}  // namespace
}  // namespace diffsearch::engine
