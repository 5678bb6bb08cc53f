// DeepCache as a policy: on full steps every module runs and the outputs of
// the deep branch are kept; on the steps between, that branch is reused.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/models/unet_hooks.h"

namespace diffsearch::engine {

class UNet2DCondition;

struct DeepCacheParams {
  int64_t cache_interval = 1;   // DeepCacheSDHelper.set_params' defaults
  int64_t cache_branch_id = 0;  // block = id / 3, layer = id % 3
  bool non_uniform = false;     // the paper's schedule instead of every interval-th step
  int64_t center = 15;          // non-uniform: the step the full steps crowd around
  double pow = 1.4;             // non-uniform: starting exponent of the quadratic spacing
};

// The full steps of the DeepCache paper's non-uniform schedule (its
// sample_from_quad_center): ceil(steps / interval) steps, spaced as
// linspace((-center)^(1/p), (steps - center)^(1/p))^p around `center`, with p
// lowered by 0.02 from `pow` until the count comes out right. All steps when
// interval is 1. Sorted. Throws InputError when no exponent above 1 works.
std::vector<int64_t> deepcache_nonuniform_full_steps(int64_t steps, int64_t interval,
                                                     int64_t center, double pow);

// The numbering of DeepCacheSDHelper: for a location in diffusers' indices,
// the helper's (block, layer) and whether it is the mid block. Up blocks and
// their layers count from the other end; a downsampler is layer
// len(resnets), an upsampler and a whole block layer 0.
struct DeepCacheAddress {
  bool mid = false;
  bool up = false;
  int block = 0;
  int layer = 0;
};
DeepCacheAddress deepcache_address(const UNet2DCondition& unet, const UNetLocation& where);

class DeepCachePolicy final : public UNetHooks, public StepPolicy {
 public:
  DeepCachePolicy(const DeepCacheParams& params, const UNet2DCondition& unet);

  // Steps at which caching starts over: a full step, and the uniform phase
  // counted from there (T-GATE's DeepCache pipeline resets the helper at
  // gate - 1 and at the gate, where the batch changes).
  void set_restart_steps(std::vector<int64_t> steps) { restart_steps_ = std::move(steps); }

  // Whether the helper returns a cached output at `where` on a partial step.
  bool reused_on_partial_steps(const UNetLocation& where) const;
  // Whether step `index` (position of its timestep in the run) is a full step.
  bool is_full_step(int64_t index) const;
  const DeepCacheParams& params() const { return params_; }

  // StepPolicy
  void begin_run(const std::vector<int64_t>& timesteps) override;
  void plan_step(const StepInfo& step, StepPlan& plan) override;
  // After the last step the kept outputs are let go (device memory).
  void end_step(const StepInfo& step, const at::Tensor& latents) override;

  // UNetHooks
  void begin_forward(const UNetForwardInfo& info) override;
  bool reuse_layer(const UNetLocation& where, LayerOutput& out) override;
  void layer_computed(const UNetLocation& where, const LayerOutput& out) override;
  // The first up-block resnet that partial steps recompute gets the reused
  // h of cat(h, skip): its share of that resnet's work is kept from the full step.
  ResnetInputShare* resnet_input_share(const UNetLocation& where) override;

 private:
  using Key = std::tuple<int, int, int, int>;
  static Key key(const UNetLocation& where);
  // Reused, and not inside a block that is reused whole: only these are kept.
  bool kept(const UNetLocation& where) const;
  // Sets input_resnet_ (and shares_input_ where the UNet can split it).
  void find_input_resnet();

  DeepCacheParams params_;
  const UNet2DCondition& unet_;
  std::vector<int64_t> timesteps_;
  std::vector<int64_t> full_steps_;  // non-uniform: the schedule for this run's length
  std::vector<int64_t> restart_steps_;
  int64_t start_ = -1;        // where the uniform phase counts from (the helper's start_timestep)
  int64_t step_ = -1;         // this forward's step index
  bool planned_ = false;      // plan_step named the step of the next forward
  bool full_ = true;          // this forward computes everything
  int64_t cached_batch_ = -1;
  int64_t cached_height_ = -1, cached_width_ = -1;
  std::map<Key, LayerOutput> cache_;
  bool shares_input_ = false;      // prepare_input_share made input_resnet_ splittable
  UNetLocation input_resnet_;      // the first up-block resnet partial steps compute
  UNetLocation input_source_;      // the module whose output is its h
  bool input_source_reused_ = false;  // this forward reused input_source_'s kept output
  ResnetInputShare input_share_;   // its h's share, from the last full step
};

}  // namespace diffsearch::engine
