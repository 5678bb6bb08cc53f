// The search space of each acceleration method: parameters, their documented
// defaults per model architecture, overrides from a JSON file (--space), the
// enumeration of settings and the canonical text that identifies a setting.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "partition/task.h"

namespace diffsearch::partition {

// parameter -> the values to try, in order.
using ParamValues = std::map<std::string, std::vector<nlohmann::json>>;
// method -> parameter -> values.
using MethodSpace = std::map<Method, ParamValues>;

// One method's parameters in a setting: {"cache_interval": 3, ...}, values
// int, double or bool, typed per parameter (see method_params).
struct MethodSetting {
  Method method;
  nlohmann::json params;
  bool operator==(const MethodSetting& o) const { return method == o.method && params == o.params; }
};
// A setting: one entry per method, in canonical method order. Empty = the
// unaccelerated baseline.
using Setting = std::vector<MethodSetting>;

enum class ParamType { Int, Double, Bool };
// What a parameter accepts. Model-dependent bounds (cache_branch_id) and
// steps-dependent ones (gate_step) are checked where model and steps are known.
struct ParamSpec {
  std::string name;
  ParamType type;
  double min;  // inclusive
  double max;  // inclusive, unless max_exclusive
  bool max_exclusive = false;
  // Which way the setting gets more aggressive (more speed, more quality
  // loss): +1 as the value grows, -1 as it shrinks, 0 undeclared. The
  // frontier search's dominance rule (docs/search.md) reads it.
  int aggressive = 0;
};
// In enumeration order (the first parameter varies slowest).
const std::vector<ParamSpec>& method_params(Method method);

// The documented defaults (docs/task-language.md):
//   DeepCache: cache_interval 2..10 x cache_branch_id 0..3*down_blocks-1
//              (SD1.5/SD2.1: 0..11, SDXL: 0..8); skip mode uniform.
//   T-Gate:    gate_step round(k*steps/10), k = 1..9 (distinct) x
//              sp_interval {1,3,5} x fi_interval {1} x warm_up {0,2}.
//   ToMe:      ratio 0.1..0.7 step 0.1 x max_downsample {1,2} (SDXL {2,4})
//              x sx {2} x sy {2} x use_rand {false}.
ParamValues default_params(Method method, Model model, int steps);
MethodSpace default_method_space(Model model, int steps);

// A parsed --space file. The top level maps method names (deepcache, tgate,
// tome; aliases accepted) to parameter -> list of values, replacing those
// parameters' defaults for every model; a model name (SD1.5, SD2.1, SDXL) at
// the top level holds the same for that model only, applied after. T-Gate
// also takes "gate_step_fraction" (fractions of the steps, rounded) instead
// of absolute "gate_step". Keys starting with '_' are comments.
struct SpaceConfig {
  std::string source;  // the file, for messages; empty for the defaults
  MethodSpace all;
  std::map<Model, MethodSpace> per_model;
  bool empty() const { return all.empty() && per_model.empty(); }
};
SpaceConfig space_config_from_json(const nlohmann::json& json, const std::string& source);
SpaceConfig read_space_file(const std::string& path);

// Defaults with the overrides applied and every value checked against the
// model and steps; throws InputError naming the file and field otherwise.
MethodSpace resolve_method_space(Model model, int steps, const SpaceConfig& config = {});

// One method's settings: the product of its parameters' values, first
// parameter (method_params order) slowest. Deterministic.
std::vector<nlohmann::json> method_settings(Method method, const ParamValues& params);

// Every setting of a combination (methods in canonical order): the product of
// each method's settings, the first method slowest.
std::vector<Setting> enumerate_settings(Model model, int steps, const std::vector<Method>& methods,
                                        const SpaceConfig& config = {});
std::uint64_t count_settings(Model model, int steps, const std::vector<Method>& methods,
                             const SpaceConfig& config = {});

// {"deepcache": {"cache_branch_id": 0, "cache_interval": 3}, "tome": {...}}.
nlohmann::json setting_to_json(const Setting& setting);
// The JSON above as compact text with sorted keys; integers without a point,
// doubles in shortest round-trip form ("0.3", "2.0"). It identifies a
// measurement unit in result files, so it must never change for a setting.
std::string setting_key(const Setting& setting);
// The setting as `--accel` specs, one per method ("deepcache:cache_branch_id=0,cache_interval=3",
// "tome:ratio=0.5,use_rand=false"): what the evaluator runs and codegen prints.
std::vector<std::string> accel_args(const Setting& setting);
// Reads setting_to_json's form back, checking methods, parameters and types.
Setting setting_from_json(const nlohmann::json& json, const std::string& source);

}  // namespace diffsearch::partition
