// The planner: from tasks to deduplicated measurement units and shared
// baselines, their estimated cost, and a static assignment to workers.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "partition/search_space.h"
#include "partition/task.h"

namespace diffsearch::partition {

// Relative cost of one UNet step with classifier-free guidance on one image,
// measured on an H200 (docs/engine.md, "Reference measurements"): SD1.5
// 512px 1.0, SD2.1 768px 2.7, SDXL 1024px 8.4. Other resolutions scale with
// the pixel count (an estimate: attention grows faster, convolutions as the
// pixels).
double unet_step_cost(Model model, int resolution);
// Seconds that one cost unit takes on an H200 in eager PyTorch (one SD1.5
// 512px UNet step with CFG; docs/engine.md, "Reference measurements"), for
// rough GPU-hour estimates.
constexpr double kSecondsPerCostUnit = 0.0289;

struct PlanOptions {
  int samples = 32;                 // prompts measured per unit
  std::map<Model, int> resolution;  // overrides of default_resolution
  SpaceConfig space;                // --space overrides
};

// The unaccelerated run that every setting of a (model, sampler, steps,
// resolution) is compared against; a platform task's baseline is measured on
// that platform and so is a baseline of its own.
struct Baseline {
  Model model;
  SamplerKind sampler;
  int steps;
  int resolution;
  std::optional<std::string> platform;
  double cost;  // cost units: unet_step_cost * steps * samples
  // "sd15/ddim/50/512px", with "@<platform>" appended for platform baselines.
  std::string key() const;
  // "<key>/<the empty setting's key>": the baseline's unit in result files.
  std::string unit_key() const;
};

// One method space of the plan: a method combination's settings for one
// (model, sampler, steps, resolution, platform). Every unit belongs to exactly
// one space, so deduplicating units is deduplicating spaces.
struct PlannedSpace {
  Model model;
  SamplerKind sampler;
  int steps;
  int resolution;
  std::optional<std::string> platform;
  std::vector<Method> methods;
  // Each method's settings (method_settings), in `methods` order; the space
  // is their product, the first method slowest.
  std::vector<std::vector<nlohmann::json>> choices;
  std::uint64_t size = 0;
  std::size_t baseline = 0;        // index into Plan::baselines
  std::vector<std::size_t> tasks;  // indices into Plan::tasks
  double unit_cost = 0;            // cost of each unit (accelerated units are
                                   // charged the nominal baseline cost)
  // "sd15/ddim/50/512px/deepcache+tome", with "@<platform>" if any.
  std::string key() const;
  // The index-th setting, index < size (same order as enumerate_settings).
  Setting setting_at(std::uint64_t index) const;
};

// A measurement unit: the index-th setting of a space.
struct Unit {
  std::uint32_t space;
  std::uint64_t index;
};

struct Plan {
  std::vector<Task> tasks;  // distinct, in input order
  // Per task: its space (npos for a basic task) and its baseline.
  std::vector<std::size_t> task_space;
  std::vector<std::size_t> task_baseline;
  std::vector<PlannedSpace> spaces;
  std::vector<Baseline> baselines;
  std::vector<Unit> units;  // space by space, in enumeration order
  int samples = 0;
  double units_cost = 0;  // all units
  double baselines_cost = 0;
  double total_cost = 0;  // units + baselines
  // Units had every task been measured on its own (no deduplication).
  std::uint64_t units_without_dedup = 0;

  double unit_cost(const Unit& unit) const { return spaces[unit.space].unit_cost; }
  Setting unit_setting(const Unit& unit) const { return spaces[unit.space].setting_at(unit.index); }
  // "<space key>/<setting_key>": names a unit in result files.
  std::string unit_key(const Unit& unit) const;
};

constexpr std::size_t kNoSpace = static_cast<std::size_t>(-1);

// Duplicate tasks (same key) are kept once, with a warning.
Plan make_plan(const std::vector<Task>& tasks, const PlanOptions& options = {});

// Whether the combination `space` is worth seeding from its methods' fronts:
// it has more than `min_ratio` times as many settings as its methods' spaces
// together (else measuring the methods alone costs about what the whole
// combination does).
bool worth_fronts(const PlannedSpace& space, double min_ratio);
// Adds, for every space of several methods worth_fronts, the single-method
// spaces of its methods on the same baseline where the tasks did not already
// plan them: the frontier strategy seeds a combination from its methods'
// fronts. Added spaces have no tasks and no entries in `units` (nobody asked
// them; only the strategy measures them). Deterministic.
void add_component_spaces(Plan& plan, double min_ratio);
// The single-method space of `method` on `space`'s baseline; kNoSpace if none.
std::size_t component_space(const Plan& plan, std::size_t space, Method method);

// Static assignment of every baseline and unit to `workers` workers, longest
// processing time first (ties: baselines, then units in plan order; the
// least-loaded worker with the lowest index takes the next job).
struct Balance {
  int workers = 0;
  std::vector<double> load;                    // per worker, cost units
  std::vector<std::uint32_t> baseline_worker;  // per baseline
  std::vector<std::uint32_t> unit_worker;      // per unit
  double max_load = 0;
  double mean_load = 0;
  double max_over_mean() const { return mean_load > 0 ? max_load / mean_load : 1.0; }
};
Balance assign_lpt(const Plan& plan, int workers);

// For one method's settings (a space's `choices[m]`): the indices of each
// setting's one-step neighbours, the settings that differ from it in one
// parameter, by one step of that parameter's distinct values (numbers and
// booleans). Ascending.
std::vector<std::vector<std::uint64_t>> one_step_neighbours(const std::vector<nlohmann::json>& settings);

}  // namespace diffsearch::partition
