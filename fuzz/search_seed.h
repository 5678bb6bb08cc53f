// The small search whose results file and journal seed the results and
// search_params targets: fuzz_make_seeds runs it for the seed corpora and
// results_fuzz runs it once as the builder's material, so both start from
// the same tasks, space and prompts.
#pragma once

#include <string>

#include "coordinator/search.h"
#include "fuzz/fuzz_support.h"

namespace diffsearch::fuzz {

// Exhaustive, on the fake evaluator (an H200 by name, so latency targets are
// answerable), 2 prompts and 4 samples over a DeepCache and ToMe space.
inline coordinator::SearchOptions seed_search_options(const std::string& out) {
  coordinator::SearchOptions o;
  o.tasks = tasks();
  o.samples = 4;
  o.batch_size = 4;
  o.space_json = {{"deepcache", {{"cache_interval", {2, 3}}, {"cache_branch_id", {0, 1}}}},
                  {"tome", {{"ratio", {0.3, 0.5}}}}};
  o.space_source = "fuzz seed space";
  o.prompts = {"a cat", "a dog"};
  o.evaluator = "fake:gpu=NVIDIA H200";
  o.strategy = "exhaustive";
  o.progress_interval_s = 1000;
  o.out = out;
  return o;
}

}  // namespace diffsearch::fuzz
