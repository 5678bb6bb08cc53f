#include "coordinator/quality.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cmath>

#include "io/error.h"

namespace diffsearch::coordinator {

Quality parse_quality(const std::string& name, const std::string& where) {
  std::string lower;
  for (unsigned char c : name) lower += static_cast<char>(std::tolower(c));
  if (lower == "clip") return Quality::Clip;
  if (lower == "ssim") return Quality::Ssim;
  if (lower == "psnr") return Quality::Psnr;
  throw InputError(where + " \"" + name + "\": expected clip (CLIP score loss, the default), ssim or psnr");
}

std::string quality_name(Quality quality) {
  switch (quality) {
    case Quality::Clip: return "clip";
    case Quality::Ssim: return "ssim";
    case Quality::Psnr: return "psnr";
  }
  return "clip";
}

QualityScores quality_scores(Quality quality, double clip_base, double clip_acc, double psnr, double ssim) {
  switch (quality) {
    case Quality::Clip: return {clip_base, clip_acc};
    case Quality::Ssim: return {1.0, ssim};
    case Quality::Psnr: {
      // Identical images have an infinite PSNR: no error. NaN stays NaN, so
      // a missing score is never read as a perfect one.
      const double error = std::isinf(psnr) && psnr > 0 ? 0.0 : std::pow(10.0, -psnr / 10.0);
      return {1.0, 1.0 - error};
    }
  }
  return {clip_base, clip_acc};
}

QualityScores quality_scores(Quality quality, const io::PromptScore& p) {
  return quality_scores(quality, p.clip_base, p.clip_acc, p.psnr, p.ssim);
}

double quality_loss(double base_sum, double acc_sum) { return base_sum > 0 ? (base_sum - acc_sum) / base_sum : 0.0; }

double row_loss(Quality quality, const io::EvaluationRow& row) {
  if (quality == Quality::Clip) return row.score_loss;
  if (row.prompts.empty()) {
    // Rows without per-prompt scores: the row's means (exact for SSIM; for
    // PSNR the error of the mean PSNR, a lower bound of the mean error).
    const auto s = quality_scores(quality, row.clip_base, row.clip_acc, row.psnr, row.ssim);
    return quality_loss(s.base, s.acc);
  }
  double base = 0, acc = 0;
  for (const auto& p : row.prompts) {
    const auto s = quality_scores(quality, p);
    base += s.base;
    acc += s.acc;
  }
  return quality_loss(base, acc);
}

double record_loss(Quality quality, const std::vector<double>& clip_base, const std::vector<double>& clip_acc,
                   const std::vector<double>& psnr, const std::vector<double>& ssim) {
  const std::size_t n = std::max({clip_base.size(), psnr.size(), ssim.size()});
  auto at = [](const std::vector<double>& v, std::size_t i) { return i < v.size() ? v[i] : std::nan(""); };
  double base = 0, acc = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto s = quality_scores(quality, at(clip_base, i), at(clip_acc, i), at(psnr, i), at(ssim, i));
    base += s.base;
    acc += s.acc;
  }
  return quality_loss(base, acc);
}

}  // namespace diffsearch::coordinator
