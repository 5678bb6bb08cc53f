// Measuring one candidate setting: the evaluator runs the baseline and the
// accelerated sampling on the same prompts and seeds and returns the record
// the search ranks settings by (speed, CLIP score loss, PSNR/SSIM, MACs).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "partition/search_space.h"
#include "partition/task.h"

namespace diffsearch::worker {

// What is measured. The baseline part (everything but `setting`) is shared by
// every setting of the same model, sampler, steps, size, prompts and seeds.
struct MeasurementUnit {
  std::string unit_key;   // names the unit in results files ("<space key>/<setting key>")
  partition::Model model = partition::Model::SD15;
  std::string model_dir;  // diffusers folder
  std::string clip_dir;   // CLIPModel folder for scoring
  partition::SamplerKind sampler = partition::SamplerKind::DDIM;
  int steps = 50;
  int height = 0;  // pixels; 0: the model's default
  int width = 0;
  std::vector<std::string> prompts;  // one image each
  // The index of prompts[0] in the search's prompt list: a unit may measure a
  // range of it (the frontier strategy's rounds), and image i starts from
  // seed + first_prompt + i, so a range gives the images the whole list would.
  int first_prompt = 0;
  uint64_t seed = 0;
  int batch_size = 8;
  double guidance = 7.5;
  partition::Setting setting;  // empty: the baseline alone
  std::string dtype = "float32";
  std::string device = "cpu";
};

// One sampling run over all prompts.
struct RunMeasurement {
  std::vector<double> batch_times_s;  // after one untimed warm-up batch
  double total_s = 0;
  int64_t macs = 0;        // multiply-accumulates of every module executed
  int64_t peak_bytes = 0;  // peak device memory (CPU: peak resident set)
  std::vector<double> clip;  // per prompt, max(0, 100 cos)
  double clip_mean = 0;
};

struct EvaluationRecord {
  RunMeasurement base;
  RunMeasurement acc;  // equals base for an empty setting
  double speedup = 1;       // base.total_s / acc.total_s
  double speedup_macs = 1;  // base.macs / acc.macs
  double score_loss = 0;    // (mean base - mean acc) / mean base
  std::vector<double> psnr;  // per prompt, accelerated against baseline image
  std::vector<double> ssim;
  double psnr_mean = 0;
  double ssim_mean = 0;
  std::string device_name;
  // The batch size the runs used: the unit's, or less when the device could
  // not hold it (0: the evaluator does not say; the unit's then).
  int batch_size = 0;
  // Evaluators that simulate a GPU (synthetic, replay): the GPU-seconds the
  // unit would have cost. NaN: the search times the evaluation itself.
  double simulated_seconds = std::numeric_limits<double>::quiet_NaN();

  nlohmann::json to_json() const;
};

// One interface, several evaluators: the libtorch engine, and (for the
// coordinator's tests and benchmarks) ones that compute nothing.
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual EvaluationRecord evaluate(const MeasurementUnit& unit) = 0;
  // The name of the GPU that `device` ("cpu", "cuda:1") is, as CUDA reports
  // it and platform tasks name it ("NVIDIA H200"); "cpu" for the CPU.
  virtual std::string gpu_name(const std::string& device) { return device; }
  // How runs on `device` are timed when not plainly (eagerly): "CUDA graphs"
  // when the engine replays captured samples. Recorded with the device.
  virtual std::string timing(const std::string& device) { return ""; }
  // The GPU-seconds measuring `unit` would cost, known without measuring it
  // (synthetic and replay evaluators); nullopt where only a run can tell.
  // What the exhaustive strategy would spend is summed from it.
  virtual std::optional<double> estimate_seconds(const MeasurementUnit& unit) { return std::nullopt; }
};

// Runs the diffusion engine. Keeps loaded pipelines, the CLIP scorer and
// baseline runs, so one baseline serves every setting measured after it.
std::unique_ptr<Evaluator> make_engine_evaluator();


}  // namespace diffsearch::worker
