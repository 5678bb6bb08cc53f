// `diffsearch evaluate`: measure one setting against the baseline on the same
// prompts and seeds, and print the record the search would store.
#include <cmath>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "coordinator/quality.h"
#include "io/error.h"
#include "io/prompts.h"
#include "partition/task.h"
#include "worker/engine/accel/accel.h"
#include "worker/evaluator.h"

namespace {

using namespace diffsearch;

struct EvaluateArgs {
  worker::MeasurementUnit unit;
  std::string prompts_file;
  std::string sampler;
  std::vector<std::string> accel;
  int num_samples = 8;
  bool json = false;
  std::string quality = "clip";
};

DIFFSEARCH_COMMAND("evaluate", "Measure one acceleration setting against the baseline", [](CLI::App& sub) {
  auto a = std::make_shared<EvaluateArgs>();
  sub.add_option("--model", a->unit.model_dir, "Diffusers model folder")->required();
  sub.add_option("--clip", a->unit.clip_dir, "CLIPModel folder used for scoring")->required();
  sub.add_option("--prompts", a->prompts_file,
                 "Prompts: a text file (one a line) or COCO captions JSON; default: the built-in set");
  sub.add_option("--sampler", a->sampler, "ddim, dpmsolver++ or unipc")->required();
  sub.add_option("--steps", a->unit.steps, "Sampling steps")->required()->check(CLI::Range(1, 1000));
  sub.add_option("--accel", a->accel,
                 "Acceleration spec, repeatable: deepcache:cache_interval=3,cache_branch_id=0 | "
                 "tome:ratio=0.5 | tgate:gate_step=10");
  sub.add_option("--num-samples", a->num_samples, "Prompts measured")->capture_default_str()->check(CLI::PositiveNumber);
  sub.add_option("--batch-size", a->unit.batch_size, "Images per batch")->capture_default_str()->check(CLI::PositiveNumber);
  sub.add_option("--seed", a->unit.seed, "Image i starts from seed + i")->capture_default_str();
  sub.add_option("--guidance", a->unit.guidance, "Classifier-free guidance scale")->capture_default_str();
  sub.add_option("--height", a->unit.height, "Pixels (default: the model's)");
  sub.add_option("--width", a->unit.width, "Pixels (default: the model's)");
  sub.add_option("--dtype", a->unit.dtype, "float32, float64, float16 or bfloat16")->capture_default_str();
  sub.add_option("--device", a->unit.device, "cpu, cuda or cuda:I")->capture_default_str();
  sub.add_flag("--json", a->json, "Print the record as one JSON object");
  sub.add_option("--quality", a->quality,
                 "Loss to report: clip (CLIP score loss), ssim (1 - mean SSIM against the baseline image) or "
                 "psnr (mean 10^(-PSNR/10))")
      ->capture_default_str()
      ->type_name("MEASURE");
  sub.footer(
      "Example:\n  diffsearch evaluate --model tests/data/fixtures/models/tiny-sd15 "
      "--clip tests/data/fixtures/models/tiny-clip --sampler ddim --steps 20 "
      "--accel deepcache:cache_interval=3,cache_branch_id=0 --num-samples 4 --batch-size 2 --height 128 --width 128");
  return [a]() {
    const coordinator::Quality quality = coordinator::parse_quality(a->quality);
    a->unit.sampler = partition::parse_sampler(a->sampler);
    std::vector<std::string> prompts = io::prompts_or_default(a->prompts_file);
    if (static_cast<int>(prompts.size()) < a->num_samples) {
      throw InputError("--num-samples " + std::to_string(a->num_samples) + " but the prompt set has only " +
                       std::to_string(prompts.size()) + " prompts");
    }
    prompts.resize(a->num_samples);
    a->unit.prompts = prompts;
    for (const auto& text : a->accel) {
      const engine::AccelSpec spec = engine::parse_accel_spec(text);
      a->unit.setting.push_back({partition::parse_method(spec.method), spec.params});
    }
    auto evaluator = worker::make_engine_evaluator();
    const worker::EvaluationRecord record = evaluator->evaluate(a->unit);
    const double loss =
        coordinator::record_loss(quality, record.base.clip, record.acc.clip, record.psnr, record.ssim);
    if (a->json) {
      nlohmann::json j = record.to_json();
      j["quality"] = coordinator::quality_name(quality);
      j["loss"] = std::isfinite(loss) ? nlohmann::json(loss) : nlohmann::json(nullptr);
      std::cout << j.dump() << "\n";
      return exit_code::ok;
    }
    std::printf("device         %s\n", record.device_name.c_str());
    std::printf("time           base %.4f s, accelerated %.4f s (%zu timed batches)\n", record.base.total_s,
                record.acc.total_s, record.acc.batch_times_s.size());
    std::printf("speedup        %.3fx (wall), %.3fx (MACs: %.3g -> %.3g)\n", record.speedup, record.speedup_macs,
                static_cast<double>(record.base.macs), static_cast<double>(record.acc.macs));
    std::printf("CLIP score     base %.4f, accelerated %.4f, loss %.4f\n", record.base.clip_mean,
                record.acc.clip_mean, record.score_loss);
    std::printf("PSNR / SSIM    %.2f dB / %.4f\n", record.psnr_mean, record.ssim_mean);
    std::printf("loss (%s)    %.4f\n", coordinator::quality_name(quality).c_str(), loss);
    std::printf("peak memory    %.1f MiB\n", static_cast<double>(record.acc.peak_bytes) / 1048576.0);
    return exit_code::ok;
  };
});

}  // namespace
