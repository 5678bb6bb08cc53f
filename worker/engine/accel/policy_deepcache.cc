// DeepCache: which modules DeepCacheSDHelper reuses on partial steps, its
// uniform full-step rule, and the paper's non-uniform schedule.
#include "worker/engine/accel/policy_deepcache.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdint>
#include <set>
#include <string>

#include <ATen/ATen.h>

#include "io/error.h"
#include "worker/engine/models/unet.h"

namespace diffsearch::engine {

std::vector<int64_t> deepcache_nonuniform_full_steps(int64_t steps, int64_t interval,
                                                     int64_t center, double pow) {
  if (steps < 1 || interval < 1) {
    throw InputError("DeepCache non-uniform schedule: steps and cache_interval must be at least "
                     "1, found steps " + std::to_string(steps) + ", cache_interval " +
                     std::to_string(interval));
  }
  std::vector<int64_t> out;
  if (interval == 1) {
    for (int64_t i = 0; i < steps; ++i) out.push_back(i);
    return out;
  }
  const int64_t wanted = steps / interval + (steps % interval != 0 ? 1 : 0);
  // The paper's code runs on Python and numpy; each operation below follows
  // the one it performs so that truncation to integers lands the same way:
  // a negative base to a fractional power is Python's complex power (polar
  // form), linspace steps by delta * (1 / div) (numpy's complex division by a
  // real), the power of a complex array is C's cpow = cexp(p * clog(x)), and
  // the cast to int32 truncates the real part.
  double p = pow;
  std::vector<int64_t> found;
  bool ok = false;
  while (p > 1) {
    const double inv = 1.0 / p;
    std::complex<double> start;
    const double neg = -static_cast<double>(center);
    if (neg < 0) {
      const double len = std::pow(std::hypot(neg, 0.0), inv);
      const double phase = std::atan2(0.0, neg) * inv;
      start = {len * std::cos(phase), len * std::sin(phase)};
    } else {
      start = {std::pow(neg, inv), 0.0};
    }
    const std::complex<double> stop(std::pow(static_cast<double>(steps - center), inv), 0.0);
    const int64_t num = wanted + 1;
    const double scl = 1.0 / static_cast<double>(num - 1);
    const std::complex<double> delta = stop - start;
    const double step_re = delta.real() * scl, step_im = delta.imag() * scl;
    std::set<int64_t> unique;
    for (int64_t k = 0; k < num; ++k) {
      std::complex<double> x;
      if (k == num - 1) {
        x = stop;
      } else {
        const double kd = static_cast<double>(k);
        x = {kd * step_re + start.real(), kd * step_im + start.imag()};
      }
      const std::complex<double> y = std::exp(std::log(x) * p);
      unique.insert(static_cast<int32_t>(y.real()));
    }
    found.assign(1, 0);
    if (unique.size() > 2) {
      auto last = std::prev(unique.end());
      for (auto it = std::next(unique.begin()); it != last; ++it) found.push_back(*it + center);
    }
    if (static_cast<int64_t>(found.size()) == wanted) {
      ok = true;
      break;
    }
    p -= 0.02;
  }
  if (!ok) {
    throw InputError("DeepCache non-uniform schedule: no exponent between 1 and pow=" +
                     std::to_string(pow) + " spreads " + std::to_string(wanted) +
                     " full steps over " + std::to_string(steps) + " steps around center=" +
                     std::to_string(center) +
                     " (lower cache_interval, or move center towards the middle)");
  }
  std::sort(found.begin(), found.end());
  return found;
}

DeepCacheAddress deepcache_address(const UNet2DCondition& unet, const UNetLocation& where) {
  DeepCacheAddress a;
  switch (where.part) {
    case UNetPart::mid:
      a.mid = true;
      return a;
    case UNetPart::down:
      a.block = where.block;
      a.layer = where.module == UNetModule::downsampler ? unet.num_resnets(UNetPart::down, where.block)
                : where.module == UNetModule::block   ? 0
                                                      : where.layer;
      return a;
    case UNetPart::up:
      a.up = true;
      a.block = unet.num_up_blocks() - 1 - where.block;
      a.layer = (where.module == UNetModule::block || where.module == UNetModule::upsampler)
                    ? 0
                    : unet.num_resnets(UNetPart::up, where.block) - 1 - where.layer;
      return a;
  }
  return a;
}

DeepCachePolicy::DeepCachePolicy(const DeepCacheParams& params, const UNet2DCondition& unet)
    : params_(params), unet_(unet) {
  DIFFSEARCH_ASSERT(params_.cache_interval >= 1);
  // Partial steps reuse a prefix of the up path in execution order; the first
  // resnet after it gets the last reused output as h. Every step is full at
  // interval 1, where keeping h's share would only cost.
  if (params_.cache_interval > 1) find_input_resnet();
}

void DeepCachePolicy::find_input_resnet() {
  for (int j = 0; j < unet_.num_up_blocks(); ++j) {
    for (int k = 0; k < unet_.num_resnets(UNetPart::up, j); ++k) {
      const UNetLocation where{UNetPart::up, j, UNetModule::resnet, k};
      if (reused_on_partial_steps(where)) continue;
      // Within a block h comes from the layer before (reused, as this is
      // the first resnet computed); a block's first resnet gets the previous
      // block's output, or the mid block's.
      const UNetLocation before = j == 0 ? UNetLocation{UNetPart::mid, 0, UNetModule::block, 0}
                                         : UNetLocation{UNetPart::up, j - 1, UNetModule::block, 0};
      if ((k > 0 || reused_on_partial_steps(before)) && unet_.prepare_input_share(where)) {
        shares_input_ = true;
        input_resnet_ = where;
        input_source_ = k == 0 ? before
                        : unet_.num_attentions(UNetPart::up, j) > 0
                            ? UNetLocation{UNetPart::up, j, UNetModule::attention, k - 1}
                            : UNetLocation{UNetPart::up, j, UNetModule::resnet, k - 1};
      }
      return;
    }
  }
}

bool DeepCachePolicy::reused_on_partial_steps(const UNetLocation& where) const {
  const DeepCacheAddress a = deepcache_address(unet_, where);
  const int block = static_cast<int>(params_.cache_branch_id / 3);
  const int layer = static_cast<int>(params_.cache_branch_id % 3);
  if (a.mid || a.block > block) return true;
  if (a.block < block) return false;
  return a.up ? a.layer > layer : a.layer >= layer;
}

bool DeepCachePolicy::kept(const UNetLocation& where) const {
  if (!reused_on_partial_steps(where)) return false;
  if (where.module == UNetModule::block) return true;
  return !reused_on_partial_steps({where.part, where.block, UNetModule::block, 0});
}

bool DeepCachePolicy::is_full_step(int64_t index) const {
  if (params_.cache_interval == 1) return true;
  if (std::find(restart_steps_.begin(), restart_steps_.end(), index) != restart_steps_.end()) {
    return true;
  }
  if (params_.non_uniform) {
    return std::binary_search(full_steps_.begin(), full_steps_.end(), index);
  }
  // The phase counts from the run's first step, or from the last restart.
  int64_t start = start_ < 0 ? 0 : start_;
  for (int64_t r : restart_steps_) {
    if (r <= index && r > start) start = r;
  }
  return (index - start) % params_.cache_interval == 0;
}

DeepCachePolicy::Key DeepCachePolicy::key(const UNetLocation& where) {
  return {static_cast<int>(where.part), where.block, static_cast<int>(where.module), where.layer};
}

void DeepCachePolicy::begin_run(const std::vector<int64_t>& timesteps) {
  timesteps_ = timesteps;
  full_steps_.clear();
  if (params_.non_uniform) {
    full_steps_ = deepcache_nonuniform_full_steps(static_cast<int64_t>(timesteps.size()),
                                                  params_.cache_interval, params_.center,
                                                  params_.pow);
  }
  start_ = -1;
  step_ = -1;
  planned_ = false;
  full_ = true;
  cache_.clear();
  input_share_.clear();
  cached_batch_ = cached_height_ = cached_width_ = -1;
}

void DeepCachePolicy::plan_step(const StepInfo& step, StepPlan& plan) {
  // The helper's step index is the position of t in the sampler's timesteps.
  const auto it = std::find(timesteps_.begin(), timesteps_.end(), step.timestep);
  step_ = it != timesteps_.end() ? static_cast<int64_t>(it - timesteps_.begin()) : step.step_index;
  planned_ = true;
}

void DeepCachePolicy::end_step(const StepInfo& step, const at::Tensor& latents) {
  if (step.step_index + 1 == step.num_steps) {
    cache_.clear();
    input_share_.clear();
    cached_batch_ = cached_height_ = cached_width_ = -1;
  }
}

void DeepCachePolicy::begin_forward(const UNetForwardInfo& info) {
  // A forward that no plan_step announced (the UNet used outside a sampling
  // loop) counts as the next step.
  if (!planned_) ++step_;
  planned_ = false;
  if (start_ < 0) start_ = step_;
  full_ = is_full_step(step_);
  input_source_reused_ = false;
  // Outputs kept for another batch or size cannot stand in: compute, keep
  // afresh, and count the phase from here (as the helper does after a reset).
  if (!full_ && (cache_.empty() || info.batch != cached_batch_ || info.height != cached_height_ ||
                 info.width != cached_width_)) {
    full_ = true;
    start_ = step_;
  }
  if (full_) {
    cache_.clear();
    input_share_.clear();
    cached_batch_ = info.batch;
    cached_height_ = info.height;
    cached_width_ = info.width;
  }
}

bool DeepCachePolicy::reuse_layer(const UNetLocation& where, LayerOutput& out) {
  if (full_ || !reused_on_partial_steps(where)) return false;
  const auto it = cache_.find(key(where));
  if (it == cache_.end()) return false;
  out = it->second;
  if (shares_input_ && key(where) == key(input_source_)) input_source_reused_ = true;
  return true;
}

void DeepCachePolicy::layer_computed(const UNetLocation& where, const LayerOutput& out) {
  if (full_ && kept(where)) cache_[key(where)] = out;
}

ResnetInputShare* DeepCachePolicy::resnet_input_share(const UNetLocation& where) {
  if (!shares_input_ || key(where) != key(input_resnet_)) return nullptr;
  // A full step fills the share from the h it computes, and a partial step
  // hands the resnet that same h, kept, so it may use the share. A partial
  // step that computed h afresh (no kept output to reuse) runs it whole.
  if (!full_ && !input_source_reused_) {
    input_share_.clear();
    return nullptr;
  }
  return &input_share_;
}

}  // namespace diffsearch::engine

