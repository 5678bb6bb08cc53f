// Replaying a recorded results file: the index of its ok rows by unit key,
// the prompt-range lookup, and the scaling of a row's totals to a range.
#include "coordinator/evaluator_replay.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "io/error.h"

namespace diffsearch::coordinator {
namespace {

std::string range_text(int64_t begin, int64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

}  // namespace

ReplayEvaluator::ReplayEvaluator(const std::string& path) : path_(path) {
  if (path.empty()) {
    throw InputError("--evaluator replay: expected replay:FILE.h5, a results file of an exhaustive search");
  }
  io::ResultsContents contents = io::read_results(path);
  const auto& config = contents.config;
  if (config.is_object()) {
    auto samples = config.find("samples");
    if (samples != config.end() && samples->is_number_integer()) samples_ = samples->get<int64_t>();
    auto seed = config.find("seed");
    if (seed != config.end() && seed->is_number_integer()) seed_ = seed->get<uint64_t>();
  }
  std::map<std::string, std::size_t> devices;
  for (auto& row : contents.rows) {
    if (row.status != "ok") continue;
    Recorded r;
    r.time_base_s = row.time_base_s;
    r.time_acc_s = row.time_acc_s;
    r.macs_base = row.macs_base;
    r.macs_acc = row.macs_acc;
    r.peak_bytes = row.peak_bytes;
    // Rows of a GPU-less run, or too old to say, cost what their images took.
    r.gpu_seconds = std::isfinite(row.gpu_seconds) ? row.gpu_seconds : row.time_acc_s;
    r.prompt_begin = row.prompt_begin;
    r.prompt_end = row.prompt_end > row.prompt_begin ? row.prompt_end : row.prompt_begin + row.num_samples;
    r.prompt_count = !row.prompts.empty() ? static_cast<int64_t>(row.prompts.size()) : r.prompt_end - r.prompt_begin;
    r.device = row.device;
    r.prompts = std::move(row.prompts);
    std::sort(r.prompts.begin(), r.prompts.end(),
              [](const io::PromptScore& a, const io::PromptScore& b) { return a.prompt_index < b.prompt_index; });
    if (!r.device.empty()) devices[r.device]++;
    units_[row.unit_key].push_back(std::move(r));
  }
  std::size_t most = 0;
  for (const auto& [name, count] : devices) {
    if (count > most) {
      most = count;
      device_ = name;
    }
  }
}

bool ReplayEvaluator::covers(const Recorded& row, int64_t begin, int64_t end) const {
  auto it = std::lower_bound(row.prompts.begin(), row.prompts.end(), begin,
                             [](const io::PromptScore& p, int64_t index) { return p.prompt_index < index; });
  for (int64_t g = begin; g < end; ++g, ++it) {
    if (it == row.prompts.end() || it->prompt_index != g) return false;
  }
  return true;
}

const std::vector<ReplayEvaluator::Recorded>& ReplayEvaluator::rows_of(const worker::MeasurementUnit& unit) const {
  auto it = units_.find(unit.unit_key);
  if (it == units_.end()) {
    throw InputError("unit " + (unit.unit_key.empty() ? std::string("(without a unit key)") : unit.unit_key) +
                     " was not measured in " + path_ +
                     "; replay only answers units that file holds: run the same search exhaustively to "
                     "record them");
  }
  return it->second;
}

std::optional<double> ReplayEvaluator::estimate_seconds(const worker::MeasurementUnit& unit) {
  auto it = units_.find(unit.unit_key);
  if (it == units_.end()) return std::nullopt;
  // The row evaluate() would answer from, else the first: its cost per prompt.
  const int64_t begin = unit.first_prompt;
  const Recorded* row = &it->second.front();
  for (const auto& r : it->second) {
    if (covers(r, begin, begin + static_cast<int64_t>(unit.prompts.size()))) {
      row = &r;
      break;
    }
  }
  if (row->prompt_count <= 0) return std::nullopt;
  return row->gpu_seconds * (static_cast<double>(unit.prompts.size()) / static_cast<double>(row->prompt_count));
}

worker::EvaluationRecord ReplayEvaluator::evaluate(const worker::MeasurementUnit& unit) {
  const auto& rows = rows_of(unit);
  if (seed_ && *seed_ != unit.seed) {
    throw InputError("unit " + unit.unit_key + ": seed " + std::to_string(unit.seed) + " asked, but " + path_ +
                     " was recorded with seed " + std::to_string(*seed_) + "; pass --seed " +
                     std::to_string(*seed_) + " to replay it");
  }
  const auto n = static_cast<int64_t>(unit.prompts.size());
  const int64_t begin = unit.first_prompt;
  const int64_t end = begin + n;
  const Recorded* row = nullptr;
  for (const auto& r : rows) {
    if (covers(r, begin, end)) {
      row = &r;
      break;
    }
  }
  if (!row) {
    std::string recorded;
    for (const auto& r : rows) {
      recorded += (recorded.empty() ? "" : ", ") +
                  (r.prompts.empty() ? std::string("none")
                                     : range_text(r.prompts.front().prompt_index, r.prompts.back().prompt_index + 1));
    }
    std::string message = "unit " + unit.unit_key + ": prompts " + range_text(begin, end) + " asked, but " + path_ +
                          " recorded its per-prompt scores for " + recorded;
    if (samples_ > 0 && end > samples_) {
      message += "; that search measured " + std::to_string(samples_) +
                 " prompts per unit, so replay cannot answer more: use --num-samples " + std::to_string(samples_) +
                 " or fewer";
    }
    throw InputError(message);
  }

  // Per-image numbers were not recorded: each prompt gets an even share.
  const double share = static_cast<double>(n) / static_cast<double>(row->prompt_count);
  worker::EvaluationRecord r;
  r.device_name = row->device.empty() ? device_ : row->device;
  r.base.total_s = row->time_base_s * share;
  r.acc.total_s = row->time_acc_s * share;
  r.base.macs = static_cast<int64_t>(std::llround(static_cast<double>(row->macs_base) * share));
  r.acc.macs = static_cast<int64_t>(std::llround(static_cast<double>(row->macs_acc) * share));
  r.base.peak_bytes = r.acc.peak_bytes = row->peak_bytes;
  r.base.batch_times_s.assign(static_cast<std::size_t>(n), row->time_base_s / static_cast<double>(row->prompt_count));
  r.acc.batch_times_s.assign(static_cast<std::size_t>(n), row->time_acc_s / static_cast<double>(row->prompt_count));
  auto it = std::lower_bound(row->prompts.begin(), row->prompts.end(), begin,
                             [](const io::PromptScore& p, int64_t index) { return p.prompt_index < index; });
  double base_sum = 0, acc_sum = 0, psnr_sum = 0, ssim_sum = 0;
  for (int64_t i = 0; i < n; ++i, ++it) {
    r.base.clip.push_back(it->clip_base);
    r.acc.clip.push_back(it->clip_acc);
    r.psnr.push_back(it->psnr);
    r.ssim.push_back(it->ssim);
    base_sum += it->clip_base;
    acc_sum += it->clip_acc;
    psnr_sum += it->psnr;
    ssim_sum += it->ssim;
  }
  const double count = n > 0 ? static_cast<double>(n) : 1.0;
  r.base.clip_mean = base_sum / count;
  r.acc.clip_mean = acc_sum / count;
  r.psnr_mean = psnr_sum / count;
  r.ssim_mean = ssim_sum / count;
  r.speedup = r.acc.total_s > 0 ? r.base.total_s / r.acc.total_s : 1.0;
  r.speedup_macs = r.acc.macs > 0 ? static_cast<double>(r.base.macs) / static_cast<double>(r.acc.macs) : 1.0;
  r.score_loss = r.base.clip_mean != 0 ? (r.base.clip_mean - r.acc.clip_mean) / r.base.clip_mean : 0.0;
  r.simulated_seconds = row->gpu_seconds * share;
  return r;
}

}  // namespace diffsearch::coordinator
