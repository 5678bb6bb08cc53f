// The quality measure a search ranks settings by (`--quality clip|ssim|psnr`).
// Each is a loss that is 0 for the baseline's own images and grows as the
// accelerated images drift, so the tasks' loss bounds read the same way:
//   clip  relative drop of the mean CLIP score (the original benchmark's
//         measure): (sum base - sum acc) / sum base over the prompts;
//   ssim  1 - mean SSIM of each accelerated image against the baseline image
//         of the same prompt and seed;
//   psnr  the mean normalised squared error, 10^(-PSNR/10) = MSE / 255^2 per
//         image: a bound L is a PSNR of at least -10 log10(L) dB per image on
//         average (0.01: 20 dB; 0.001: 30 dB).
// All three are written as a relative drop of per-prompt scores (for SSIM and
// PSNR the baseline scores 1 and the accelerated image 1 - its error), so the
// frontier strategy's paired per-prompt statistics serve every measure.
#pragma once

#include <string>
#include <vector>

#include "io/result_store.h"

namespace diffsearch::coordinator {

enum class Quality { Clip, Ssim, Psnr };

// "clip", "ssim" or "psnr" (any case); InputError naming `where` (the flag or
// the file's field) and the valid values otherwise.
Quality parse_quality(const std::string& name, const std::string& where = "--quality");
std::string quality_name(Quality quality);

// One prompt's scores whose relative drop is the loss.
struct QualityScores {
  double base = 0;
  double acc = 0;
};
QualityScores quality_scores(Quality quality, double clip_base, double clip_acc, double psnr, double ssim);
QualityScores quality_scores(Quality quality, const io::PromptScore& prompt);

// The loss of summed scores: (base - acc) / base, 0 when base is 0.
double quality_loss(double base_sum, double acc_sum);

// A row's loss under `quality` over the prompts it measured: CLIP's is the
// row's own score_loss (exactly what the evaluator computed); the others come
// from its per-prompt scores (its means when it has none).
double row_loss(Quality quality, const io::EvaluationRow& row);

// The loss of per-prompt CLIP scores, PSNRs and SSIMs (an evaluator's record).
double record_loss(Quality quality, const std::vector<double>& clip_base, const std::vector<double>& clip_acc,
                   const std::vector<double>& psnr, const std::vector<double>& ssim);

}  // namespace diffsearch::coordinator
