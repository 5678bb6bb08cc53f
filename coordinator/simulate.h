// Running a strategy in this process with no results file and no MPI: what
// `plan --strategy frontier` estimates with, and what the strategy benchmark
// compares strategies by (bench/search_cost.cc).
#pragma once

#include <vector>

#include "coordinator/search.h"

namespace diffsearch::coordinator {

struct Simulation {
  std::vector<io::EvaluationRow> rows;  // as a search would have written them
  double gpu_seconds = 0;               // summed over rows
  std::size_t items = 0;                // work items measured
  std::size_t prompts = 0;              // images the accelerated runs made
};

// Measures every item the options' strategy asks for with `evaluator`, in
// the strategy's order, until it is finished. `keep_prompts` false drops the
// per-prompt scores from the rows kept (memory, for millions of rows).
Simulation simulate_search(const SearchOptions& options, const SearchPlan& plan, worker::Evaluator& evaluator,
                           bool keep_prompts = true);

}  // namespace diffsearch::coordinator
