// From a work item to a results row: the measurement an evaluator is asked
// for, and the row it becomes (exceptions become failed rows with their kind;
// every row records the GPU-seconds it cost).
#include <cmath>

#include "coordinator/run_support.h"
#include "coordinator/search.h"
#include "io/failure.h"
#include "io/log/log.h"

namespace diffsearch::coordinator {
worker::MeasurementUnit measurement_unit(const SearchOptions& options, const SearchPlan& plan, const WorkItem& item,
                                         int batch_size, const std::string& device) {
  const auto& b = plan.plan.baselines[item.baseline];
  worker::MeasurementUnit unit;
  unit.unit_key = item.unit_key;
  unit.model = b.model;
  auto dir = options.model_dirs.find(b.model);
  unit.model_dir = dir == options.model_dirs.end() ? "" : dir->second;
  unit.clip_dir = options.clip_dir;
  unit.sampler = b.sampler;
  unit.steps = b.steps;
  unit.height = unit.width = b.resolution;
  unit.first_prompt = item.prompt_begin;
  for (int i = item.prompt_begin; i < item.prompt_end && !options.prompts.empty(); ++i) {
    unit.prompts.push_back(options.prompts[static_cast<std::size_t>(i) % options.prompts.size()]);
  }
  unit.seed = options.seed;
  unit.batch_size = batch_size;
  if (item.space != partition::kNoSpace) unit.setting = plan.plan.spaces[item.space].setting_at(item.index);
  unit.dtype = options.dtype;
  unit.device = device;
  return unit;
}

io::EvaluationRow evaluate_item(worker::Evaluator& evaluator, const SearchOptions& options, const SearchPlan& plan,
                                const WorkItem& item, int batch_size, const std::string& device, int rank,
                                bool* out_of_memory) {
  const auto& b = plan.plan.baselines[item.baseline];
  io::EvaluationRow row;
  row.unit_key = item.unit_key;
  row.baseline_key = b.key();
  row.model = partition::model_name(b.model);
  row.sampler = partition::sampler_name(b.sampler);
  row.steps = b.steps;
  row.resolution = b.resolution;
  if (item.space != partition::kNoSpace) {
    row.space_key = plan.plan.spaces[item.space].key();
    row.methods = partition::methods_key(plan.plan.spaces[item.space].methods);
  } else {
    row.space_key = b.key();
  }
  row.num_samples = options.samples;
  row.prompt_begin = item.prompt_begin;
  row.prompt_end = item.prompt_end;
  row.batch_size = batch_size;
  row.seed = static_cast<int64_t>(options.seed);
  row.host = host_name();
  row.rank = rank;
  row.device = device;
  row.started_at = now_s();
  const double nan = std::nan("");
  double simulated = nan;
  if (out_of_memory) *out_of_memory = false;
  try {
    const auto unit = measurement_unit(options, plan, item, batch_size, device);
    row.setting = partition::setting_key(unit.setting);
    const worker::EvaluationRecord r = evaluator.evaluate(unit);
    simulated = r.simulated_seconds;
    if (!std::isfinite(r.score_loss) || !std::isfinite(r.speedup) || !std::isfinite(r.acc.clip_mean)) {
      throw std::runtime_error("NaN or infinity in the measurement (speedup " + std::to_string(r.speedup) +
                               ", score loss " + std::to_string(r.score_loss) + ")");
    }
    row.status = "ok";
    row.time_base_s = r.base.total_s;
    row.time_acc_s = r.acc.total_s;
    row.speedup = r.speedup;
    row.speedup_macs = r.speedup_macs;
    row.clip_base = r.base.clip_mean;
    row.clip_acc = r.acc.clip_mean;
    row.score_loss = r.score_loss;
    row.psnr = r.psnr_mean;
    row.ssim = r.ssim_mean;
    row.macs_base = r.base.macs;
    row.macs_acc = r.acc.macs;
    row.peak_bytes = std::max(r.base.peak_bytes, r.acc.peak_bytes);
    if (!r.device_name.empty()) row.device = r.device_name;
    if (r.batch_size > 0) row.batch_size = r.batch_size;  // the evaluator fitted a smaller batch
    for (std::size_t i = 0; i < r.acc.clip.size(); ++i) {
      io::PromptScore p;
      p.prompt_index = item.prompt_begin + static_cast<int64_t>(i);  // global: ranges join up
      p.clip_base = i < r.base.clip.size() ? r.base.clip[i] : nan;
      p.clip_acc = r.acc.clip[i];
      p.psnr = i < r.psnr.size() ? r.psnr[i] : nan;
      p.ssim = i < r.ssim.size() ? r.ssim[i] : nan;
      row.prompts.push_back(p);
    }
  } catch (const std::exception& e) {
    if (row.setting.empty() && item.space != partition::kNoSpace) {
      row.setting = partition::setting_key(plan.plan.spaces[item.space].setting_at(item.index));
    } else if (row.setting.empty()) {
      row.setting = partition::setting_key({});
    }
    row.status = "failed";
    row.error = e.what();
    row.error_kind = failure_kind_name(classify_failure(e));
    row.time_base_s = row.time_acc_s = row.speedup = row.speedup_macs = nan;
    row.clip_base = row.clip_acc = row.score_loss = row.psnr = row.ssim = nan;
    if (out_of_memory) *out_of_memory = row.error_kind == failure_kind_name(FailureKind::out_of_memory);
    log::warn("unit " + item.work_key() + " failed on rank " + std::to_string(rank) + " (" + row.error_kind +
              "): " + row.error);
  }
  row.finished_at = now_s();
  row.gpu_seconds = std::isfinite(simulated) ? simulated : row.finished_at - row.started_at;
  return row;
}

}  // namespace diffsearch::coordinator
