// Distilling a results file into answers (search_params.json): for every task,
// the measured setting that meets its goal at the least quality loss, or the
// nearest one on the speed/quality front when none does.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "partition/task.h"

namespace diffsearch::coordinator {

// {"<task key>": {"task", "status", "methods", "params", "speedup",
// "score_loss", "clip_base", "clip_acc", "device", "rows", "units"}, ...,
// "_format": ..., "_version": 1, ...}. Deterministic: the same contents and
// tasks give the same JSON.
nlohmann::json distill(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks);

// The JSON text written to search_params.json (sorted keys, 2-space indent,
// trailing newline).
std::string distill_text(const nlohmann::json& answers);

}  // namespace diffsearch::coordinator
