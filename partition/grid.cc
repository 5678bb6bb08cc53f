// Builds the five task grids in their fixed nesting order, and reads the
// category-5 configuration file.
#include "partition/grid.h"

#include <algorithm>
#include <cmath>
#include <fstream>

#include "io/error.h"
#include "io/json_file.h"

namespace diffsearch::partition {

const std::vector<int>& grid_steps() {
  static const std::vector<int> v = {20, 25, 50};
  return v;
}

const std::vector<std::vector<Method>>& grid_single_methods() {
  static const std::vector<std::vector<Method>> v = {
      {Method::DeepCache}, {Method::TGate}, {Method::ToMe}};
  return v;
}

const std::vector<std::vector<Method>>& grid_combined_methods() {
  static const std::vector<std::vector<Method>> v = {
      {Method::DeepCache, Method::ToMe},
      {Method::DeepCache, Method::TGate},
      {Method::DeepCache, Method::TGate, Method::ToMe}};
  return v;
}

const std::vector<std::vector<Method>>& grid_accelerators() {
  static const std::vector<std::vector<Method>> v = {
      {Method::DeepCache},
      {Method::TGate},
      {Method::ToMe},
      {Method::DeepCache, Method::ToMe},
      {Method::DeepCache, Method::TGate},
      {Method::DeepCache, Method::TGate, Method::ToMe}};
  return v;
}

const std::vector<double>& grid_speedups() {
  static const std::vector<double> v = {1.2, 1.5, 1.8, 2.0, 2.5, 3.0, 4.0};
  return v;
}

std::vector<Task> make_grid(int category, const GridConfig& config) {
  if (category < 1 || category > 5) {
    throw InputError("unknown task category " + std::to_string(category) +
                     ": expected 1 (basic), 2 (one method), 3 (combined methods), 4 (speedup "
                     "targets) or 5 (latency budgets)");
  }
  std::vector<Task> tasks;
  for (Model model : all_models()) {
    for (SamplerKind sampler : all_samplers()) {
      for (int steps : grid_steps()) {
        Task base;
        base.model = model;
        base.sampler = sampler;
        base.steps = steps;
        switch (category) {
          case 1: tasks.push_back(base); break;
          case 2:
          case 3:
            for (const auto& methods :
                 category == 2 ? grid_single_methods() : grid_combined_methods()) {
              Task t = base;
              t.methods = methods;
              tasks.push_back(t);
            }
            break;
          case 4:
            for (const auto& methods : grid_accelerators()) {
              for (double ratio : grid_speedups()) {
                Task t = base;
                t.methods = methods;
                t.speedup = ratio;
                tasks.push_back(t);
              }
            }
            break;
          case 5: {
            const auto& accelerators =
                config.accelerators.empty() ? grid_accelerators() : config.accelerators;
            auto budgets = config.latency_budgets_s.find(model);
            if (budgets == config.latency_budgets_s.end()) break;
            for (const auto& methods : accelerators) {
              for (const auto& platform : config.platforms) {
                for (double budget : budgets->second) {
                  Task t = base;
                  t.methods = methods;
                  t.latency_s = budget;
                  t.platform = platform;
                  if (!methods.empty()) t.max_score_loss = config.max_score_loss;
                  tasks.push_back(t);
                }
              }
            }
            break;
          }
        }
      }
    }
  }
  return tasks;
}

namespace {

std::vector<double> read_budgets(const nlohmann::json& list, const std::string& source,
                                 const std::string& field) {
  if (!list.is_array() || list.empty()) {
    throw InputError(source + ": field \"" + field +
                     "\": expected a non-empty list of seconds such as [0.5, 1.0], found " +
                     list.dump());
  }
  std::vector<double> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto& v = list[i];
    if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) {
      throw InputError(source + ": field \"" + field + "[" + std::to_string(i) +
                       "]\": expected a positive number of seconds, found " + v.dump());
    }
    out.push_back(v.get<double>());
  }
  return out;
}

}  // namespace

GridConfig grid_config_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) {
    throw InputError(source +
                     ": expected a JSON object with \"platforms\", "
                     "\"latency_budgets_s\", \"accelerators\" or \"max_score_loss\", found " +
                     std::string(json.type_name()));
  }
  GridConfig config;
  for (const auto& [field, value] : json.items()) {
    if (!field.empty() && field[0] == '_') continue;  // comments
    if (field == "version") {
      if (!value.is_number_integer() || value.get<int>() != 1) {
        throw InputError(source + ": field \"version\": expected 1, found " + value.dump());
      }
    } else if (field == "platforms") {
      if (!value.is_array() || value.empty()) {
        throw InputError(source +
                         ": field \"platforms\": expected a non-empty list of GPU names "
                         "such as [\"NVIDIA H200\"], found " +
                         value.dump());
      }
      config.platforms.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        const auto& v = value[i];
        if (!v.is_string() || v.get<std::string>().empty() ||
            v.get<std::string>().find('"') != std::string::npos) {
          throw InputError(source + ": field \"platforms[" + std::to_string(i) +
                           "]\": expected a GPU name as CUDA reports it (no quotes), found " +
                           v.dump());
        }
        config.platforms.push_back(v.get<std::string>());
      }
    } else if (field == "latency_budgets_s") {
      if (!value.is_object()) {
        throw InputError(source +
                         ": field \"latency_budgets_s\": expected an object mapping "
                         "SD1.5, SD2.1, SDXL to lists of seconds, found " +
                         value.dump());
      }
      config.latency_budgets_s.clear();
      for (const auto& [name, list] : value.items()) {
        auto model = find_model(name);
        if (!model) {
          throw InputError(source + ": field \"latency_budgets_s." + name +
                           "\": unknown model; expected SD1.5, SD2.1 or SDXL");
        }
        config.latency_budgets_s[*model] = read_budgets(list, source, "latency_budgets_s." + name);
      }
    } else if (field == "accelerators") {
      if (!value.is_array() || value.empty()) {
        throw InputError(source +
                         ": field \"accelerators\": expected a non-empty list of method "
                         "lists such as [[\"DeepCache\"], [\"DeepCache\", \"ToMe\"]], found " +
                         value.dump());
      }
      config.accelerators.clear();
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string where = "accelerators[" + std::to_string(i) + "]";
        if (!value[i].is_array()) {
          throw InputError(source + ": field \"" + where +
                           "\": expected a list of methods such as [\"DeepCache\", \"ToMe\"], "
                           "found " +
                           value[i].dump());
        }
        std::vector<Method> methods;
        for (const auto& m : value[i]) {
          auto method = m.is_string() ? find_method(m.get<std::string>()) : std::nullopt;
          if (!method) {
            throw InputError(source + ": field \"" + where + "\": unknown method " + m.dump() +
                             "; expected DeepCache, T-Gate or ToMe");
          }
          for (Method seen : methods) {
            if (seen == *method) {
              throw InputError(source + ": field \"" + where + "\": method " + m.dump() +
                               " listed twice");
            }
          }
          methods.push_back(*method);
        }
        std::sort(methods.begin(), methods.end());
        config.accelerators.push_back(methods);
      }
    } else if (field == "max_score_loss") {
      if (!value.is_number() || !(value.get<double>() > 0 && value.get<double>() < 1)) {
        throw InputError(source +
                         ": field \"max_score_loss\": expected a number between 0 and 1 "
                         "(exclusive) such as 0.02, found " +
                         value.dump());
      }
      config.max_score_loss = value.get<double>();
    } else {
      throw InputError(source + ": unknown field \"" + field +
                       "\": expected platforms, latency_budgets_s, accelerators, "
                       "max_score_loss or version");
    }
  }
  return config;
}

GridConfig read_grid_config(const std::string& path) {
  return grid_config_from_json(io::read_json_file(path, "grid configuration"), path);
}

}  // namespace diffsearch::partition
