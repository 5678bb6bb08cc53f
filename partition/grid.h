// The five task categories and their grids (`diffsearch grid --category N`),
// and the configuration that sets category 5's platforms and budgets.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "partition/task.h"

namespace diffsearch::partition {

// Category 5's lists. The defaults are the GPUs the project measures on and
// budgets that sit between the measured 20- and 50-step latencies of each
// model on them (SD1.5 ~1.4 s, SDXL ~3.2 s at 50 steps: docs/engine.md,
// "Reference measurements").
struct GridConfig {
  std::vector<std::string> platforms = {"NVIDIA H100 80GB HBM3", "NVIDIA H200"};
  std::map<Model, std::vector<double>> latency_budgets_s = {
      {Model::SD15, {0.5, 1.0}}, {Model::SD21, {0.5, 1.0}}, {Model::SDXL, {1.5, 3.0}}};
  // The methods a latency task may use; the same six as category 4.
  std::vector<std::vector<Method>> accelerators;  // empty = category 4's six
  double max_score_loss = kDefaultMaxScoreLoss;
};

// The lists every grid is built from, in grid order.
const std::vector<int>& grid_steps();                             // 20, 25, 50
const std::vector<std::vector<Method>>& grid_single_methods();    // category 2
const std::vector<std::vector<Method>>& grid_combined_methods();  // category 3
// Category 4's accelerators: DeepCache, T-Gate, ToMe, DeepCache and ToMe,
// DeepCache and T-Gate, DeepCache, T-Gate, and ToMe.
const std::vector<std::vector<Method>>& grid_accelerators();
const std::vector<double>& grid_speedups();  // 1.2 1.5 1.8 2.0 2.5 3.0 4.0

// Category N's tasks in grid order (model x sampler x steps x ...). Throws
// InputError for a category outside 1..5.
std::vector<Task> make_grid(int category, const GridConfig& config = {});

// Reads a GridConfig from JSON ({"platforms": [...], "latency_budgets_s":
// {"SD1.5": [...], ...}, "accelerators": [["DeepCache", "ToMe"], ...],
// "max_score_loss": 0.02}); missing fields keep their defaults, unknown
// fields are refused. `source` names the file in messages.
GridConfig grid_config_from_json(const nlohmann::json& json, const std::string& source);
GridConfig read_grid_config(const std::string& path);

}  // namespace diffsearch::partition
