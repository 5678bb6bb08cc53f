// T-GATE (v2): the caching schedule of tgate_scheduler, attention outputs kept
// per attention layer, and CFG dropped from the gate step on.
#include "worker/engine/accel/policy_tgate.h"

#include <ATen/ATen.h>

namespace diffsearch::engine {

TGateStep tgate_step(const TGateParams& p, int64_t c) {
  TGateStep s;
  if (c < p.gate_step - 1) {
    // Semantics planning: cross-attention computes; self-attention is kept at
    // the warm-up step and every sp_interval-th step, and reused in between.
    if (c < p.warm_up) {
      s.self = {false, false};
    } else if (c == p.warm_up || c % p.sp_interval == 0) {
      s.self = {true, false};
    } else {
      s.self = {false, true};
    }
  } else if (c == p.gate_step - 1) {
    s.self = {true, false};
    s.cross = {true, false};
    s.average_halves = true;
  } else {
    // Fidelity improving: cross-attention frozen; self-attention kept every
    // fi_interval-th step.
    s.cross = {false, true};
    s.self = c % p.fi_interval == 0 ? TGateAction{true, false} : TGateAction{false, true};
  }
  s.drop_cfg = c >= p.gate_step;
  return s;
}

TGatePolicy::Key TGatePolicy::key(const AttentionLocation& w) {
  const UNetLocation& a = w.transformer.attention;
  return {static_cast<int>(a.part), a.block,  static_cast<int>(a.module),
          a.layer,                  w.transformer.transformer, static_cast<int>(w.kind)};
}

const TGateAction& TGatePolicy::action(const AttentionLocation& where) const {
  return where.kind == AttentionKind::self ? now_.self : now_.cross;
}

const at::Tensor* TGatePolicy::cached(const AttentionLocation& where) const {
  const auto it = cache_.find(key(where));
  return it == cache_.end() ? nullptr : &it->second;
}

void TGatePolicy::begin_run(const std::vector<int64_t>& timesteps) {
  cache_.clear();
  step_ = -1;
  planned_ = false;
}

void TGatePolicy::plan_step(const StepInfo& step, StepPlan& plan) {
  step_ = step.step_index;
  planned_ = true;
  now_ = tgate_step(params_, step_);
  // T-GATE's pipelines run the negative conditioning alone from the gate on
  // (with guidance off they keep the positive one).
  if (now_.drop_cfg && plan.branch == StepBranch::guided) plan.branch = StepBranch::negative_only;
  guided_ = plan.branch == StepBranch::guided;
}

void TGatePolicy::end_step(const StepInfo& step, const at::Tensor& latents) {
  if (step.step_index + 1 == step.num_steps) cache_.clear();
}

void TGatePolicy::begin_forward(const UNetForwardInfo& info) {
  if (!planned_) {
    // Used outside a sampling loop: every forward is the next step.
    now_ = tgate_step(params_, ++step_);
    guided_ = info.batch % 2 == 0;
  }
  planned_ = false;
  batch_ = info.batch;
}

bool TGatePolicy::reuse_attention(const AttentionLocation& where, at::Tensor& out) {
  if (!action(where).reuse) return false;
  const auto it = cache_.find(key(where));
  // Nothing kept yet (the reference computes then), or kept for another batch.
  if (it == cache_.end() || it->second.size(0) != batch_) return false;
  out = it->second;
  return true;
}

void TGatePolicy::attention_computed(const AttentionLocation& where, const at::Tensor& out) {
  if (!action(where).cache) return;
  if (now_.average_halves && guided_) {
    const int64_t half = out.size(0) / 2;
    cache_[key(where)] = (out.slice(0, 0, half) + out.slice(0, half)) / 2;
  } else {
    cache_[key(where)] = out;
  }
}

}  // namespace diffsearch::engine
