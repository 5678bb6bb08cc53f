// Accelerations as policies: parsing `--accel` specs, and composing the
// DeepCache, ToMe and T-GATE policies of one run into the UNet hooks and step
// policies the pipeline consults.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/models/unet_hooks.h"

namespace diffsearch::engine {

class UNet2DCondition;

// One method with its parameters; keys not given take the reference's
// defaults when the acceleration is created.
struct AccelSpec {
  std::string method;      // "deepcache", "tome" or "tgate"
  nlohmann::json params;   // object: parameter -> number or bool
};

// "deepcache:cache_interval=3,cache_branch_id=0", "tome:ratio=0.5,use_rand=false",
// "tgate:gate_step=10". Throws InputError naming the spec, the key and what
// is accepted (unknown method or key, malformed value).
AccelSpec parse_accel_spec(const std::string& text);

// The spec as `--accel` takes it back ("tome:ratio=0.5,use_rand=false"), keys
// in sorted order: for messages and records.
std::string format_accel_spec(const AccelSpec& spec);

// The parameters of `spec` completed with the reference's defaults and
// checked against the run (ratio in [0, 1), intervals >= 1, gate_step <=
// steps, cache_branch_id within the UNet's blocks...). InputError otherwise.
nlohmann::json complete_accel_params(const AccelSpec& spec, const UNet2DCondition& unet,
                                     int64_t steps);
// The same checks short of those that need the UNet (cache_branch_id's upper
// bound): for rejecting a spec before a model loads.
nlohmann::json complete_accel_params(const AccelSpec& spec, int64_t steps);

// The policies of one sampling run, composed: each policy sees every hook, in
// the order the specs were given (merging in order, unmerging in reverse;
// the first policy to supply a cached output wins).
class Acceleration {
 public:
  // `seed` seeds ToMe's random destinations (use_rand). The policies keep a
  // reference to `unet`; pass both step_policies() and unet_hooks() to the
  // run (DeepCache and T-GATE learn the step index from the step policies).
  // One Acceleration may serve several runs one after another: each run
  // starts afresh at begin_run and lets its caches go after the last step.
  static std::unique_ptr<Acceleration> create(const std::vector<AccelSpec>& specs,
                                              const UNet2DCondition& unet, int64_t steps,
                                              uint64_t seed = 0);
  virtual ~Acceleration() = default;
  // nullptr when no policy has UNet hooks.
  virtual UNetHooks* unet_hooks() = 0;
  virtual std::vector<StepPolicy*> step_policies() = 0;
  // Before a CUDA-graph replay of a run captured with these policies: each
  // policy's refill_for_replay, with the seed `create` would have been given.
  void refill_for_replay(uint64_t seed) {
    for (StepPolicy* p : step_policies()) p->refill_for_replay(seed);
  }
};

}  // namespace diffsearch::engine
