// What a search spent and what the exhaustive strategy would have spent on
// the same plan, in GPU-seconds (simulated seconds for the synthetic and
// replay evaluators).
#pragma once

#include <vector>

#include "io/result_store.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

struct SearchOptions;
struct SearchPlan;

// The sum of the rows' gpu_seconds (failed attempts included: they cost too).
double rows_gpu_seconds(const std::vector<io::EvaluationRow>& rows);

// Every unit of the plan's task spaces and every basic baseline at full
// fidelity: from `estimator` where it can tell without measuring (synthetic,
// replay); else each space's measured seconds per prompt times its size, and
// for spaces without rows the measured seconds per planner cost unit.
// Returns NaN when nothing is known (no estimator, no rows).
double exhaustive_gpu_seconds(const SearchOptions& options, const SearchPlan& plan, worker::Evaluator* estimator,
                              const std::vector<io::EvaluationRow>& rows);

}  // namespace diffsearch::coordinator
