// The synthetic landscape: a cost model of the UNet's parts per resolution, how
// each method and combination removes work, and a monotone loss model with noise and bumps.
#include "coordinator/evaluator_synthetic.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>
#include <stdexcept>

#include "coordinator/evaluators.h"
#include "io/error.h"
#include "partition/search_space.h"
#include "io/hash.h"

namespace diffsearch::coordinator {
namespace {

using partition::Method;
using partition::Model;
using partition::SamplerKind;

// ---- Hashing: every draw is a hash of what it may depend on, nothing else.

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
uint64_t combine(uint64_t h, uint64_t v) { return mix64(h ^ mix64(v + 0x632be59bd9b4e019ull)); }

// Streams, so that draws of different quantities never coincide.
enum Tag : uint64_t { kDifficulty = 1, kImage, kClipNoise, kQualityNoise, kTimeBase, kTimeAcc, kBump, kSensitivity };

double uniform(uint64_t h) { return static_cast<double>(mix64(h) >> 11) * (1.0 / 9007199254740992.0); }
// Box-Muller on two uniforms of the hash: a standard normal draw.
double normal(uint64_t h) {
  const double u1 = (static_cast<double>(mix64(h) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  const double u2 = uniform(h ^ 0x5851f42d4c957f2dull);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// ---- The UNet's parts. Time shares of one full step (CFG, one image) at the
// architecture's reference size (SD1.5/SD2.1 512 px, SDXL 1024 px), per
// attention level (latent downsample 1, 2, 4, 8): self-attention's
// token-quadratic part q and token-linear part l (projections, norms,
// memory traffic), cross-attention x, feed-forward m; `rest` is convolutions
// and everything else. Attention carries more time than its FLOPs would
// say (memory-bound kernels), which is what lets ToMe pay at 512 px.
struct Anatomy {
  double q[4], l[4], x[4], m[4];
};

const Anatomy& reference_anatomy(Model model) {
  static const Anatomy sd = {{0.21, 0.02, 0.003, 0.0},
                             {0.15, 0.04, 0.017, 0.003},
                             {0.03, 0.015, 0.010, 0.002},
                             {0.06, 0.05, 0.042, 0.008}};
  // SDXL has no attention at full latent resolution and ten transformer
  // layers per block at downsample 4, where the feed-forward dominates.
  static const Anatomy xl = {{0.0, 0.08, 0.03, 0.0},
                             {0.0, 0.06, 0.10, 0.0},
                             {0.0, 0.015, 0.04, 0.0},
                             {0.0, 0.06, 0.28, 0.0}};
  return model == Model::SDXL ? xl : sd;
}

int reference_resolution(Model model) { return model == Model::SDXL ? 1024 : 512; }

// The shares at `resolution`: the quadratic part grows as s^3.5 (between the
// pixel count and its square: memory-bound at small sizes), the rest as s^2,
// renormalized. The baseline's absolute time stays unet_step_cost's.
struct Shares {
  double q[4], l[4], x[4], m[4];
  double self_attention = 0;  // sum of q and l
  double cross_attention = 0;
};

Shares shares_at(Model model, int resolution) {
  const Anatomy& a = reference_anatomy(model);
  const double s = static_cast<double>(resolution) / reference_resolution(model);
  const double s2 = s * s;
  const double s35 = s2 * s * std::sqrt(s);
  Shares out;
  double attention = 0, total_ref = 0;
  for (int k = 0; k < 4; ++k) {
    total_ref += a.q[k] + a.l[k] + a.x[k] + a.m[k];
    out.q[k] = a.q[k] * s35;
    out.l[k] = a.l[k] * s2;
    out.x[k] = a.x[k] * s2;
    out.m[k] = a.m[k] * s2;
    attention += out.q[k] + out.l[k] + out.x[k] + out.m[k];
  }
  const double total = attention + (1.0 - total_ref) * s2;
  for (int k = 0; k < 4; ++k) {
    out.q[k] /= total;
    out.l[k] /= total;
    out.x[k] /= total;
    out.m[k] /= total;
    out.self_attention += out.q[k] + out.l[k];
    out.cross_attention += out.x[k];
  }
  return out;
}

// ---- A setting's parameters, with the reference implementations' defaults
// for any a setting leaves out.
struct Accel {
  bool deepcache = false;
  int interval = 1, branch = 0;
  bool tgate = false;
  int gate = 10, sp = 5, fi = 1, warm_up = 2;
  bool tome = false;
  double ratio = 0.5;
  int max_downsample = 1, sx = 2, sy = 2;
  bool use_rand = true, merge_attn = true, merge_cross = false, merge_mlp = false;
};

int int_param(const nlohmann::json& p, const char* key, int fallback) {
  auto it = p.find(key);
  return it != p.end() && it->is_number() ? static_cast<int>(it->get<double>()) : fallback;
}
double double_param(const nlohmann::json& p, const char* key, double fallback) {
  auto it = p.find(key);
  return it != p.end() && it->is_number() ? it->get<double>() : fallback;
}
bool bool_param(const nlohmann::json& p, const char* key, bool fallback) {
  auto it = p.find(key);
  return it != p.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

Accel parse_accel(const partition::Setting& setting, Model model) {
  Accel a;
  for (const auto& ms : setting) {
    const auto& p = ms.params;
    switch (ms.method) {
      case Method::DeepCache:
        a.deepcache = true;
        a.interval = std::max(1, int_param(p, "cache_interval", 1));
        a.branch = std::clamp(int_param(p, "cache_branch_id", 0), 0, 3 * partition::down_block_count(model) - 1);
        break;
      case Method::TGate:
        a.tgate = true;
        a.gate = std::max(1, int_param(p, "gate_step", 10));
        a.sp = std::max(1, int_param(p, "sp_interval", 5));
        a.fi = std::max(1, int_param(p, "fi_interval", 1));
        a.warm_up = std::max(0, int_param(p, "warm_up", 2));
        break;
      case Method::ToMe:
        a.tome = true;
        a.ratio = std::clamp(double_param(p, "ratio", 0.5), 0.0, 0.99);
        a.max_downsample = std::max(1, int_param(p, "max_downsample", 1));
        a.sx = std::max(1, int_param(p, "sx", 2));
        a.sy = std::max(1, int_param(p, "sy", 2));
        a.use_rand = bool_param(p, "use_rand", true);
        a.merge_attn = bool_param(p, "merge_attn", true);
        a.merge_cross = bool_param(p, "merge_crossattn", false);
        a.merge_mlp = bool_param(p, "merge_mlp", false);
        break;
    }
  }
  return a;
}

// Tokens that can merge: one destination per sx x sy window stays.
double effective_ratio(const Accel& a) {
  return std::min(a.ratio, 1.0 - 1.0 / static_cast<double>(a.sx * a.sy));
}

// ---- Time and MACs per image, in full UNet steps (the fixed part included).

// DeepCache: a partial step recomputes the branches shallower than
// cache_branch_id; branch 0 is about 7% of a full step (docs/engine-gpu.md
// measured 0.070 with the overhead), the deepest most of one. SDXL's cost sits
// in its deepest block, so its fraction grows late.
double partial_fraction(Model model, int branch) {
  const double t = static_cast<double>(branch) / (3 * partition::down_block_count(model) - 1);
  switch (model) {
    case Model::SD15: return 0.07 + (0.85 - 0.07) * t;
    case Model::SD21: return 0.085 + (0.85 - 0.085) * t;
    case Model::SDXL: return 0.03 + (0.85 - 0.03) * t * t;
  }
  return 1.0;
}
constexpr double kDeepCacheStepOverhead = 0.02;  // per partial step: cache reads, launches
// ToMe: a merged transformer block pays the matching once and a merge and
// unmerge per merged operation, each about a token-linear pass.
constexpr double kToMeMatchCost = 0.27, kToMeApplyCost = 0.1;
// A DeepCache partial step is mostly shallow layers: other methods remove a
// somewhat smaller share of it than of a full step.
constexpr double kPartialShare = 0.8;
// T-GATE: reusing a cached self-attention output saves about half its time
// (the norm, the cache read and the residual remain); dropping CFG halves
// the MACs but, at batch 1, not quite the time.
constexpr double kReuseSaving = 0.5;
constexpr double kCfgDropMacs = 0.5, kCfgDropTime = 0.65;

struct Work {
  double compute = 0;  // MAC-bearing work
  double time = 0;     // compute plus overheads
};

Work image_work(Model model, int resolution, int steps, const Accel& a) {
  const Shares sh = shares_at(model, resolution);
  double tome_save = 0, tome_overhead = 0, sa_save = 0, x_save = 0;
  if (a.tome) {
    const double r = effective_ratio(a);
    const int ops = a.merge_attn + a.merge_cross + a.merge_mlp;
    for (int k = 0; k < 4; ++k) {
      if ((1 << k) > a.max_downsample || sh.q[k] + sh.l[k] == 0) continue;  // unmerged, or no attention here
      if (a.merge_attn) sa_save += sh.q[k] * (1.0 - (1.0 - r) * (1.0 - r)) + sh.l[k] * r;
      if (a.merge_cross) x_save += sh.x[k] * r;
      if (a.merge_mlp) tome_save += sh.m[k] * r;
      if (ops > 0) tome_overhead += sh.l[k] * (kToMeMatchCost + kToMeApplyCost * ops);
    }
    tome_save += sa_save + x_save;
  }
  const double sa_left = sh.self_attention - sa_save;
  const double x_left = sh.cross_attention - x_save;
  const int interval = a.deepcache ? a.interval : 1;
  const double p = a.deepcache ? partial_fraction(model, a.branch) : 1.0;

  auto step = [&](bool full, double tg_save, bool cfg_dropped, Work& w) {
    double compute, time;
    if (full) {
      compute = 1.0 - tome_save - tg_save;
      time = compute + tome_overhead;
    } else {
      compute = p * (1.0 - kPartialShare * (tome_save + tg_save));
      time = compute + p * kPartialShare * tome_overhead;
    }
    if (cfg_dropped) {
      compute *= kCfgDropMacs;
      time *= kCfgDropTime;
    }
    if (!full) time += kDeepCacheStepOverhead;
    w.compute += compute;
    w.time += time;
  };

  Work w;
  if (!a.tgate) {
    // Closed form: estimate_seconds runs for every unit of a plan.
    const int full = (steps + interval - 1) / interval;
    Work one;
    step(true, 0, false, one);
    w.compute += full * one.compute;
    w.time += full * one.time;
    if (steps > full) {
      Work part;
      step(false, 0, false, part);
      w.compute += (steps - full) * part.compute;
      w.time += (steps - full) * part.time;
    }
  } else {
    for (int c = 0; c < steps; ++c) {
      double tg_save = 0;
      const bool gated = c >= a.gate;
      if (gated) {
        tg_save = x_left + (c % a.fi != 0 ? kReuseSaving * sa_left : 0.0);
      } else if (c > a.warm_up && c < a.gate - 1 && c % a.sp != 0) {
        tg_save = kReuseSaving * sa_left;
      }
      step(c % interval == 0, tg_save, gated, w);
    }
  }
  w.compute += kSyntheticFixedSteps;
  w.time += kSyntheticFixedSteps;
  return w;
}

// ---- Relative CLIP-score loss: each method's grows with every declared
// axis of aggressiveness (partition::ParamSpec::aggressive); fewer steps and
// higher-order samplers make every loss larger.
double context_factor(Model model, SamplerKind sampler, int steps) {
  double f = 1.0;
  switch (model) {
    case Model::SD15: f = 1.0; break;
    case Model::SD21: f = 1.1; break;
    case Model::SDXL: f = 0.85; break;
  }
  switch (sampler) {
    case SamplerKind::DDIM: break;
    case SamplerKind::DPMSolverPP: f *= 1.1; break;
    case SamplerKind::UniPC: f *= 1.15; break;
  }
  return f * std::pow(50.0 / std::max(1, steps), 0.35);
}

// (3, 0) about 0.7%, (5, 0) 1.8%, (10, 0) 5.5% at 50 DDIM steps on SD1.5;
// deeper branches recompute more and lose less (the deepest about a fifth).
double deepcache_loss(const Accel& a, Model model) {
  if (!a.deepcache || a.interval <= 1) return 0;
  const double depth = static_cast<double>(a.branch) / (3 * partition::down_block_count(model) - 1);
  return 0.0027 * std::pow(a.interval - 1.0, 1.37) * std::exp(-1.6 * depth);
}

// Ratio 0.5 about 0.7%, 0.7 about 1.5% merging at full latent resolution;
// every further merged level (max_downsample) and operation adds to it, and
// larger images, having more redundant tokens, lose less.
double tome_loss(const Accel& a, Model model, int resolution) {
  if (!a.tome) return 0;
  static const double sd_weight[4] = {1.0, 0.3, 0.2, 0.05};
  static const double xl_weight[4] = {0.0, 1.0, 0.5, 0.0};
  const double* w = model == Model::SDXL ? xl_weight : sd_weight;
  const double ops = (a.merge_attn ? 1.0 : 0.0) + (a.merge_cross ? 0.5 : 0.0) + (a.merge_mlp ? 0.7 : 0.0);
  double levels = 0;
  for (int k = 0; k < 4; ++k) {
    if ((1 << k) <= a.max_downsample) levels += w[k];
  }
  const double s = static_cast<double>(resolution) / reference_resolution(model);
  const double windows = 1.0 + 0.03 * (a.sx * a.sy - 4);
  return 0.033 * std::pow(effective_ratio(a), 2.2) * levels * ops * std::pow(s, -0.4) * std::max(0.5, windows) *
         (a.use_rand ? 0.95 : 1.0);
}

// Gate at 10% of the steps about 3%, at 40% about 1.1%, at 90% nearly 0;
// no warm-up and longer reuse intervals add a little.
double tgate_loss(const Accel& a, int steps) {
  if (!a.tgate) return 0;
  const double gated = std::max(0.0, static_cast<double>(steps - a.gate)) / std::max(1, steps);
  return 0.039 * std::pow(gated, 2.5) * (1.0 + 0.2 * std::exp(-a.warm_up / 2.0)) *
         (1.0 + 0.05 * std::log(static_cast<double>(a.sp))) * (1.0 + 0.08 * std::log(static_cast<double>(a.fi)));
}

double setting_loss(const Accel& a, Model model, SamplerKind sampler, int steps, int resolution) {
  const double k = context_factor(model, sampler, steps);
  const double parts[3] = {k * deepcache_loss(a, model), k * tgate_loss(a, steps),
                           k * tome_loss(a, model, resolution)};
  double keep = 1.0, interaction = 0;
  for (int i = 0; i < 3; ++i) {
    keep *= 1.0 - std::min(parts[i], 0.9);
    for (int j = i + 1; j < 3; ++j) interaction += std::sqrt(parts[i] * parts[j]);
  }
  // Methods that each perturb the features compound slightly worse than independent ones.
  return 1.0 - keep + 0.1 * interaction;
}

struct Context {
  Model model;
  SamplerKind sampler;
  int steps;
  int resolution;
};

Context context_of(const worker::MeasurementUnit& unit) {
  if (unit.steps < 1) throw InputError("synthetic evaluator: steps " + std::to_string(unit.steps) + ": expected at least 1");
  const int res = unit.height > 0 ? unit.height : partition::default_resolution(unit.model);
  return {unit.model, unit.sampler, unit.steps, res};
}

// Nominal seconds per image, baseline and accelerated.
std::pair<double, double> nominal_seconds(const Context& ctx, const Accel& a, bool accelerated, Work* work) {
  const double per_step = kSyntheticSecondsPerCostUnit * partition::unet_step_cost(ctx.model, ctx.resolution);
  const double base = per_step * (ctx.steps + kSyntheticFixedSteps);
  if (!accelerated) return {base, base};
  const Work w = image_work(ctx.model, ctx.resolution, ctx.steps, a);
  if (work) *work = w;
  return {base, per_step * w.time};
}

double clamp_z(double z) { return std::clamp(z, -3.0, 3.0); }

void set_mean(worker::RunMeasurement& m) {
  double sum = 0;
  for (double c : m.clip) sum += c;
  m.clip_mean = m.clip.empty() ? 0 : sum / static_cast<double>(m.clip.size());
}

bool parse_double(const std::string& text, double& out) {
  try {
    std::size_t used = 0;
    out = std::stod(text, &used);
    return used == text.size() && std::isfinite(out);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

SyntheticEvaluator::SyntheticEvaluator(const std::string& options, int rank) : rank_(rank) {
  for (const auto& option : split_evaluator_options(options)) {
    const std::string& item = option.item;
    const std::string& key = option.key;
    const std::string& value = option.value;
    bool ok = false;
    double d = 0;
    if (key == "seed") {
      ok = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
      try {
        if (ok) seed_ = std::stoull(value);
      } catch (const std::out_of_range&) {
        ok = false;
      }
    } else if (key == "noise") {
      ok = parse_double(value, d) && d >= 0;
      if (ok) noise_ = d;
    } else if (key == "bumps") {
      ok = parse_double(value, d) && d >= 0;
      if (ok) bumps_ = d;
    } else if (key == "jitter") {
      ok = parse_double(value, d) && d >= 0 && d <= 0.1;
      if (ok) jitter_ = d;
    } else if (key == "sleep_ms") {
      ok = parse_double(value, d) && d >= 0 && d <= 600000;
      if (ok) sleep_ms_ = static_cast<int>(d);
    } else if (key == "time_scale") {
      ok = parse_double(value, d) && d >= 0 && d <= 1;
      if (ok) time_scale_ = d;
    } else if (key == "slow_rank") {
      ok = !value.empty() && value.size() < 6 && value.find_first_not_of("0123456789") == std::string::npos;
      if (ok) slow_rank_ = std::stoi(value);
    } else if (key == "slow_ms") {
      ok = parse_double(value, d) && d >= 0 && d <= 600000;
      if (ok) slow_ms_ = static_cast<int>(d);
    }
    if (!ok) {
      throw InputError("--evaluator synthetic:" + options + ": bad option \"" + item +
                       "\" (expected seed=S (a whole number, default 0), noise=X (>= 0, default 1), "
                       "bumps=Y (>= 0, default 0), jitter=J (0 to 0.1, default 0.005), sleep_ms=MS (wall time per unit, default 0), "
                       "time_scale=T (0 to 1: also sleep T times the unit's simulated seconds), slow_rank=R and "
                       "slow_ms=MS (rank R sleeps MS more per unit))");
    }
  }
}

std::optional<double> SyntheticEvaluator::estimate_seconds(const worker::MeasurementUnit& unit) {
  const Context ctx = context_of(unit);
  const Accel a = parse_accel(unit.setting, ctx.model);
  const auto [base, acc] = nominal_seconds(ctx, a, !unit.setting.empty(), nullptr);
  return static_cast<double>(unit.prompts.size()) * (unit.setting.empty() ? base : acc);
}

worker::EvaluationRecord SyntheticEvaluator::evaluate(const worker::MeasurementUnit& unit) {
  // Real time per unit, for tests that kill a search at random moments.
  if (sleep_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms_));
  const Context ctx = context_of(unit);
  const bool accelerated = !unit.setting.empty();
  const Accel a = parse_accel(unit.setting, ctx.model);
  Work work;
  const auto [base_s, acc_s] = nominal_seconds(ctx, a, accelerated, &work);
  const double cost = partition::unet_step_cost(ctx.model, ctx.resolution);
  const auto base_macs = static_cast<int64_t>(
      std::llround(kSyntheticMacsPerCostUnit * cost * (ctx.steps + kSyntheticFixedSteps)));
  const auto acc_macs =
      accelerated ? static_cast<int64_t>(std::llround(kSyntheticMacsPerCostUnit * cost * work.compute)) : base_macs;

  // What the baseline images depend on, and what the accelerated ones add.
  uint64_t base_hash = seed_;
  for (uint64_t v : {static_cast<uint64_t>(ctx.model), static_cast<uint64_t>(ctx.sampler),
                     static_cast<uint64_t>(ctx.steps), static_cast<uint64_t>(ctx.resolution)}) {
    base_hash = combine(base_hash, v);
  }
  const uint64_t landscape_hash = base_hash;  // without the images' seed: bumps belong to the landscape
  base_hash = combine(base_hash, unit.seed);
  const uint64_t setting_hash = accelerated ? io::fnv1a(partition::setting_key(unit.setting)) : 0;
  const uint64_t acc_hash = combine(base_hash, setting_hash);

  double loss = 0;
  if (accelerated) {
    loss = setting_loss(a, ctx.model, ctx.sampler, ctx.steps, ctx.resolution);
    if (bumps_ > 0) {
      const double u = 2.0 * uniform(combine(combine(landscape_hash, setting_hash), kBump)) - 1.0;
      loss *= 1.0 + bumps_ * u;
    }
    loss = std::clamp(loss, 0.0, 0.9);
  }

  worker::EvaluationRecord r;
  r.device_name = "synthetic";
  const std::size_t n = unit.prompts.size();
  r.base.clip.resize(n);
  r.acc.clip.resize(n);
  r.psnr.resize(n);
  r.ssim.resize(n);
  // One entry per image: the synthetic GPU has no batches.
  r.base.batch_times_s.resize(n);
  r.acc.batch_times_s.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto gp = static_cast<uint64_t>(static_cast<int64_t>(unit.first_prompt) + static_cast<int64_t>(i));
    const double difficulty = normal(combine(combine(combine(seed_, static_cast<uint64_t>(ctx.model)), gp), kDifficulty));
    const double image = normal(combine(combine(base_hash, gp), kImage));
    const double clip_base = std::clamp(30.0 + 3.0 * difficulty + 0.5 * image, 10.0, 45.0);
    r.base.clip[i] = clip_base;
    r.base.batch_times_s[i] = base_s * (1.0 + jitter_ * clamp_z(normal(combine(combine(base_hash, gp), kTimeBase))));
    if (!accelerated) {
      r.acc.clip[i] = clip_base;
      r.acc.batch_times_s[i] = r.base.batch_times_s[i];
      r.psnr[i] = 100.0;
      r.ssim[i] = 1.0;
      continue;
    }
    const uint64_t h = combine(acc_hash, gp);
    r.acc.batch_times_s[i] = acc_s * (1.0 + jitter_ * clamp_z(normal(combine(h, kTimeAcc))));
    // A setting that loses nothing makes the same images: the same scores.
    // A score moves as far as its image does: the setting's own draw grows
    // with the loss (0.3 points at a loss of 0.02, as the square root), and
    // part of the loss is the prompt's (some prompts degrade more under any
    // acceleration: shared by every setting, as real images of nearby
    // settings share their failures).
    const double sensitivity =
        std::clamp(normal(combine(combine(combine(seed_, static_cast<uint64_t>(ctx.model)), gp), kSensitivity)), -2.0, 2.0);
    const double clip_noise = loss > 0 ? noise_ * 0.3 * std::sqrt(loss / 0.02) * normal(combine(h, kClipNoise)) : 0.0;
    r.acc.clip[i] = clip_base * (1.0 - loss * (1.0 + 0.5 * noise_ * sensitivity)) + clip_noise;
    const double image_loss = loss * std::max(0.0, 1.0 + 0.2 * noise_ * normal(combine(h, kQualityNoise)));
    r.psnr[i] = image_loss > 0 ? std::clamp(40.0 - 300.0 * image_loss, 5.0, 100.0) : 100.0;
    r.ssim[i] = std::clamp(1.0 - 8.0 * image_loss, 0.0, 1.0);
  }
  r.base.total_s = 0;
  r.acc.total_s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    r.base.total_s += r.base.batch_times_s[i];
    r.acc.total_s += r.acc.batch_times_s[i];
  }
  r.base.macs = base_macs * static_cast<int64_t>(n);
  r.acc.macs = acc_macs * static_cast<int64_t>(n);
  set_mean(r.base);
  set_mean(r.acc);
  r.speedup = r.acc.total_s > 0 ? r.base.total_s / r.acc.total_s : 1.0;
  r.speedup_macs = r.acc.macs > 0 ? static_cast<double>(r.base.macs) / static_cast<double>(r.acc.macs) : 1.0;
  r.score_loss = r.base.clip_mean > 0 ? (r.base.clip_mean - r.acc.clip_mean) / r.base.clip_mean : 0.0;
  double psnr = 0, ssim = 0;
  for (std::size_t i = 0; i < n; ++i) {
    psnr += r.psnr[i];
    ssim += r.ssim[i];
  }
  r.psnr_mean = n ? psnr / static_cast<double>(n) : 0;
  r.ssim_mean = n ? ssim / static_cast<double>(n) : 0;
  r.simulated_seconds = static_cast<double>(n) * (accelerated ? acc_s : base_s);
  double sleep_s = time_scale_ * r.simulated_seconds;
  if (slow_rank_ >= 0 && rank_ == slow_rank_) sleep_s += slow_ms_ / 1000.0;
  if (sleep_s > 0) std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  return r;
}

}  // namespace diffsearch::coordinator
