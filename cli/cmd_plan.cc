// `diffsearch plan`: what a search over a grid or a tasks file would measure:
// distinct method spaces, deduplicated units, shared baselines, the cost
// estimate and how evenly a static assignment spreads it over W workers.
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/strategy_options.h"
#include "coordinator/accounting.h"
#include "coordinator/evaluators.h"
#include "coordinator/simulate.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/prompts.h"
#include "partition/grid.h"
#include "partition/plan.h"

namespace diffsearch::cli {
namespace {

struct PlanArgs {
  int grid = 0;
  std::string tasks_file;
  std::string space_file;
  std::string config_file;
  int workers = 1;
  int samples = 32;
  std::vector<std::string> resolutions;
  bool json = false;
  StrategyArgs strategy;
};

std::map<partition::Model, int> parse_resolutions(const std::vector<std::string>& specs) {
  std::map<partition::Model, int> out;
  for (const auto& spec : specs) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos) {
      throw InputError("--resolution \"" + spec + "\": expected MODEL=PIXELS, as in SDXL=1024");
    }
    const auto model = partition::parse_model(spec.substr(0, eq));
    const std::string px = spec.substr(eq + 1);
    if (px.empty() || px.find_first_not_of("0123456789") != std::string::npos || px.size() > 5) {
      throw InputError("--resolution \"" + spec + "\": \"" + px +
                       "\" is not a whole number of pixels, as in SDXL=1024");
    }
    out[model] = std::stoi(px);
  }
  return out;
}

// The frontier strategy's cost, estimated by running it on the synthetic
// landscape (the evaluator's defaults): per model, over the tasks of one of
// its baselines (the first in plan order: the strategy's share hardly moves
// with sampler and steps, and a whole category would take minutes), its
// share of exhaustive's simulated seconds, applied to the planner's cost of
// that model.
struct FrontierEstimate {
  std::map<partition::Model, double> share;  // frontier seconds / exhaustive seconds
  std::size_t baselines = 0;                 // simulated
  std::size_t items = 0;
  std::size_t images = 0;
};

FrontierEstimate estimate_frontier(const partition::Plan& full, const PlanArgs& args) {
  FrontierEstimate e;
  std::map<partition::Model, std::size_t> first;  // model -> its first baseline
  for (std::size_t b = 0; b < full.baselines.size(); ++b) first.emplace(full.baselines[b].model, b);
  for (const auto& [model, baseline] : first) {
    coordinator::SearchOptions o;
    for (std::size_t t = 0; t < full.tasks.size(); ++t) {
      if (full.task_baseline[t] == baseline) o.tasks.push_back(full.tasks[t]);
    }
    o.samples = args.samples;
    o.resolution = parse_resolutions(args.resolutions);
    if (!args.space_file.empty()) {
      o.space_json = io::read_json_file(args.space_file, "search space");
      o.space_source = args.space_file;
    }
    o.prompts = io::prompts_or_default("");
    o.evaluator = "synthetic";
    o.speed_measure = "wall";
    o.strategy = "frontier";
    o.frontier = frontier_options(args.strategy, args.samples);
    const coordinator::SearchPlan plan = coordinator::make_search_plan(o);
    auto evaluator = coordinator::make_evaluator(o.evaluator, 0);
    const auto sim = coordinator::simulate_search(o, plan, *evaluator, /*keep_prompts=*/false);
    const double exhaustive = coordinator::exhaustive_gpu_seconds(o, plan, evaluator.get(), {});
    e.share[model] = exhaustive > 0 ? sim.gpu_seconds / exhaustive : 1.0;
    e.baselines += 1;
    e.items += sim.items;
    e.images += sim.prompts;
  }
  return e;
}

int run_plan(const PlanArgs& args) {
  if ((args.grid != 0) == !args.tasks_file.empty()) {
    throw InputError("plan needs exactly one of --grid N (1-5) or --tasks FILE");
  }
  partition::GridConfig grid_config;
  if (!args.config_file.empty()) grid_config = partition::read_grid_config(args.config_file);
  const auto tasks = args.grid != 0 ? partition::make_grid(args.grid, grid_config)
                                    : partition::read_tasks_file(args.tasks_file);
  partition::PlanOptions options;
  options.samples = args.samples;
  options.resolution = parse_resolutions(args.resolutions);
  if (!args.space_file.empty()) options.space = partition::read_space_file(args.space_file);
  const auto plan = partition::make_plan(tasks, options);
  const auto balance = partition::assign_lpt(plan, args.workers);

  std::map<int, size_t> per_category;
  for (const auto& t : plan.tasks) per_category[t.category()]++;
  struct ModelStats {
    size_t spaces = 0;
    std::uint64_t units = 0;
    size_t baselines = 0;
    double cost = 0;
  };
  std::map<partition::Model, ModelStats> per_model;
  for (const auto& s : plan.spaces) {
    auto& m = per_model[s.model];
    m.spaces++;
    m.units += s.size;
    m.cost += s.unit_cost * static_cast<double>(s.size);
  }
  for (const auto& b : plan.baselines) {
    auto& m = per_model[b.model];
    m.baselines++;
    m.cost += b.cost;
  }
  const double gpu_hours = plan.total_cost * partition::kSecondsPerCostUnit / 3600.0;
  const nlohmann::json knobs = frontier_options(args.strategy, args.samples).to_json();  // checks them either way
  const bool frontier = args.strategy.strategy == "frontier";
  FrontierEstimate fe;
  double frontier_cost = 0;
  if (frontier) {
    fe = estimate_frontier(plan, args);
    for (const auto& [model, m] : per_model) frontier_cost += fe.share[model] * m.cost;
  }
  const double frontier_share = plan.total_cost > 0 ? frontier_cost / plan.total_cost : 1.0;

  if (args.json) {
    nlohmann::json j;
    j["tasks"] = plan.tasks.size();
    nlohmann::json cats = nlohmann::json::object();
    for (const auto& [c, n] : per_category) cats[std::to_string(c)] = n;
    j["tasks_per_category"] = cats;
    j["method_spaces"] = plan.spaces.size();
    j["units"] = plan.units.size();
    j["units_without_dedup"] = plan.units_without_dedup;
    j["baselines"] = plan.baselines.size();
    j["samples"] = plan.samples;
    j["cost"] = plan.total_cost;
    j["units_cost"] = plan.units_cost;
    j["baselines_cost"] = plan.baselines_cost;
    j["gpu_hours_h200_eager"] = gpu_hours;
    j["strategy"] = args.strategy.strategy;
    if (frontier) {
      j["frontier_share"] = frontier_share;
      j["frontier_gpu_hours_h200_eager"] = gpu_hours * frontier_share;
      j["frontier_simulated_items"] = fe.items;
      j["frontier_knobs"] = knobs;  // what the estimate ran with
      j["frontier_estimate_method"] =
          "simulated on --evaluator synthetic (default landscape), one baseline per model, scaled by the planner's cost";
    }
    j["workers"] = balance.workers;
    j["max_load"] = balance.max_load;
    j["mean_load"] = balance.mean_load;
    j["max_over_mean"] = balance.max_over_mean();
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }

  std::string cats;
  for (const auto& [c, n] : per_category) {
    cats += (cats.empty() ? "" : ", ") + std::string("category ") + std::to_string(c) + ": " +
            std::to_string(n);
  }
  std::printf("tasks: %zu (%s)\n", plan.tasks.size(), cats.c_str());
  std::printf("method spaces: %zu\n", plan.spaces.size());
  std::printf(
      "measurement units: %zu (after deduplication; %llu if every task were measured "
      "on its own)\n",
      plan.units.size(), static_cast<unsigned long long>(plan.units_without_dedup));
  std::printf("baselines: %zu (shared by every method of a model, sampler, steps and resolution)\n",
              plan.baselines.size());
  std::printf("samples per unit: %d\n", plan.samples);
  std::printf(
      "estimated cost if measured exhaustively: %.0f cost units (1 = one SD1.5 512px UNet step with CFG on one "
      "image), about %.1f GPU-hours on one H200 in eager PyTorch\n",
      plan.total_cost, gpu_hours);
  for (const auto& [model, m] : per_model) {
    std::printf("  %-5s  spaces %zu, units %llu, baselines %zu, cost %.0f (%.1f%%)\n",
                partition::model_name(model).c_str(), m.spaces,
                static_cast<unsigned long long>(m.units), m.baselines, m.cost,
                plan.total_cost > 0 ? 100.0 * m.cost / plan.total_cost : 0.0);
  }
  if (frontier) {
    // Which knobs the estimate ran with: the defaults, or the ones given.
    const bool default_knobs = knobs == coordinator::FrontierOptions{}.to_json();
    std::printf(
        "frontier strategy (%s): about %.1f GPU-hours, %.2f%% of exhaustive (%.0fx less), estimated by "
        "running it on the synthetic landscape over one baseline per model (%zu baselines, %zu items, %zu images) "
        "and scaling each model's cost; a real landscape's noise and shape move this (docs/search.md)\n",
        default_knobs ? "the default" : "with the knobs given", gpu_hours * frontier_share, 100 * frontier_share,
        frontier_share > 0 ? 1 / frontier_share : 0.0, fe.baselines, fe.items, fe.images);
  }
  std::printf(
      "balance over %d workers (longest processing time first): max load %.0f, mean "
      "load %.0f, max/mean %.4f\n",
      balance.workers, balance.max_load, balance.mean_load, balance.max_over_mean());
  return 0;
}

Runner setup_plan(CLI::App& sub) {
  auto args = std::make_shared<PlanArgs>();
  auto grid = sub.add_option("--grid", args->grid, "Plan category N's grid (1-5)")
                  ->type_name("N")
                  ->check(CLI::Range(1, 5));
  auto tasks = sub.add_option("--tasks", args->tasks_file,
                              "Plan the tasks of FILE (one sentence a line, # comments)")
                   ->type_name("FILE");
  grid->excludes(tasks);
  sub.add_option("--space", args->space_file,
                 "JSON search-space overrides: method -> parameter -> list of values")
      ->type_name("FILE");
  sub.add_option("--config", args->config_file,
                 "Grid configuration for category 5 (platforms, latency budgets)")
      ->type_name("FILE");
  sub.add_option("--workers,-w", args->workers, "Workers for the static assignment")
      ->type_name("W")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub.add_option("--samples", args->samples, "Prompts measured per unit")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  sub.add_option("--resolution", args->resolutions,
                 "MODEL=PIXELS, repeatable (defaults SD1.5=512, SD2.1=768, SDXL=1024)")
      ->type_name("MODEL=PX");
  sub.add_flag("--json", args->json, "Print the summary as one JSON object");
  add_strategy_options(sub, args->strategy);
  sub.footer("Example:\n  diffsearch plan --grid 4 --workers 8   # 162 method spaces, and the frontier strategy's cost");
  return [args]() { return run_plan(*args); };
}

DIFFSEARCH_COMMAND("plan",
                   "Show the measurement units, baselines, cost and worker balance of a search",
                   setup_plan);

}  // namespace
}  // namespace diffsearch::cli
