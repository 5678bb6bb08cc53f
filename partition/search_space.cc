// Method search spaces: defaults per architecture, --space overrides with
// checked values, and the deterministic enumeration of settings.
#include "partition/search_space.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"
#include "io/json_file.h"

namespace diffsearch::partition {

namespace {

// T-Gate's steps-relative alternative to gate_step in --space files.
const char* kGateFraction = "gate_step_fraction";

std::string where(const std::string& source) {
  return source.empty() ? std::string("default search space") : source;
}

const ParamSpec* find_param(Method method, const std::string& name) {
  for (const auto& spec : method_params(method)) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string accepted_params(Method method) {
  std::string out;
  const auto& specs = method_params(method);
  for (size_t i = 0; i < specs.size(); ++i) {
    out += (i ? ", " : "") + specs[i].name;
  }
  if (method == Method::TGate) out += std::string(", ") + kGateFraction;
  return out;
}

std::string describe(const ParamSpec& spec) {
  switch (spec.type) {
    case ParamType::Bool: return "true or false";
    case ParamType::Int:
      return "a whole number from " + std::to_string(static_cast<long>(spec.min)) + " to " +
             std::to_string(static_cast<long>(spec.max));
    case ParamType::Double:
      return "a number in [" + format_number(spec.min) + ", " + format_number(spec.max) +
             (spec.max_exclusive ? ")" : "]");
  }
  return {};
}

// Gives a value the parameter's one JSON type, so that 2 and 2.0 name the
// same setting; throws naming `field` when the value does not fit.
nlohmann::json normalize_value(const ParamSpec& spec, const nlohmann::json& value,
                               const std::string& source, const std::string& field) {
  auto bad = [&]() {
    return InputError(where(source) + ": field \"" + field + "\": expected " + describe(spec) +
                      ", found " + value.dump());
  };
  switch (spec.type) {
    case ParamType::Bool:
      if (!value.is_boolean()) throw bad();
      return value;
    case ParamType::Int: {
      if (!value.is_number()) throw bad();
      const double d = value.get<double>();
      if (!std::isfinite(d) || d != std::floor(d) || d < spec.min || d > spec.max) throw bad();
      return nlohmann::json(static_cast<std::int64_t>(d));
    }
    case ParamType::Double: {
      if (!value.is_number()) throw bad();
      const double d = value.get<double>();
      if (!std::isfinite(d) || d < spec.min || d > spec.max ||
          (spec.max_exclusive && d >= spec.max)) {
        throw bad();
      }
      return nlohmann::json(d);
    }
  }
  throw bad();
}

void dedupe(std::vector<nlohmann::json>& values) {
  std::vector<nlohmann::json> out;
  for (auto& v : values) {
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  values.swap(out);
}

std::vector<nlohmann::json> tgate_gate_steps(const std::vector<double>& fractions, int steps) {
  std::vector<nlohmann::json> out;
  for (double f : fractions) {
    // The small epsilon keeps k/10 * steps on the same side of .5 as the
    // exact tenth would be.
    long g = std::lround(f * steps + 1e-9);
    g = std::max(1L, std::min<long>(g, steps));
    out.push_back(nlohmann::json(static_cast<std::int64_t>(g)));
  }
  dedupe(out);
  return out;
}

// Reads one method -> parameter -> values object of a --space file.
ParamValues parse_param_values(Method method, const nlohmann::json& json, const std::string& source,
                               const std::string& prefix) {
  if (!json.is_object()) {
    throw InputError(source + ": field \"" + prefix +
                     "\": expected an object mapping parameters (" + accepted_params(method) +
                     ") to lists of values, found " + json.dump());
  }
  ParamValues out;
  for (const auto& [name, list] : json.items()) {
    const std::string field = prefix + "." + name;
    const ParamSpec* spec = find_param(method, name);
    ParamSpec fraction_spec{kGateFraction, ParamType::Double, 0.0, 1.0};
    if (!spec && method == Method::TGate && name == kGateFraction) spec = &fraction_spec;
    if (!spec) {
      throw InputError(source + ": field \"" + field + "\": unknown parameter of " +
                       method_name(method) + "; expected one of " + accepted_params(method));
    }
    if (!list.is_array()) {
      throw InputError(source + ": field \"" + field + "\": expected a list of values such as [" +
                       (spec->type == ParamType::Bool ? std::string("false") : std::string("2")) +
                       "], found " + list.dump());
    }
    if (list.empty()) {
      throw InputError(source + ": field \"" + field +
                       "\": empty list; give at least one value, or remove the field to keep "
                       "the default");
    }
    std::vector<nlohmann::json> values;
    for (size_t i = 0; i < list.size(); ++i) {
      values.push_back(
          normalize_value(*spec, list[i], source, field + "[" + std::to_string(i) + "]"));
    }
    if (spec == &fraction_spec) {
      for (const auto& v : values) {
        if (!(v.get<double>() > 0)) {
          throw InputError(source + ": field \"" + field +
                           "\": expected fractions in (0, 1], found " + v.dump());
        }
      }
    }
    dedupe(values);
    out[name] = values;
  }
  if (out.count("gate_step") && out.count(kGateFraction)) {
    throw InputError(source + ": field \"" + prefix +
                     "\": both gate_step and gate_step_fraction given; keep one");
  }
  return out;
}

MethodSpace parse_method_space(const nlohmann::json& json, const std::string& source,
                               const std::string& prefix) {
  MethodSpace out;
  for (const auto& [name, value] : json.items()) {
    if (!name.empty() && name[0] == '_') continue;
    const std::string field = prefix.empty() ? name : prefix + "." + name;
    auto method = find_method(name);
    if (!method) {
      throw InputError(source + ": field \"" + field +
                       "\": unknown method; expected deepcache, "
                       "tgate or tome" +
                       (prefix.empty() ? " (or a model: SD1.5, SD2.1, SDXL)" : ""));
    }
    if (out.count(*method)) {
      throw InputError(source + ": field \"" + field + "\": method " + method_name(*method) +
                       " given twice");
    }
    out[*method] = parse_param_values(*method, value, source, field);
  }
  return out;
}

// Applies one level of overrides, converting gate_step_fraction, and checks
// the values that depend on the model and steps.
void apply_overrides(MethodSpace& space, const MethodSpace& overrides, Model model, int steps,
                     const std::string& source, const std::string& prefix) {
  for (const auto& [method, params] : overrides) {
    for (const auto& [name, values] : params) {
      const std::string field = prefix + method_slug(method) + "." + name;
      if (name == kGateFraction) {
        std::vector<double> fractions;
        for (const auto& v : values) fractions.push_back(v.get<double>());
        space[method]["gate_step"] = tgate_gate_steps(fractions, steps);
        continue;
      }
      for (const auto& v : values) {
        if (method == Method::DeepCache && name == "cache_branch_id" &&
            v.get<std::int64_t>() >= 3 * down_block_count(model)) {
          throw InputError(where(source) + ": field \"" + field + "\": value " + v.dump() +
                           " is out of range for " + model_name(model) + " (" +
                           std::to_string(down_block_count(model)) + " down blocks: 0.." +
                           std::to_string(3 * down_block_count(model) - 1) + "); " +
                           (prefix.empty() ? "give " + model_name(model) +
                                                 " its own list under \"" + model_name(model) + "\""
                                           : std::string("keep the values within that range")));
        }
        if (method == Method::TGate && (name == "gate_step" || name == "warm_up") &&
            v.get<std::int64_t>() > steps) {
          throw InputError(where(source) + ": field \"" + field + "\": value " + v.dump() +
                           " exceeds the task's " + std::to_string(steps) +
                           " steps; use gate_step_fraction to scale with the steps");
        }
      }
      space[method][name] = values;
    }
  }
}

}  // namespace

const std::vector<ParamSpec>& method_params(Method method) {
  static const std::vector<ParamSpec> deepcache = {
      {"cache_interval", ParamType::Int, 1, kMaxSteps, false, +1},
      {"cache_branch_id", ParamType::Int, 0, 11, false, -1},
  };
  static const std::vector<ParamSpec> tgate = {
      {"gate_step", ParamType::Int, 1, kMaxSteps, false, -1},
      {"sp_interval", ParamType::Int, 1, kMaxSteps},
      {"fi_interval", ParamType::Int, 1, kMaxSteps},
      {"warm_up", ParamType::Int, 0, kMaxSteps, false, -1},
  };
  static const std::vector<ParamSpec> tome = {
      {"ratio", ParamType::Double, 0.0, 1.0, true, +1},
      {"max_downsample", ParamType::Int, 1, 8, false, +1},
      {"sx", ParamType::Int, 1, 8},
      {"sy", ParamType::Int, 1, 8},
      {"use_rand", ParamType::Bool, 0, 1},
      {"merge_attn", ParamType::Bool, 0, 1, false, +1},
      {"merge_crossattn", ParamType::Bool, 0, 1, false, +1},
      {"merge_mlp", ParamType::Bool, 0, 1, false, +1},
  };
  switch (method) {
    case Method::DeepCache: return deepcache;
    case Method::TGate: return tgate;
    case Method::ToMe: return tome;
  }
  DIFFSEARCH_ASSERT(false);
  return tome;
}

ParamValues default_params(Method method, Model model, int steps) {
  DIFFSEARCH_ASSERT(steps >= 1);
  auto ints = [](int from, int to) {
    std::vector<nlohmann::json> v;
    for (int i = from; i <= to; ++i) v.push_back(nlohmann::json(static_cast<std::int64_t>(i)));
    return v;
  };
  auto list = [](std::initializer_list<std::int64_t> values) {
    std::vector<nlohmann::json> v;
    for (auto x : values) v.push_back(nlohmann::json(x));
    return v;
  };
  ParamValues p;
  switch (method) {
    case Method::DeepCache:
      p["cache_interval"] = ints(2, 10);
      p["cache_branch_id"] = ints(0, 3 * down_block_count(model) - 1);
      break;
    case Method::TGate: {
      std::vector<nlohmann::json> gates;
      for (int k = 1; k <= 9; ++k) {
        // Tenths of the steps, rounded half up, kept within 1..steps.
        const int g = std::max(1, std::min(steps, (k * steps + 5) / 10));
        gates.push_back(nlohmann::json(static_cast<std::int64_t>(g)));
      }
      dedupe(gates);
      p["gate_step"] = gates;
      p["sp_interval"] = list({1, 3, 5});
      p["fi_interval"] = list({1});
      p["warm_up"] = list({0, 2});
      break;
    }
    case Method::ToMe: {
      std::vector<nlohmann::json> ratios;
      // k / 10.0 gives the doubles that "0.1" ... "0.7" read as.
      for (int k = 1; k <= 7; ++k) ratios.push_back(nlohmann::json(k / 10.0));
      p["ratio"] = ratios;
      // SDXL has no attention at full latent resolution, so max_downsample 1
      // would leave it unmerged.
      p["max_downsample"] = model == Model::SDXL ? list({2, 4}) : list({1, 2});
      p["sx"] = list({2});
      p["sy"] = list({2});
      p["use_rand"] = {nlohmann::json(false)};
      break;
    }
  }
  return p;
}

MethodSpace default_method_space(Model model, int steps) {
  MethodSpace space;
  for (Method m : all_methods()) space[m] = default_params(m, model, steps);
  return space;
}

SpaceConfig space_config_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) {
    throw InputError(source +
                     ": expected a JSON object mapping method -> parameter -> list of "
                     "values, such as {\"deepcache\": {\"cache_interval\": [3, 5]}}, found " +
                     std::string(json.type_name()));
  }
  SpaceConfig config;
  config.source = source;
  nlohmann::json shared = nlohmann::json::object();
  for (const auto& [name, value] : json.items()) {
    if (!name.empty() && name[0] == '_') continue;
    if (name == "version") continue;
    if (auto model = find_model(name); model && !find_method(name)) {
      if (!value.is_object()) {
        throw InputError(source + ": field \"" + name +
                         "\": expected an object mapping method -> "
                         "parameter -> list of values, found " +
                         value.dump());
      }
      if (config.per_model.count(*model)) {
        throw InputError(source + ": field \"" + name + "\": model " + model_name(*model) +
                         " given twice");
      }
      config.per_model[*model] = parse_method_space(value, source, name);
    } else {
      shared[name] = value;
    }
  }
  config.all = parse_method_space(shared, source, "");
  return config;
}

SpaceConfig read_space_file(const std::string& path) {
  return space_config_from_json(io::read_json_file(path, "search space"), path);
}

MethodSpace resolve_method_space(Model model, int steps, const SpaceConfig& config) {
  MethodSpace space = default_method_space(model, steps);
  apply_overrides(space, config.all, model, steps, config.source, "");
  if (auto it = config.per_model.find(model); it != config.per_model.end()) {
    apply_overrides(space, it->second, model, steps, config.source, model_name(model) + ".");
  }
  return space;
}

std::vector<nlohmann::json> method_settings(Method method, const ParamValues& params) {
  std::vector<nlohmann::json> out = {nlohmann::json::object()};
  for (const auto& spec : method_params(method)) {
    auto it = params.find(spec.name);
    if (it == params.end()) continue;  // the engine's reference default
    DIFFSEARCH_ASSERT(!it->second.empty());
    std::vector<nlohmann::json> next;
    next.reserve(out.size() * it->second.size());
    for (const auto& partial : out) {
      for (const auto& value : it->second) {
        nlohmann::json s = partial;
        s[spec.name] = value;
        next.push_back(std::move(s));
      }
    }
    out.swap(next);
  }
  return out;
}

std::vector<Setting> enumerate_settings(Model model, int steps, const std::vector<Method>& methods,
                                        const SpaceConfig& config) {
  const MethodSpace space = resolve_method_space(model, steps, config);
  std::vector<Setting> out = {Setting{}};
  for (Method method : methods) {
    const auto settings = method_settings(method, space.at(method));
    std::vector<Setting> next;
    next.reserve(out.size() * settings.size());
    for (const auto& partial : out) {
      for (const auto& params : settings) {
        Setting s = partial;
        s.push_back({method, params});
        next.push_back(std::move(s));
      }
    }
    out.swap(next);
  }
  return out;
}

std::uint64_t count_settings(Model model, int steps, const std::vector<Method>& methods,
                             const SpaceConfig& config) {
  const MethodSpace space = resolve_method_space(model, steps, config);
  std::uint64_t total = 1;
  for (Method method : methods) {
    for (const auto& [name, values] : space.at(method)) total *= values.size();
  }
  return total;
}

nlohmann::json setting_to_json(const Setting& setting) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& ms : setting) j[method_slug(ms.method)] = ms.params;
  return j;
}

std::string setting_key(const Setting& setting) {
  // nlohmann's objects are sorted maps and its doubles print in shortest
  // round-trip form, so dump() is canonical for the typed values we store.
  return setting_to_json(setting).dump();
}

Setting setting_from_json(const nlohmann::json& json, const std::string& source) {
  if (!json.is_object()) {
    throw InputError(source +
                     ": expected a setting object such as {\"deepcache\": "
                     "{\"cache_interval\": 3}}, found " +
                     json.dump());
  }
  Setting setting;
  for (const auto& [name, params] : json.items()) {
    auto method = find_method(name);
    if (!method) {
      throw InputError(source + ": field \"" + name +
                       "\": unknown method; expected deepcache, "
                       "tgate or tome");
    }
    if (!params.is_object()) {
      throw InputError(source + ": field \"" + name +
                       "\": expected an object of parameters, found " + params.dump());
    }
    nlohmann::json typed = nlohmann::json::object();
    for (const auto& [param, value] : params.items()) {
      const ParamSpec* spec = find_param(*method, param);
      if (!spec) {
        throw InputError(source + ": field \"" + name + "." + param + "\": unknown parameter of " +
                         method_name(*method) + "; expected one of " + accepted_params(*method));
      }
      typed[param] = normalize_value(*spec, value, source, name + "." + param);
    }
    for (const auto& ms : setting) {
      if (ms.method == *method) {
        throw InputError(source + ": field \"" + name + "\": method given twice");
      }
    }
    setting.push_back({*method, typed});
  }
  std::sort(setting.begin(), setting.end(),
            [](const MethodSetting& a, const MethodSetting& b) { return a.method < b.method; });
  return setting;
}

std::vector<std::string> accel_args(const Setting& setting) {
  std::vector<std::string> args;
  for (const auto& m : setting) {
    std::string arg = method_slug(m.method) + ":";
    bool first = true;
    for (const auto& [k, v] : m.params.items()) {
      arg += (first ? "" : ",") + k + "=" +
             (v.is_boolean() ? (v.get<bool>() ? "true" : "false")
              : v.is_number_float() ? format_number(v.get<double>())
                                    : v.dump());
      first = false;
    }
    args.push_back(arg);
  }
  return args;
}

}  // namespace diffsearch::partition
