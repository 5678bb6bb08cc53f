// The engine evaluator: baseline and accelerated runs over the same prompts
// and seeds, timed with the device synchronised, scored with CLIP, compared
// image by image, with loaded models and baselines cached between units.
#include "worker/evaluator.h"

#include <chrono>
#include <cmath>
#include <numeric>
#include <sstream>

#include <torch/torch.h>

#include "io/error.h"
#include "io/log/log.h"
#include "partition/task.h"
#include "worker/batch_fit.h"
#include "worker/engine/accel/accel.h"
#include "worker/engine/metrics/clip_score.h"
#include "worker/engine/core/device.h"
#include "worker/engine/metrics/image_metrics.h"
#include "worker/engine/core/nn.h"
#include "worker/engine/pipeline/pipeline.h"
#include "worker/engine/pipeline/sample_runner.h"
#include "worker/engine/models/unet.h"

namespace diffsearch::worker {
namespace {

engine::SamplerKind engine_sampler(partition::SamplerKind kind) {
  switch (kind) {
    case partition::SamplerKind::DDIM: return engine::SamplerKind::ddim;
    case partition::SamplerKind::DPMSolverPP: return engine::SamplerKind::dpmsolver_pp;
    case partition::SamplerKind::UniPC: return engine::SamplerKind::unipc;
  }
  DIFFSEARCH_ASSERT(false);
  return engine::SamplerKind::ddim;
}

std::vector<engine::AccelSpec> accel_specs(const partition::Setting& setting) {
  std::vector<engine::AccelSpec> specs;
  for (const auto& m : setting) specs.push_back({partition::method_slug(m.method), m.params});
  return specs;
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// What one sampling run over all prompts produced.
struct RunOutput {
  RunMeasurement measurement;
  at::Tensor images;  // uint8 [N, H, W, 3] on the CPU
};

class EngineEvaluator final : public Evaluator {
 public:
  std::string gpu_name(const std::string& device) override {
    return engine::device_name(engine::parse_run_options("float32", device));
  }
  std::string timing(const std::string& device) override {
    return engine::cuda_graphs_enabled(engine::parse_run_options("float32", device)) ? "CUDA graphs" : "";
  }

  EvaluationRecord evaluate(const MeasurementUnit& unit) override {
    if (unit.prompts.empty()) throw InputError("a measurement unit needs at least one prompt");
    if (unit.batch_size < 1) throw InputError("--batch-size must be at least 1");
    const engine::RunOptions options = engine::parse_run_options(unit.dtype, unit.device);
    // The largest batch (up to the unit's) that the device holds: baseline
    // and setting always run at the same one, so their ratio stays fair.
    std::ostringstream shape;
    shape << unit.model_dir << "|" << unit.dtype << "|" << unit.device << "|" << unit.height << "x" << unit.width;
    MeasurementUnit fitted = unit;
    fitted.batch_size = batch_fit_.first_batch(shape.str(), unit.batch_size);
    for (;;) {
      try {
        EvaluationRecord record = evaluate_at(fitted, options);
        record.batch_size = fitted.batch_size;
        return record;
      } catch (const c10::OutOfMemoryError& e) {
        // Free what the failed batch held (its captured graphs, cached
        // blocks) before trying half of it.
        for (auto& [key, loaded] : pipelines_) loaded.runner->drop_graphs();
        engine::release_cached_memory(options);
        const int next = batch_fit_.after_out_of_memory(shape.str(), fitted.batch_size);
        if (next == 0) throw;  // one image does not fit: the scheduler's out-of-memory rules take over
        // Height 0: the model folder's own size.
        const std::string size = unit.height > 0 ? std::to_string(unit.height) + "x" + std::to_string(unit.width) + " px"
                                                 : "its own size";
        log::warn("batch of " + std::to_string(fitted.batch_size) + " does not fit " + unit.device + " (" +
                  unit.model_dir + " at " + size + "); trying " + std::to_string(next));
        fitted.batch_size = next;
      }
    }
  }

 private:
  EvaluationRecord evaluate_at(const MeasurementUnit& unit, const engine::RunOptions& options) {
    Loaded& loaded = pipeline_for(unit.model_dir, options);
    engine::Pipeline& pipeline = *loaded.pipeline;
    engine::SampleRunner& runner = *loaded.runner;
    engine::ClipScorer& scorer = scorer_for(unit.clip_dir, options);

    const std::string key = baseline_key(unit);
    auto cached = baselines_.find(key);
    if (cached == baselines_.end()) {
      RunOutput base = run(pipeline, runner, scorer, unit, {}, options);
      cached = baselines_.emplace(key, std::move(base)).first;
    }
    const RunOutput& base = cached->second;

    EvaluationRecord record;
    record.device_name = engine::device_name(options);
    record.base = base.measurement;
    RunOutput acc = unit.setting.empty() ? base : run(pipeline, runner, scorer, unit, accel_specs(unit.setting), options);
    record.acc = acc.measurement;
    record.speedup = record.acc.total_s > 0 ? record.base.total_s / record.acc.total_s : 1.0;
    record.speedup_macs = record.acc.macs > 0 ? static_cast<double>(record.base.macs) /
                                                    static_cast<double>(record.acc.macs)
                                              : 1.0;
    record.score_loss = record.base.clip_mean > 0
                            ? (record.base.clip_mean - record.acc.clip_mean) / record.base.clip_mean
                            : 0.0;
    const int64_t n = base.images.size(0);
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor a = base.images[i].contiguous(), b = acc.images[i].contiguous();
      engine::ImageView va{a.data_ptr<uint8_t>(), static_cast<int>(a.size(0)), static_cast<int>(a.size(1)),
                           static_cast<int>(a.size(2))};
      engine::ImageView vb{b.data_ptr<uint8_t>(), va.height, va.width, va.channels};
      record.psnr.push_back(engine::psnr(va, vb));
      record.ssim.push_back(engine::ssim(va, vb));
    }
    // Equal images have infinite PSNR; the mean over finite ones stays useful.
    std::vector<double> finite;
    for (double p : record.psnr) {
      if (std::isfinite(p)) finite.push_back(p);
    }
    record.psnr_mean = finite.empty() ? std::numeric_limits<double>::infinity() : mean(finite);
    record.ssim_mean = mean(record.ssim);
    return record;
  }

  // A loaded model and the runner of its samples (which holds the CUDA
  // graphs of the baseline and the setting measured last).
  struct Loaded {
    std::unique_ptr<engine::Pipeline> pipeline;
    std::unique_ptr<engine::SampleRunner> runner;
  };

  Loaded& pipeline_for(const std::string& dir, const engine::RunOptions& options) {
    const std::string key = dir + "|" + c10::toString(options.dtype) + "|" + options.device.str();
    auto it = pipelines_.find(key);
    if (it == pipelines_.end()) {
      if (pipelines_.size() >= 2) pipelines_.clear();  // keep device memory bounded
      Loaded loaded;
      loaded.pipeline = engine::Pipeline::load(dir, options);
      loaded.runner = std::make_unique<engine::SampleRunner>(*loaded.pipeline,
                                                             engine::cuda_graphs_enabled(options));
      it = pipelines_.emplace(key, std::move(loaded)).first;
    }
    return it->second;
  }

  engine::ClipScorer& scorer_for(const std::string& dir, const engine::RunOptions& options) {
    // CLIP scores in float32 at least: fp16 embeddings would add noise to the
    // very loss the search ranks by.
    engine::RunOptions clip_options = options;
    if (clip_options.dtype == c10::kHalf || clip_options.dtype == c10::kBFloat16) {
      clip_options.dtype = c10::kFloat;
    }
    const std::string key = dir + "|" + c10::toString(clip_options.dtype) + "|" + clip_options.device.str();
    if (!scorer_ || scorer_key_ != key) {
      scorer_ = engine::ClipScorer::load(dir, clip_options);
      scorer_key_ = key;
    }
    return *scorer_;
  }

  static std::string baseline_key(const MeasurementUnit& unit) {
    std::ostringstream key;
    key << unit.model_dir << "|" << partition::sampler_slug(unit.sampler) << "|" << unit.steps << "|"
        << unit.height << "x" << unit.width << "|" << unit.seed << "+" << unit.first_prompt << "|" << unit.batch_size << "|"
        << unit.guidance << "|" << unit.dtype << "|" << unit.device << "|";
    for (const auto& p : unit.prompts) key << p.size() << ":" << p;
    return key.str();
  }

  RunOutput run(engine::Pipeline& pipeline, engine::SampleRunner& runner, engine::ClipScorer& scorer,
                const MeasurementUnit& unit,
                const std::vector<engine::AccelSpec>& specs, const engine::RunOptions& options) {
    const int64_t n = static_cast<int64_t>(unit.prompts.size());
    const int64_t height = unit.height > 0 ? unit.height : pipeline.default_height();
    const int64_t width = unit.width > 0 ? unit.width : pipeline.default_width();
    pipeline.check_size(height, width);

    auto run_batch = [&](int64_t begin, int64_t end, int64_t* macs) {
      engine::SampleRequest request;
      request.prompts.assign(unit.prompts.begin() + begin, unit.prompts.begin() + end);
      request.sampler = engine_sampler(unit.sampler);
      request.steps = unit.steps;
      request.guidance_scale = unit.guidance;
      request.height = height;
      request.width = width;
      // Each image has its own seed, so it does not depend on its batch.
      std::vector<at::Tensor> starts;
      for (int64_t i = begin; i < end; ++i) {
        starts.push_back(pipeline.seeded_latents(1, height, width, unit.seed + static_cast<uint64_t>(unit.first_prompt + i)));
      }
      request.latents = at::cat(starts, 0);
      engine::macs::reset();
      engine::SampleOutput sample = runner.run(request, specs, unit.seed + static_cast<uint64_t>(unit.first_prompt + begin));
      if (macs) *macs += engine::macs::total();
      engine::device_synchronize(options);
      return sample.images;
    };

    RunOutput out;
    // One untimed warm-up batch per batch size (a last, smaller batch is a
    // shape of its own): kernels, allocator and caches settle, and on CUDA
    // the sample is captured as a graph that the timed batches replay. The
    // peak memory includes the warm-up, which allocates what a replay uses.
    engine::reset_peak_memory(options);
    run_batch(0, std::min<int64_t>(n, unit.batch_size), nullptr);
    if (runner.uses_graphs() && n > unit.batch_size && n % unit.batch_size != 0) {
      run_batch(n - n % unit.batch_size, n, nullptr);
    }
    std::vector<at::Tensor> all_images;
    for (int64_t begin = 0; begin < n; begin += unit.batch_size) {
      const int64_t end = std::min<int64_t>(n, begin + unit.batch_size);
      engine::device_synchronize(options);
      const auto t0 = std::chrono::steady_clock::now();
      at::Tensor images = run_batch(begin, end, &out.measurement.macs);
      const auto t1 = std::chrono::steady_clock::now();
      out.measurement.batch_times_s.push_back(std::chrono::duration<double>(t1 - t0).count());
      at::Tensor quantised = engine::images_to_uint8(images);
      if (!torch::isfinite(images.to(torch::kFloat)).all().item<bool>()) {
        throw Error("NaN or infinity in the generated images (model " + unit.model_dir +
                    "); the weights or the dtype may be unsuitable");
      }
      all_images.push_back(quantised);
    }
    out.measurement.peak_bytes = engine::peak_memory_bytes(options);
    out.measurement.total_s = std::accumulate(out.measurement.batch_times_s.begin(),
                                              out.measurement.batch_times_s.end(), 0.0);
    out.images = at::cat(all_images, 0);
    out.measurement.clip = scorer.scores(out.images, unit.prompts);
    out.measurement.clip_mean = mean(out.measurement.clip);
    return out;
  }

  std::map<std::string, Loaded> pipelines_;
  std::unique_ptr<engine::ClipScorer> scorer_;
  std::string scorer_key_;
  std::map<std::string, RunOutput> baselines_;
  BatchFit batch_fit_;
};

nlohmann::json run_to_json(const RunMeasurement& m) {
  return {{"batch_times_s", m.batch_times_s}, {"total_s", m.total_s}, {"macs", m.macs},
          {"peak_bytes", m.peak_bytes},       {"clip", m.clip},       {"clip_mean", m.clip_mean}};
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

}  // namespace

nlohmann::json EvaluationRecord::to_json() const {
  nlohmann::json psnr_json = nlohmann::json::array();
  for (double p : psnr) psnr_json.push_back(number_or_null(p));
  return {{"base", run_to_json(base)},
          {"acc", run_to_json(acc)},
          {"speedup", speedup},
          {"speedup_macs", speedup_macs},
          {"score_loss", score_loss},
          {"psnr", psnr_json},
          {"ssim", ssim},
          {"psnr_mean", number_or_null(psnr_mean)},
          {"ssim_mean", ssim_mean},
          {"device", device_name},
          {"batch_size", batch_size}};
}

std::unique_ptr<Evaluator> make_engine_evaluator() { return std::make_unique<EngineEvaluator>(); }

}  // namespace diffsearch::worker
