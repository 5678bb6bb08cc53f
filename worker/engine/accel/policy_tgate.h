// T-GATE (v2) as a policy: attention outputs cached and reused on its
// schedule, cross-attention frozen and classifier-free guidance dropped from
// the gate step on.
#pragma once

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/models/unet_hooks.h"

namespace diffsearch::engine {

struct TGateParams {  // the defaults of T-GATE's loaders
  int64_t gate_step = 10;
  int64_t sp_interval = 5;
  int64_t fi_interval = 1;
  int64_t warm_up = 2;
};

// What one kind of attention does at a step.
struct TGateAction {
  bool cache = false;  // keep the computed output
  bool reuse = false;  // return the kept output instead of computing (when there is one)
};

struct TGateStep {
  TGateAction self;
  TGateAction cross;
  bool average_halves = false;  // keep the mean of the CFG halves (the step before the gate)
  bool drop_cfg = false;        // from the gate on: one pass on the negative conditioning
};

// T-GATE's tgate_scheduler for step `step` (0-based), plus whether CFG is dropped.
TGateStep tgate_step(const TGateParams& params, int64_t step);

class TGatePolicy final : public UNetHooks, public StepPolicy {
 public:
  explicit TGatePolicy(const TGateParams& params) : params_(params) {}
  const TGateParams& params() const { return params_; }
  // The output kept for `where` (after the gate, a cross-attention's is the
  // mean of the CFG halves at gate - 1), or nullptr.
  const at::Tensor* cached(const AttentionLocation& where) const;

  // StepPolicy
  void begin_run(const std::vector<int64_t>& timesteps) override;
  void plan_step(const StepInfo& step, StepPlan& plan) override;
  // After the last step the kept outputs are let go (device memory).
  void end_step(const StepInfo& step, const at::Tensor& latents) override;

  // UNetHooks
  void begin_forward(const UNetForwardInfo& info) override;
  bool reuse_attention(const AttentionLocation& where, at::Tensor& out) override;
  void attention_computed(const AttentionLocation& where, const at::Tensor& out) override;

 private:
  using Key = std::tuple<int, int, int, int, int, int>;
  static Key key(const AttentionLocation& where);
  const TGateAction& action(const AttentionLocation& where) const;

  TGateParams params_;
  int64_t step_ = -1;
  bool planned_ = false;
  bool guided_ = true;  // this step's batch holds both CFG halves
  int64_t batch_ = 0;
  TGateStep now_;
  std::map<Key, at::Tensor> cache_;
};

}  // namespace diffsearch::engine
