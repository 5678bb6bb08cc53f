// Whole runs with accelerations against the fixtures: every `accel.*` case of
// the three tiny models (DeepCache, ToMe, T-GATE, DeepCache+ToMe; DDIM,
// DPM-Solver++, UniPC), float64, as DeepCacheSDHelper, tomesd and T-GATE v2
// computed them on diffusers.
//
// The fixtures were made one case after another on one pipeline, in the order
// the JSON lists them, and T-GATE's loader patches every Attention of the UNet
// for good: after a T-GATE run each cross-attention keeps returning the output
// it kept at gate - 1 (the mean of the CFG halves), in every later run. So
// each non-T-GATE case listed after a T-GATE case was computed with the
// cross-attention outputs of the T-GATE case before it. The tests rebuild that
// leftover state (a hook outside the policies, below) for exactly those cases;
// the cases made before any T-GATE run are plain.
#include "worker/engine/accel.h"

#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <map>

#include <gtest/gtest.h>

#include "io/safetensors.h"
#include "tests/worker/engine/pipeline_fixtures.h"
#include "worker/engine/pipeline.h"
#include "worker/engine/policy_tgate.h"

namespace diffsearch::engine {
namespace {

using testing::model_dir;
using testing::reference_json;
using testing::reference_tensor;
using testing::rel_err;

const Pipeline& pipeline(const std::string& model) {
  static std::map<std::string, std::unique_ptr<Pipeline>> cache;
  auto& p = cache[model];
  if (!p) p = Pipeline::load(model_dir(model), {c10::kDouble, c10::Device(c10::kCPU)});
  return *p;
}

// The case names in the order the JSON writes them (the order they were made).
std::vector<std::string> case_order(const std::string& model) {
  std::string text;
  const std::string path = testing::fixtures_dir() + "/reference/" + model + ".json";
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  // Python's json writes -Infinity (scheduler configs); the names are all we need.
  for (const std::string token : {"-Infinity", "Infinity", "NaN"}) {
    for (std::size_t pos = 0; (pos = text.find(": " + token, pos)) != std::string::npos;) {
      text.replace(pos, token.size() + 2, ": null");
    }
  }
  std::vector<std::string> out;
  const auto parsed = nlohmann::ordered_json::parse(text);
  for (const auto& [name, c] : parsed.at("cases").items()) {
    out.push_back(name);
  }
  return out;
}

// The fixture's "accel" (one object, or a list for stacked methods) as specs.
std::vector<AccelSpec> fixture_specs(const nlohmann::json& accel) {
  std::vector<AccelSpec> out;
  const nlohmann::json list = accel.is_array() ? accel : nlohmann::json::array({accel});
  for (const auto& item : list) {
    AccelSpec s;
    s.method = item.at("method").get<std::string>();
    s.params = nlohmann::json::object();
    for (const auto& [key, value] : item.items()) {
      if (key != "method") s.params[key] = value;
    }
    out.push_back(s);
  }
  return out;
}

bool is_tgate_case(const nlohmann::json& c) {
  for (const auto& s : fixture_specs(c.at("accel"))) {
    if (s.method == "tgate") return true;
  }
  return false;
}

SampleRequest fixture_request(const nlohmann::json& ref, const nlohmann::json& c) {
  SampleRequest r;
  r.prompts = {ref.at("prompt").get<std::string>()};
  r.negative_prompts = {ref.at("negative_prompt").get<std::string>()};
  r.sampler = parse_sampler_kind(c.at("sampler").get<std::string>());
  r.steps = c.at("steps").get<int64_t>();
  r.guidance_scale = ref.at("guidance_scale").get<double>();
  r.height = ref.at("height").get<int64_t>();
  r.width = ref.at("width").get<int64_t>();
  r.seed = ref.at("init_latents").at("seed").get<uint64_t>();
  return r;
}

// What the T-GATE-patched Attention modules keep after a T-GATE run: each
// cross-attention's kept output (the mean of the CFG halves at gate - 1),
// recorded from the policy as the run goes.
class TGateRecorder final : public UNetHooks, public StepPolicy {
 public:
  explicit TGateRecorder(const TGateParams& params) : policy_(params) {}
  void begin_run(const std::vector<int64_t>& t) override { policy_.begin_run(t); }
  void plan_step(const StepInfo& s, StepPlan& p) override { policy_.plan_step(s, p); }
  void end_step(const StepInfo& s, const at::Tensor& l) override { policy_.end_step(s, l); }
  void begin_forward(const UNetForwardInfo& i) override { policy_.begin_forward(i); }
  bool reuse_attention(const AttentionLocation& w, at::Tensor& out) override {
    return policy_.reuse_attention(w, out);
  }
  void attention_computed(const AttentionLocation& w, const at::Tensor& out) override {
    policy_.attention_computed(w, out);
    if (w.kind != AttentionKind::cross) return;
    if (const at::Tensor* kept = policy_.cached(w)) cross[key(w)] = *kept;
  }
  using Key = std::tuple<int, int, int, int, int>;
  static Key key(const AttentionLocation& w) {
    const UNetLocation& a = w.transformer.attention;
    return {static_cast<int>(a.part), a.block, static_cast<int>(a.module), a.layer,
            w.transformer.transformer};
  }
  std::map<Key, at::Tensor> cross;

 private:
  TGatePolicy policy_;
};

const TGateRecorder& leftover_of(const std::string& model, const std::string& tgate_case) {
  static std::map<std::pair<std::string, std::string>, std::unique_ptr<TGateRecorder>> done;
  auto& slot = done[{model, tgate_case}];
  if (!slot) {
    const auto ref = reference_json(model);
    const auto& c = ref.at("cases").at(tgate_case);
    const AccelSpec spec = fixture_specs(c.at("accel")).at(0);
    const nlohmann::json p = complete_accel_params(spec, pipeline(model).unet(), c.at("steps"));
    TGateParams params;
    params.gate_step = p.at("gate_step");
    params.sp_interval = p.at("sp_interval");
    params.fi_interval = p.at("fi_interval");
    params.warm_up = p.at("warm_up");
    slot = std::make_unique<TGateRecorder>(params);
    SampleRequest r = fixture_request(ref, c);
    r.unet_hooks = slot.get();
    r.policies = {slot.get()};
    pipeline(model).sample(r);
  }
  return *slot;
}

// The run's own hooks, with every cross-attention answered from the leftover
// T-GATE caches (as the patched modules answered in the reference).
class WithLeftover final : public UNetHooks {
 public:
  WithLeftover(UNetHooks* inner, const TGateRecorder& leftover) : inner_(inner), leftover_(leftover) {}
  void begin_forward(const UNetForwardInfo& info) override {
    if (inner_) inner_->begin_forward(info);
  }
  bool reuse_layer(const UNetLocation& where, LayerOutput& out) override {
    return inner_ && inner_->reuse_layer(where, out);
  }
  void layer_computed(const UNetLocation& where, const LayerOutput& out) override {
    if (inner_) inner_->layer_computed(where, out);
  }
  void transformer_begin(const TransformerLocation& where, const at::Tensor& x, int64_t height,
                         int64_t width) override {
    if (inner_) inner_->transformer_begin(where, x, height, width);
  }
  at::Tensor merge_tokens(const TransformerLocation& where, TokenStage stage,
                          const at::Tensor& x) override {
    return inner_ ? inner_->merge_tokens(where, stage, x) : x;
  }
  at::Tensor unmerge_tokens(const TransformerLocation& where, TokenStage stage,
                            const at::Tensor& x) override {
    return inner_ ? inner_->unmerge_tokens(where, stage, x) : x;
  }
  bool reuse_attention(const AttentionLocation& where, at::Tensor& out) override {
    if (inner_ && inner_->reuse_attention(where, out)) return true;
    if (where.kind != AttentionKind::cross) return false;
    const auto it = leftover_.cross.find(TGateRecorder::key(where));
    if (it == leftover_.cross.end()) return false;
    out = it->second;
    ++answered;
    return true;
  }
  void attention_computed(const AttentionLocation& where, const at::Tensor& out) override {
    if (inner_) inner_->attention_computed(where, out);
  }
  int64_t answered = 0;

 private:
  UNetHooks* inner_;
  const TGateRecorder& leftover_;
};

struct AccelCase {
  std::string model;
  std::string name;
  std::string after_tgate;  // the T-GATE case whose leftover this one ran with, or ""
};

void PrintTo(const AccelCase& c, std::ostream* os) { *os << c.model << " " << c.name; }

std::vector<AccelCase> all_accel_cases() {
  std::vector<AccelCase> out;
  for (const char* model : {"tiny-sd15", "tiny-sd21", "tiny-sdxl"}) {
    const auto ref = reference_json(model);
    std::string last_tgate;
    for (const std::string& name : case_order(model)) {
      if (name.rfind("accel.", 0) != 0) continue;
      const auto& c = ref.at("cases").at(name);
      if (is_tgate_case(c)) {
        out.push_back({model, name, ""});
        last_tgate = name;
      } else {
        out.push_back({model, name, last_tgate});
      }
    }
  }
  return out;
}

class AccelRun : public ::testing::TestWithParam<AccelCase> {};

TEST_P(AccelRun, Float64MatchesReference) {
  const AccelCase& ac = GetParam();
  const auto ref = reference_json(ac.model);
  const auto& c = ref.at("cases").at(ac.name);
  const Pipeline& p = pipeline(ac.model);

  SampleRequest r = fixture_request(ref, c);
  auto acc = Acceleration::create(fixture_specs(c.at("accel")), p.unet(), r.steps, r.seed);
  r.unet_hooks = acc->unet_hooks();
  r.policies = acc->step_policies();
  std::unique_ptr<WithLeftover> leftover;
  if (!ac.after_tgate.empty()) {
    leftover = std::make_unique<WithLeftover>(r.unet_hooks, leftover_of(ac.model, ac.after_tgate));
    r.unet_hooks = leftover.get();
  }

  SampleResult result = p.sample(r);
  EXPECT_EQ(result.timesteps, c.at("timesteps").get<std::vector<int64_t>>());
  EXPECT_LT(rel_err(result.latents, reference_tensor(ac.model, ac.name)), 1e-4)
      << ac.model << " " << ac.name
      << (ac.after_tgate.empty() ? "" : " (with the cross-attention left by " + ac.after_tgate + ")");
  if (leftover) {
    EXPECT_GT(leftover->answered, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllCases, AccelRun, ::testing::ValuesIn(all_accel_cases()),
                         [](const ::testing::TestParamInfo<AccelCase>& info) {
                           std::string n = info.param.model + "_" + info.param.name;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// The leftover matters: without it the cases made after a T-GATE run are far
// from the fixture, and the cases made before one match without it.
TEST(AccelFixtures, LeftoverOnlyWhereTheFixtureHasIt) {
  const std::string model = "tiny-sdxl";
  const auto ref = reference_json(model);
  const Pipeline& p = pipeline(model);
  for (const char* name : {"accel.tome.r0.3.d2.ddim.20", "accel.tome.r0.3.d2.unipc.20"}) {
    const auto& c = ref.at("cases").at(name);
    SampleRequest r = fixture_request(ref, c);
    auto acc = Acceleration::create(fixture_specs(c.at("accel")), p.unet(), r.steps, r.seed);
    r.unet_hooks = acc->unet_hooks();
    r.policies = acc->step_policies();
    const double err = rel_err(p.sample(r).latents, reference_tensor(model, name));
    if (std::string(name).find("ddim") != std::string::npos) {
      EXPECT_LT(err, 1e-4) << name;
    } else {
      EXPECT_GT(err, 1e-2) << name;
    }
  }
}

// ---------------------------------------------------------------- the CLI

struct CliResult {
  int code;
  std::string out;  // stdout and stderr together
};

CliResult run_cli(const std::string& args) {
  const std::string cmd = std::string("\"") + DIFFSEARCH_BIN + "\" " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string cli_sample(const std::string& model, int64_t steps) {
  return "sample --model " + model_dir(model) +
         " --prompt \"a photo of an astronaut riding a horse on mars\" --sampler ddim --steps " +
         std::to_string(steps) + " --seed 0 --dtype float64";
}

at::Tensor saved_latents(const std::string& path) {
  return tensor_copy(io::SafetensorsFile::open(path)->tensor("latents"));
}

// `diffsearch sample --accel ...` runs what the library runs: the fixture
// cases made before any T-GATE run, and a combination.
TEST(AccelCli, SampleWithAccelReproducesTheFixtures) {
  const std::string dir = ::testing::TempDir() + "/accel_cli";
  std::filesystem::create_directories(dir);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"deepcache:cache_interval=3,cache_branch_id=0", "accel.deepcache.i3.b0.ddim.20"},
      {"tome:ratio=0.5,max_downsample=1,sx=2,sy=2,use_rand=false", "accel.tome.r0.5.d1.ddim.20"},
      {"tgate:gate_step=10,sp_interval=5,fi_interval=1,warm_up=2", "accel.tgate.g10.sp5.fi1.w2.ddim.20"},
  };
  for (const auto& [spec, name] : cases) {
    const std::string out = dir + "/" + name + ".safetensors";
    const CliResult r = run_cli(cli_sample("tiny-sd21", 20) + " --accel " + spec + " --save-latents " + out);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_LT(rel_err(saved_latents(out), reference_tensor("tiny-sd21", name)), 1e-4) << spec;
  }
  // Two methods stacked, against the library's composition.
  const std::string out = dir + "/stacked.safetensors";
  const CliResult r = run_cli(cli_sample("tiny-sdxl", 8) +
                              " --accel deepcache:cache_interval=2 --accel tome:max_downsample=2,use_rand=false"
                              " --save-latents " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  const Pipeline& p = pipeline("tiny-sdxl");
  const auto ref = reference_json("tiny-sdxl");
  SampleRequest req = fixture_request(ref, ref.at("cases").at("sample.ddim.20"));
  req.steps = 8;
  auto acc = Acceleration::create({parse_accel_spec("deepcache:cache_interval=2"),
                                   parse_accel_spec("tome:max_downsample=2,use_rand=false")},
                                  p.unet(), 8, 0);
  req.unet_hooks = acc->unet_hooks();
  req.policies = acc->step_policies();
  EXPECT_LT(rel_err(saved_latents(out), p.sample(req).latents), 1e-12);
}

TEST(AccelCli, BadSpecsExitTwoWithOneLine) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"blur:x=1", "unknown method 'blur'"},
      {"tome:ratio=1.5", "ratio"},
      {"tome:rate=0.5", "unknown key 'rate'"},
      {"deepcache:cache_interval=0", "cache_interval"},
      {"tgate:gate_step=30", "gate_step"},
  };
  for (const auto& [spec, needle] : cases) {
    const CliResult r = run_cli(cli_sample("tiny-sd15", 20) + " --accel " + spec);
    EXPECT_EQ(r.code, 2) << spec << "\n" << r.out;
    EXPECT_EQ(r.out.rfind("error: ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(spec), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace diffsearch::engine
