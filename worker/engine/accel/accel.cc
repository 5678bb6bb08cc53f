// `--accel` specs (parsing, the reference's defaults, range checks) and the
// composition of the DeepCache, ToMe and T-GATE policies of one run.
#include "worker/engine/accel/accel.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "io/error.h"
#include "worker/engine/accel/policy_deepcache.h"
#include "worker/engine/accel/policy_tgate.h"
#include "worker/engine/accel/policy_tome.h"
#include "worker/engine/models/unet.h"

namespace diffsearch::engine {

namespace {

enum class ValueType { integer, number, boolean, text };

struct KeyInfo {
  const char* name;
  ValueType type;
};

struct MethodInfo {
  const char* name;
  std::vector<KeyInfo> keys;
  nlohmann::json defaults;  // the reference implementation's
};

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      // DeepCacheSDHelper.set_params(cache_interval=1, cache_branch_id=0,
      // skip_mode='uniform'); center and pow belong to the paper's
      // non-uniform schedule (its example values).
      {"deepcache",
       {{"cache_interval", ValueType::integer},
        {"cache_branch_id", ValueType::integer},
        {"skip_mode", ValueType::text},
        {"center", ValueType::integer},
        {"pow", ValueType::number}},
       {{"cache_interval", 1}, {"cache_branch_id", 0}, {"skip_mode", "uniform"},
        {"center", 15}, {"pow", 1.4}}},
      // tomesd.apply_patch
      {"tome",
       {{"ratio", ValueType::number},
        {"max_downsample", ValueType::integer},
        {"sx", ValueType::integer},
        {"sy", ValueType::integer},
        {"use_rand", ValueType::boolean},
        {"merge_attn", ValueType::boolean},
        {"merge_crossattn", ValueType::boolean},
        {"merge_mlp", ValueType::boolean}},
       {{"ratio", 0.5}, {"max_downsample", 1}, {"sx", 2}, {"sy", 2}, {"use_rand", true},
        {"merge_attn", true}, {"merge_crossattn", false}, {"merge_mlp", false}}},
      // TgateSDLoader / TgateSDXLLoader's call
      {"tgate",
       {{"gate_step", ValueType::integer},
        {"sp_interval", ValueType::integer},
        {"fi_interval", ValueType::integer},
        {"warm_up", ValueType::integer}},
       {{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}}},
  };
  return table;
}

std::string method_names() { return "deepcache, tome or tgate"; }

const MethodInfo* find_method(const std::string& name) {
  for (const auto& m : methods()) {
    if (name == m.name) return &m;
  }
  return nullptr;
}

const KeyInfo* find_key(const MethodInfo& m, const std::string& key) {
  for (const auto& k : m.keys) {
    if (key == k.name) return &k;
  }
  return nullptr;
}

std::string key_names(const MethodInfo& m) {
  std::string out;
  for (std::size_t i = 0; i < m.keys.size(); ++i) out += (i ? ", " : "") + std::string(m.keys[i].name);
  return out;
}

std::string trim(const std::string& s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string type_words(ValueType t) {
  switch (t) {
    case ValueType::integer:
      return "a whole number";
    case ValueType::number:
      return "a number";
    case ValueType::boolean:
      return "true or false";
    case ValueType::text:
      return "uniform or non-uniform";
  }
  return "";
}

// The value of `key` written as text on the command line, or nothing.
bool parse_value(const KeyInfo& key, const std::string& text, nlohmann::json& out) {
  switch (key.type) {
    case ValueType::integer: {
      if (text.empty()) return false;
      errno = 0;
      char* end = nullptr;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (errno != 0 || *end != '\0') return false;
      out = static_cast<int64_t>(v);
      return true;
    }
    case ValueType::number: {
      if (text.empty()) return false;
      errno = 0;
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (errno != 0 || *end != '\0' || !std::isfinite(v)) return false;
      out = v;
      return true;
    }
    case ValueType::boolean: {
      const std::string t = lower(text);
      if (t == "true" || t == "1" || t == "yes" || t == "on") {
        out = true;
      } else if (t == "false" || t == "0" || t == "no" || t == "off") {
        out = false;
      } else {
        return false;
      }
      return true;
    }
    case ValueType::text: {
      const std::string t = lower(text);
      if (t == "uniform") {
        out = "uniform";
      } else if (t == "non-uniform" || t == "non_uniform" || t == "nonuniform") {
        out = "non-uniform";
      } else {
        return false;
      }
      return true;
    }
  }
  return false;
}

// Whether a JSON value (from a spec made in code or read from a file) has the
// key's type; whole floats count as whole numbers.
bool json_has_type(const KeyInfo& key, const nlohmann::json& v) {
  switch (key.type) {
    case ValueType::integer:
      if (v.is_number_integer()) return true;
      return v.is_number_float() && std::isfinite(v.get<double>()) &&
             std::floor(v.get<double>()) == v.get<double>();
    case ValueType::number:
      return v.is_number() && std::isfinite(v.get<double>());
    case ValueType::boolean:
      return v.is_boolean();
    case ValueType::text:
      return v.is_string() && (v == "uniform" || v == "non-uniform");
  }
  return false;
}

}  // namespace

std::string format_accel_spec(const AccelSpec& spec) {
  std::string out = spec.method;
  if (spec.params.is_object() && !spec.params.empty()) {
    out += ":";
    bool first = true;
    for (const auto& [key, value] : spec.params.items()) {
      out += (first ? "" : ",") + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump());
      first = false;
    }
  }
  return out;
}

AccelSpec parse_accel_spec(const std::string& text_in) {
  const std::string text = trim(text_in);
  const std::string where = "--accel '" + text_in + "': ";
  if (text.empty()) {
    throw InputError("--accel: empty spec (expected METHOD[:KEY=VALUE,...] with METHOD " +
                     method_names() + ", e.g. deepcache:cache_interval=3,cache_branch_id=0)");
  }
  const std::size_t colon = text.find(':');
  AccelSpec spec;
  spec.method = lower(trim(text.substr(0, colon)));
  spec.params = nlohmann::json::object();
  const MethodInfo* m = find_method(spec.method);
  if (m == nullptr) {
    throw InputError(where + "unknown method '" + spec.method + "' (expected " + method_names() +
                     ", e.g. tome:ratio=0.5)");
  }
  if (colon == std::string::npos) return spec;
  const std::string rest = trim(text.substr(colon + 1));
  if (rest.empty()) return spec;
  std::size_t pos = 0;
  while (pos <= rest.size()) {
    const std::size_t comma = std::min(rest.find(',', pos), rest.size());
    const std::string item = trim(rest.substr(pos, comma - pos));
    pos = comma + 1;
    const std::size_t eq = item.find('=');
    if (item.empty() || eq == std::string::npos) {
      throw InputError(where + "expected KEY=VALUE, found '" + item + "' (keys of " + m->name +
                       ": " + key_names(*m) + ")");
    }
    const std::string key = lower(trim(item.substr(0, eq)));
    const std::string value = trim(item.substr(eq + 1));
    const KeyInfo* k = find_key(*m, key);
    if (k == nullptr) {
      throw InputError(where + "unknown key '" + key + "' for " + m->name + " (expected one of " +
                       key_names(*m) + ")");
    }
    if (spec.params.contains(key)) {
      throw InputError(where + "key '" + key + "' is given twice (give it once)");
    }
    nlohmann::json v;
    if (!parse_value(*k, value, v)) {
      throw InputError(where + key + " must be " + type_words(k->type) + ", found '" + value + "'");
    }
    spec.params[key] = v;
  }
  return spec;
}

namespace {

nlohmann::json complete_params(const AccelSpec& spec, const UNet2DCondition* unet, int64_t steps) {
  const std::string where = "--accel '" + format_accel_spec(spec) + "': ";
  const MethodInfo* m = find_method(spec.method);
  if (m == nullptr) {
    throw InputError(where + "unknown method '" + spec.method + "' (expected " + method_names() + ")");
  }
  if (!spec.params.is_null() && !spec.params.is_object()) {
    throw InputError(where + "parameters must be an object of KEY: VALUE, found " +
                     spec.params.dump());
  }
  nlohmann::json p = m->defaults;
  if (spec.params.is_object()) {
    for (const auto& [key, value] : spec.params.items()) {
      const KeyInfo* k = find_key(*m, key);
      if (k == nullptr) {
        throw InputError(where + "unknown key '" + key + "' for " + m->name +
                         " (expected one of " + key_names(*m) + ")");
      }
      if (!json_has_type(*k, value)) {
        throw InputError(where + key + " must be " + type_words(k->type) + ", found " +
                         value.dump());
      }
      if (k->type == ValueType::integer && !value.is_number_integer()) {
        p[key] = static_cast<int64_t>(value.get<double>());
      } else {
        p[key] = value;
      }
    }
  }
  auto fail = [&](const std::string& what) { throw InputError(where + what); };
  auto integer = [&](const char* key) { return p.at(key).get<int64_t>(); };

  if (spec.method == "deepcache") {
    const int64_t interval = integer("cache_interval");
    if (interval < 1) fail("cache_interval must be at least 1, found " + std::to_string(interval));
    const int64_t branch = integer("cache_branch_id");
    if (branch < 0) fail("cache_branch_id must be at least 0, found " + std::to_string(branch));
    const int64_t max_branch = unet ? 3 * unet->num_down_blocks() - 1 : branch;
    if (branch > max_branch) {
      fail("cache_branch_id must be in [0, " + std::to_string(max_branch) + "] for this UNet's " +
           std::to_string(unet->num_down_blocks()) +
           " down blocks (block = id / 3, layer = id % 3), found " + std::to_string(branch));
    }
    if (p.at("skip_mode") == "non-uniform") {
      const int64_t center = integer("center");
      const double pw = p.at("pow").get<double>();
      if (pw <= 1) fail("pow must be above 1, found " + p.at("pow").dump());
      if (center < 0 || (steps > 0 && center >= steps)) {
        fail("center must be a step in [0, " + std::to_string(steps - 1) + "], found " +
             std::to_string(center));
      }
      if (steps > 0) {
        try {
          deepcache_nonuniform_full_steps(steps, interval, center, pw);
        } catch (const InputError& e) {
          fail(e.what());
        }
      }
    } else if (spec.params.is_object() &&
               (spec.params.contains("center") || spec.params.contains("pow"))) {
      fail("center and pow apply to skip_mode=non-uniform only (add skip_mode=non-uniform, or "
           "drop them)");
    }
  } else if (spec.method == "tome") {
    const double ratio = p.at("ratio").get<double>();
    if (!(ratio >= 0 && ratio < 1)) {
      fail("ratio must be in [0, 1) (the fraction of tokens merged), found " + p.at("ratio").dump());
    }
    for (const char* key : {"max_downsample", "sx", "sy"}) {
      if (integer(key) < 1) {
        fail(std::string(key) + " must be at least 1, found " + std::to_string(integer(key)));
      }
    }
  } else if (spec.method == "tgate") {
    const int64_t gate = integer("gate_step");
    if (gate < 1) fail("gate_step must be at least 1, found " + std::to_string(gate));
    if (steps > 0 && gate > steps) {
      fail("gate_step " + std::to_string(gate) + " is beyond the run's " + std::to_string(steps) +
           " steps (give gate_step <= steps)");
    }
    for (const char* key : {"sp_interval", "fi_interval"}) {
      if (integer(key) < 1) {
        fail(std::string(key) + " must be at least 1, found " + std::to_string(integer(key)));
      }
    }
    if (integer("warm_up") < 0) {
      fail("warm_up must be at least 0, found " + std::to_string(integer("warm_up")));
    }
  }
  return p;
}

}  // namespace

nlohmann::json complete_accel_params(const AccelSpec& spec, const UNet2DCondition& unet,
                                     int64_t steps) {
  return complete_params(spec, &unet, steps);
}

nlohmann::json complete_accel_params(const AccelSpec& spec, int64_t steps) {
  return complete_params(spec, nullptr, steps);
}

namespace {

// Every policy sees every hook, in the order the specs were given; merging
// runs in that order and unmerging in reverse, so stacked merges nest.
class ComposedHooks final : public UNetHooks {
 public:
  std::vector<UNetHooks*> parts;

  void begin_forward(const UNetForwardInfo& info) override {
    for (UNetHooks* h : parts) h->begin_forward(info);
  }
  bool reuse_layer(const UNetLocation& where, LayerOutput& out) override {
    for (UNetHooks* h : parts) {
      if (h->reuse_layer(where, out)) return true;
    }
    return false;
  }
  void layer_computed(const UNetLocation& where, const LayerOutput& out) override {
    for (UNetHooks* h : parts) h->layer_computed(where, out);
  }
  void transformer_begin(const TransformerLocation& where, const at::Tensor& x, int64_t height,
                         int64_t width) override {
    for (UNetHooks* h : parts) h->transformer_begin(where, x, height, width);
  }
  at::Tensor merge_tokens(const TransformerLocation& where, TokenStage stage,
                          const at::Tensor& x) override {
    at::Tensor y = x;
    for (UNetHooks* h : parts) y = h->merge_tokens(where, stage, y);
    return y;
  }
  at::Tensor unmerge_tokens(const TransformerLocation& where, TokenStage stage,
                            const at::Tensor& x) override {
    at::Tensor y = x;
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) y = (*it)->unmerge_tokens(where, stage, y);
    return y;
  }
  bool reuse_attention(const AttentionLocation& where, at::Tensor& out) override {
    for (UNetHooks* h : parts) {
      if (h->reuse_attention(where, out)) return true;
    }
    return false;
  }
  void attention_computed(const AttentionLocation& where, const at::Tensor& out) override {
    for (UNetHooks* h : parts) h->attention_computed(where, out);
  }
  ResnetInputShare* resnet_input_share(const UNetLocation& where) override {
    for (UNetHooks* h : parts) {
      if (ResnetInputShare* share = h->resnet_input_share(where)) return share;
    }
    return nullptr;
  }
};

class ComposedAcceleration final : public Acceleration {
 public:
  UNetHooks* unet_hooks() override {
    if (hooks_.parts.empty()) return nullptr;
    return hooks_.parts.size() == 1 ? hooks_.parts.front() : &hooks_;
  }
  std::vector<StepPolicy*> step_policies() override { return steps_; }

  template <class P>
  P* add(std::unique_ptr<P> policy) {
    P* raw = policy.get();
    hooks_.parts.push_back(raw);
    steps_.push_back(raw);
    owned_.push_back(std::move(policy));
    return raw;
  }

 private:
  std::vector<std::unique_ptr<UNetHooks>> owned_;
  ComposedHooks hooks_;
  std::vector<StepPolicy*> steps_;
};

}  // namespace

std::unique_ptr<Acceleration> Acceleration::create(const std::vector<AccelSpec>& specs,
                                                   const UNet2DCondition& unet, int64_t steps,
                                                   uint64_t seed) {
  auto acc = std::make_unique<ComposedAcceleration>();
  DeepCachePolicy* deepcache = nullptr;
  TGatePolicy* tgate = nullptr;
  std::vector<std::string> seen;
  for (const AccelSpec& spec : specs) {
    const nlohmann::json p = complete_accel_params(spec, unet, steps);
    if (std::find(seen.begin(), seen.end(), spec.method) != seen.end()) {
      throw InputError("--accel: " + spec.method +
                       " is given twice (give each method once, with all its keys)");
    }
    seen.push_back(spec.method);
    if (spec.method == "deepcache") {
      DeepCacheParams d;
      d.cache_interval = p.at("cache_interval").get<int64_t>();
      d.cache_branch_id = p.at("cache_branch_id").get<int64_t>();
      d.non_uniform = p.at("skip_mode") == "non-uniform";
      d.center = p.at("center").get<int64_t>();
      d.pow = p.at("pow").get<double>();
      deepcache = acc->add(std::make_unique<DeepCachePolicy>(d, unet));
    } else if (spec.method == "tome") {
      ToMeParams t;
      t.ratio = p.at("ratio").get<double>();
      t.max_downsample = p.at("max_downsample").get<int64_t>();
      t.sx = p.at("sx").get<int64_t>();
      t.sy = p.at("sy").get<int64_t>();
      t.use_rand = p.at("use_rand").get<bool>();
      t.merge_attn = p.at("merge_attn").get<bool>();
      t.merge_crossattn = p.at("merge_crossattn").get<bool>();
      t.merge_mlp = p.at("merge_mlp").get<bool>();
      acc->add(std::make_unique<ToMePolicy>(t, seed));
    } else {
      TGateParams g;
      g.gate_step = p.at("gate_step").get<int64_t>();
      g.sp_interval = p.at("sp_interval").get<int64_t>();
      g.fi_interval = p.at("fi_interval").get<int64_t>();
      g.warm_up = p.at("warm_up").get<int64_t>();
      tgate = acc->add(std::make_unique<TGatePolicy>(g));
    }
  }
  if (deepcache != nullptr && tgate != nullptr) {
    // T-GATE's DeepCache pipeline resets the helper at gate - 1 (every
    // attention must run to be cached) and at the gate (the batch halves).
    const int64_t gate = tgate->params().gate_step;
    deepcache->set_restart_steps({gate - 1, gate});
  }
  return acc;
}

}  // namespace diffsearch::engine
