// The two halves of an MPI search, for run_search_mpi (coordinator/search.cc).
#pragma once

namespace diffsearch::coordinator {

struct SearchOptions;
struct SearchPlan;

// Rank 0: owns the strategy and the results file, hands out work.
int coordinate(const SearchOptions& options, const SearchPlan& plan, int size);
// Ranks > 0: measure.
int worker_loop(const SearchOptions& options, const SearchPlan& plan, int rank);

}  // namespace diffsearch::coordinator

#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "worker/evaluator.h"

namespace diffsearch::coordinator {

class SearchStrategy;

// Rank 0's own evaluator for estimates (synthetic, replay); null for the
// others, which only a worker's run can measure.
std::unique_ptr<worker::Evaluator> make_estimator(const SearchOptions& options);
// The run record at the end of a run: `record` plus what the file's rows
// spent (gpu_seconds) and what exhaustive would have (gpu_seconds_exhaustive).
nlohmann::json final_run_record(const SearchOptions& options, const SearchPlan& plan, const SearchStrategy& strategy,
                                worker::Evaluator* estimator, const std::vector<io::EvaluationRow>& rows,
                                nlohmann::json record);

}  // namespace diffsearch::coordinator
