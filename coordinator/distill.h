// Distilling a results file into answers (search_params.json): for every task,
// the measured setting that meets its goal at the least quality loss, or the
// nearest one on the speed/quality front when none does.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/quality.h"
#include "coordinator/search.h"
#include "io/result_store.h"
#include "partition/task.h"

namespace diffsearch::coordinator {

// The options and plan a results file was searched with, rebuilt from its
// recorded configuration for `tasks`. A damaged configuration (a field of
// another type, impossible frontier knobs, a space that does not parse) is an
// InputError naming the file (contents.path) and the field.
struct RecordedSearch {
  SearchOptions options;
  SearchPlan plan;
};
RecordedSearch recorded_search(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks);

// {"<task key>": {"task", "status", "methods", "params", "speedup", "loss",
// "score_loss", "clip_base", "clip_acc", "device", "rows", "units"}, ...,
// "_format": ..., "_version": 1, "_quality", ...}. "loss" is by the quality
// measure (`quality`, else the one the search recorded, else CLIP), the one
// the tasks' loss bounds apply to; "score_loss" is always the CLIP score loss.
// Deterministic: the same contents and tasks give the same JSON.
nlohmann::json distill(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks,
                       std::optional<Quality> quality = std::nullopt);

// The JSON text written to search_params.json (sorted keys, 2-space indent,
// trailing newline).
std::string distill_text(const nlohmann::json& answers);

// How far an infeasible answer misses a speedup goal: its relative loss over
// the bound plus its relative speedup under the target. distill's nearest
// point minimises it (plus a latency term for latency tasks); the frontier
// strategy's race reasons with the same function, so the two agree.
double speedup_shortfall(double speedup, double loss, double target, double max_loss);

}  // namespace diffsearch::coordinator
