// The synthetic evaluator: a deterministic stand-in landscape for any grid and
// space (MAC-like times, per-prompt CLIP scores) to benchmark search strategies without a GPU.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "partition/plan.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

// Seconds of one cost unit (partition::unet_step_cost) on the simulated GPU:
// the engine runs the SD1.5 512 px baseline about 3.8 times faster than eager
// diffusers does on an H200 (docs/engine-gpu.md: 0.370 s against 1.41 s for
// 50 steps), so one UNet step with guidance costs about 7.6 ms.
constexpr double kSyntheticSecondsPerCostUnit = partition::kSecondsPerCostUnit / 3.8;
// Multiply-accumulates of one cost unit: SD1.5's UNet at 512 px with guidance
// (1.61 TFLOP per SD1.5 512 px step with guidance: two images).
constexpr double kSyntheticMacsPerCostUnit = 0.805e12;
// Text encoder and VAE decode per image, in full UNet steps: no method speeds it up.
constexpr double kSyntheticFixedSteps = 1.5;

// `--evaluator synthetic[:seed=S,noise=X,bumps=Y,jitter=J]` (docs/evaluators.md).
// Every number is a pure function of the unit's model, sampler, steps,
// resolution, setting, seed and each image's global prompt index
// (first_prompt + i), and of the options; never of the rank, the batch size
// or how prompts are split into units, so measuring [0, 4) and [4, 8) gives
// the per-prompt values of [0, 8). Options:
//   seed    the landscape (default 0): difficulties, noise draws, bumps;
//   noise   scale of the per-prompt CLIP noise (default 1: sigma 0.3 points);
//           0 gives exactly the deterministic landscape;
//   bumps   relative amplitude of non-monotone per-setting bumps on the loss
//           (default 0: loss grows monotonically with every declared axis);
//   jitter  relative per-image timing noise (default 0.005);
//   sleep_ms  real milliseconds each evaluation takes (default 0), for
//           tests that interrupt a search (the simulated seconds ignore it);
//   time_scale  also sleep this share of the unit's simulated seconds (0 to
//           1, default 0): real times that vary as a GPU's would (a round of
//           2 prompts is shorter than one of 8, a baseline longer than a
//           setting), for tests of how busy the workers stay;
//   slow_rank, slow_ms  the evaluator on that rank sleeps slow_ms more per
//           unit (a slow or throttled GPU; the answers do not change).
// `rank` is the worker's MPI rank (only slow_rank reads it).
class SyntheticEvaluator : public worker::Evaluator {
 public:
  explicit SyntheticEvaluator(const std::string& options = "", int rank = -1);
  worker::EvaluationRecord evaluate(const worker::MeasurementUnit& unit) override;
  std::string gpu_name(const std::string& device) override { return "synthetic"; }
  // The unit's simulated GPU-seconds (the same number evaluate() puts in
  // simulated_seconds): the nominal time of its accelerated images (of the
  // baseline images for a baseline-only unit). No per-prompt work.
  std::optional<double> estimate_seconds(const worker::MeasurementUnit& unit) override;

 private:
  uint64_t seed_ = 0;
  double noise_ = 1.0;
  double bumps_ = 0.0;
  double jitter_ = 0.005;
  int sleep_ms_ = 0;
  double time_scale_ = 0;
  int slow_rank_ = -1;
  int slow_ms_ = 0;
  int rank_ = -1;
};

}  // namespace diffsearch::coordinator
