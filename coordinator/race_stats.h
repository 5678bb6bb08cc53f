// The statistics of the frontier strategy's race: Student's t quantiles and
// one-sided confidence bounds on the mean of paired per-prompt differences.
#pragma once

#include <vector>

namespace diffsearch::coordinator {

// The p-quantile of Student's t with `dof` degrees of freedom (0 < p < 1,
// dof >= 1), to about 1e-10; degrees of freedom above 1000 count as 1000
// (at most 0.2% wider than the normal's quantile).
double student_t_quantile(double p, int dof);

// The mean of `values` and its one-sided bounds at `confidence`:
// mean -/+ t(confidence, n-1) * sd / sqrt(n). With fewer than two values the
// bounds are -inf and +inf: one prompt says nothing about the spread.
struct MeanBounds {
  double mean = 0;
  double lower = 0;
  double upper = 0;
};
MeanBounds mean_bounds(const std::vector<double>& values, double confidence);

// Bounds on the mean over all `total` prompts, of which `values` are the
// first n: what an exhaustive run would measure. The unseen total - n
// prompts are the uncertainty: the half width is
// t(confidence, n-1) * sd * (total-n)/total * sqrt(1/n + 1/(total-n)),
// zero once every prompt is in (the race then decides exactly as the
// exhaustive rule would on the same numbers).
MeanBounds final_mean_bounds(const std::vector<double>& values, int total, double confidence);

// The half width of those bounds for a standard deviation known to `dof`
// degrees of freedom from elsewhere (pooled over many settings): `final`
// as final_mean_bounds, else as mean_bounds.
double mean_half_width(double sd, int n, int total, int dof, double confidence, bool final);

}  // namespace diffsearch::coordinator
