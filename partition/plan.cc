// The planner: deduplicates tasks into method spaces and shared baselines,
// prices them with the cost model, and balances them statically (LPT).
#include "partition/plan.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <queue>
#include <tuple>
#include <unordered_map>

#include "io/error.h"
#include "io/log/log.h"

namespace diffsearch::partition {

namespace {

// Guards memory: each unit is 16 bytes in the plan, plus 4 in an assignment.
constexpr std::uint64_t kMaxUnits = 50'000'000;

std::string base_key(Model model, SamplerKind sampler, int steps, int resolution,
                     const std::optional<std::string>& platform) {
  std::string key = model_slug(model) + "/" + sampler_slug(sampler) + "/" + std::to_string(steps) +
                    "/" + std::to_string(resolution) + "px";
  if (platform) key += "@" + platform_key(*platform);
  return key;
}

}  // namespace

double unet_step_cost(Model model, int resolution) {
  double nominal = 1.0;
  switch (model) {
    case Model::SD15: nominal = 1.0; break;
    case Model::SD21: nominal = 2.7; break;
    case Model::SDXL: nominal = 8.4; break;
  }
  const double scale = static_cast<double>(resolution) / default_resolution(model);
  return nominal * scale * scale;
}

std::string Baseline::key() const { return base_key(model, sampler, steps, resolution, platform); }

std::string Baseline::unit_key() const { return key() + "/" + setting_key({}); }

std::string PlannedSpace::key() const {
  std::string key = model_slug(model) + "/" + sampler_slug(sampler) + "/" + std::to_string(steps) +
                    "/" + std::to_string(resolution) + "px/" + methods_key(methods);
  if (platform) key += "@" + platform_key(*platform);
  return key;
}

Setting PlannedSpace::setting_at(std::uint64_t index) const {
  DIFFSEARCH_ASSERT(index < size);
  Setting setting(methods.size(), MethodSetting{Method::DeepCache, nullptr});
  // Mixed radix, the last method fastest.
  for (size_t k = methods.size(); k-- > 0;) {
    const auto n = static_cast<std::uint64_t>(choices[k].size());
    setting[k] = {methods[k], choices[k][index % n]};
    index /= n;
  }
  return setting;
}

std::string Plan::unit_key(const Unit& unit) const {
  return spaces[unit.space].key() + "/" + setting_key(unit_setting(unit));
}

Plan make_plan(const std::vector<Task>& tasks, const PlanOptions& options) {
  if (options.samples < 1) {
    throw InputError("samples per unit " + std::to_string(options.samples) +
                     ": expected at least 1 (default 32)");
  }
  for (const auto& [model, px] : options.resolution) {
    if (px < 64 || px > 8192 || px % 8 != 0) {
      throw InputError("resolution " + std::to_string(px) + " for " + model_name(model) +
                       ": expected a multiple of 8 from 64 to 8192 pixels (default " +
                       std::to_string(default_resolution(model)) + ")");
    }
  }
  Plan plan;
  plan.samples = options.samples;
  std::unordered_map<std::string, size_t> task_index, baseline_index, space_index;
  // Resolved spaces per (model, steps): resolution and sampler do not change them.
  std::map<std::pair<Model, int>, MethodSpace> resolved;

  for (const Task& task : tasks) {
    const std::string tkey = task_key(task);
    if (task_index.count(tkey)) {
      log::warn("task " + tkey + " is listed more than once; planning it once");
      continue;
    }
    task_index[tkey] = plan.tasks.size();
    plan.tasks.push_back(task);
    const size_t ti = plan.tasks.size() - 1;

    auto res_it = options.resolution.find(task.model);
    const int resolution =
        res_it != options.resolution.end() ? res_it->second : default_resolution(task.model);
    const double cost = unet_step_cost(task.model, resolution) * task.steps * options.samples;

    const std::string bkey =
        base_key(task.model, task.sampler, task.steps, resolution, task.platform);
    auto [bit, bnew] = baseline_index.emplace(bkey, plan.baselines.size());
    if (bnew) {
      plan.baselines.push_back(
          {task.model, task.sampler, task.steps, resolution, task.platform, cost});
    }
    plan.task_baseline.push_back(bit->second);

    if (task.methods.empty()) {
      plan.task_space.push_back(kNoSpace);
      continue;
    }
    const std::string skey = bkey + "/" + methods_key(task.methods);
    auto [sit, snew] = space_index.emplace(skey, plan.spaces.size());
    if (snew) {
      auto rit = resolved.find({task.model, task.steps});
      if (rit == resolved.end()) {
        rit = resolved
                  .emplace(std::make_pair(task.model, task.steps),
                           resolve_method_space(task.model, task.steps, options.space))
                  .first;
      }
      PlannedSpace space;
      space.model = task.model;
      space.sampler = task.sampler;
      space.steps = task.steps;
      space.resolution = resolution;
      space.platform = task.platform;
      space.methods = task.methods;
      space.baseline = bit->second;
      space.unit_cost = cost;
      space.size = 1;
      for (Method m : task.methods) {
        space.choices.push_back(method_settings(m, rit->second.at(m)));
        space.size *= space.choices.back().size();
        if (space.size > kMaxUnits) break;
      }
      if (space.size > kMaxUnits) {
        throw InputError("the search space of " + skey + " has more than " +
                         std::to_string(kMaxUnits) +
                         " settings: narrow it with --space (fewer values per parameter)");
      }
      plan.spaces.push_back(std::move(space));
    }
    plan.spaces[sit->second].tasks.push_back(ti);
    plan.task_space.push_back(sit->second);
    plan.units_without_dedup += plan.spaces[sit->second].size;
  }

  std::uint64_t total_units = 0;
  for (const auto& space : plan.spaces) total_units += space.size;
  if (total_units > kMaxUnits) {
    throw InputError("the plan has " + std::to_string(total_units) +
                     " measurement units (more "
                     "than " +
                     std::to_string(kMaxUnits) +
                     "): narrow the search space with "
                     "--space or plan fewer tasks");
  }
  plan.units.reserve(total_units);
  for (size_t s = 0; s < plan.spaces.size(); ++s) {
    for (std::uint64_t i = 0; i < plan.spaces[s].size; ++i) {
      plan.units.push_back({static_cast<std::uint32_t>(s), i});
    }
    plan.units_cost += plan.spaces[s].unit_cost * static_cast<double>(plan.spaces[s].size);
  }
  for (const auto& b : plan.baselines) plan.baselines_cost += b.cost;
  plan.total_cost = plan.units_cost + plan.baselines_cost;
  return plan;
}

std::size_t component_space(const Plan& plan, std::size_t space, Method method) {
  const auto& combo = plan.spaces[space];
  for (std::size_t s = 0; s < plan.spaces.size(); ++s) {
    const auto& c = plan.spaces[s];
    if (c.baseline == combo.baseline && c.methods.size() == 1 && c.methods[0] == method) return s;
  }
  return kNoSpace;
}

bool worth_fronts(const PlannedSpace& space, double min_ratio) {
  if (space.methods.size() < 2) return false;
  double parts = 0;
  for (const auto& c : space.choices) parts += static_cast<double>(c.size());
  return static_cast<double>(space.size) > min_ratio * parts;
}

void add_component_spaces(Plan& plan, double min_ratio) {
  const std::size_t planned = plan.spaces.size();
  for (std::size_t s = 0; s < planned; ++s) {
    if (!worth_fronts(plan.spaces[s], min_ratio)) continue;
    for (std::size_t m = 0; m < plan.spaces[s].methods.size(); ++m) {
      const Method method = plan.spaces[s].methods[m];
      if (component_space(plan, s, method) != kNoSpace) continue;
      PlannedSpace single = plan.spaces[s];
      single.methods = {method};
      single.choices = {plan.spaces[s].choices[m]};
      single.size = single.choices[0].size();
      single.tasks.clear();
      plan.spaces.push_back(std::move(single));
    }
  }
}

Balance assign_lpt(const Plan& plan, int workers) {
  if (workers < 1) {
    throw InputError("workers " + std::to_string(workers) + ": expected at least 1");
  }
  Balance balance;
  balance.workers = workers;
  balance.load.assign(static_cast<size_t>(workers), 0.0);
  balance.baseline_worker.assign(plan.baselines.size(), 0);
  balance.unit_worker.assign(plan.units.size(), 0);

  // Units of a space cost the same, so jobs sort as blocks: (cost desc,
  // baselines first, plan order) equals a stable sort of the single jobs.
  struct Block {
    double cost;
    int kind;  // 0 baseline, 1 space
    size_t index;
  };
  std::vector<Block> blocks;
  for (size_t b = 0; b < plan.baselines.size(); ++b)
    blocks.push_back({plan.baselines[b].cost, 0, b});
  for (size_t s = 0; s < plan.spaces.size(); ++s)
    blocks.push_back({plan.spaces[s].unit_cost, 1, s});
  std::sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) {
    if (a.cost != b.cost) return a.cost > b.cost;
    return std::tie(a.kind, a.index) < std::tie(b.kind, b.index);
  });
  // First unit of each space in plan.units (units are laid out space by space).
  std::vector<size_t> first_unit(plan.spaces.size(), 0);
  for (size_t s = 1; s < plan.spaces.size(); ++s) {
    first_unit[s] = first_unit[s - 1] + static_cast<size_t>(plan.spaces[s - 1].size);
  }

  using Slot = std::pair<double, std::uint32_t>;  // (load, worker): least load, then lowest index
  std::priority_queue<Slot, std::vector<Slot>, std::greater<Slot>> heap;
  for (int w = 0; w < workers; ++w) heap.push({0.0, static_cast<std::uint32_t>(w)});
  auto take = [&](double cost) {
    Slot slot = heap.top();
    heap.pop();
    slot.first += cost;
    heap.push(slot);
    return slot.second;
  };
  for (const Block& block : blocks) {
    if (block.kind == 0) {
      balance.baseline_worker[block.index] = take(block.cost);
    } else {
      const auto& space = plan.spaces[block.index];
      for (std::uint64_t i = 0; i < space.size; ++i) {
        balance.unit_worker[first_unit[block.index] + i] = take(block.cost);
      }
    }
  }
  // Loads are recomputed by summation in worker order: the heap's running
  // sums are the same numbers but this keeps them independent of heap order.
  for (size_t b = 0; b < plan.baselines.size(); ++b) {
    balance.load[balance.baseline_worker[b]] += plan.baselines[b].cost;
  }
  for (size_t u = 0; u < plan.units.size(); ++u) {
    balance.load[balance.unit_worker[u]] += plan.unit_cost(plan.units[u]);
  }
  double sum = 0;
  for (double l : balance.load) {
    sum += l;
    balance.max_load = std::max(balance.max_load, l);
  }
  balance.mean_load = sum / workers;
  return balance;
}

std::vector<std::vector<std::uint64_t>> one_step_neighbours(const std::vector<nlohmann::json>& settings) {
  auto number = [](const nlohmann::json& v) { return v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>(); };
  auto numeric = [](const nlohmann::json& v) { return v.is_number() || v.is_boolean(); };
  std::map<std::string, std::vector<double>> values;  // per parameter, sorted distinct
  for (const auto& s : settings) {
    if (!s.is_object()) continue;
    for (auto it = s.begin(); it != s.end(); ++it) {
      if (numeric(*it)) values[it.key()].push_back(number(*it));
    }
  }
  for (auto& [key, v] : values) {
    std::sort(v.begin(), v.end());
    v.erase(std::unique(v.begin(), v.end()), v.end());
  }
  auto rank = [&](const std::string& key, const nlohmann::json& v) {
    const auto& vs = values[key];
    return std::lower_bound(vs.begin(), vs.end(), number(v)) - vs.begin();
  };
  std::vector<std::vector<std::uint64_t>> out(settings.size());
  for (std::size_t i = 0; i < settings.size(); ++i) {
    const auto& a = settings[i];
    for (std::size_t j = 0; j < settings.size(); ++j) {
      const auto& b = settings[j];
      if (i == j || !a.is_object() || !b.is_object() || a.size() != b.size()) continue;
      int differing = 0;
      bool adjacent = true;
      for (auto it = a.begin(); it != a.end() && adjacent; ++it) {
        auto other = b.find(it.key());
        if (other == b.end()) {
          adjacent = false;
        } else if (*other != *it) {
          ++differing;
          adjacent = numeric(*it) && numeric(*other) && std::abs(rank(it.key(), *it) - rank(it.key(), *other)) == 1;
        }
      }
      if (adjacent && differing == 1) out[i].push_back(j);
    }
  }
  return out;
}

}  // namespace diffsearch::partition
