// The frontier strategy against the exhaustive one, answer by answer and
// GPU-second by GPU-second, on synthetic landscapes (category 4, default
// spaces) and on a recorded exhaustive results file (replay). Numbers go to
// docs/search.md. Usage:
//   bench_search_cost synthetic [--grid 4] [--samples 32] [--landscape SPEC]... [--filter EXPR]
//   bench_search_cost replay FILE.h5 --tasks FILE [--samples N]
// (--help lists the frontier knobs it takes.)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "coordinator/distill.h"
#include "coordinator/evaluators.h"
#include "coordinator/search.h"
#include "coordinator/simulate.h"
#include "io/prompts.h"
#include "partition/grid.h"

using namespace diffsearch;

namespace {

struct Outcome {
  nlohmann::json answers;
  double gpu_seconds = 0;
  std::size_t items = 0, images = 0;
  double wall_s = 0;
};

Outcome run(const coordinator::SearchOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const coordinator::SearchPlan plan = coordinator::make_search_plan(o);
  auto evaluator = coordinator::make_evaluator(o.evaluator, 0);
  coordinator::Simulation sim =
      coordinator::simulate_search(o, plan, *evaluator, /*keep_prompts=*/o.strategy == "frontier");
  io::ResultsContents contents;
  contents.config = coordinator::search_config(o, plan.plan);
  contents.rows = std::move(sim.rows);
  Outcome out{coordinator::distill(contents, o.tasks), sim.gpu_seconds, sim.items, sim.prompts, 0};
  out.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

struct Comparison {
  std::size_t tasks = 0, identical = 0, differing = 0, differing_feasible = 0, differing_infeasible_both = 0;
  double worst_excess = 0;
};

Comparison compare(const nlohmann::json& frontier, const nlohmann::json& exhaustive, bool verbose) {
  Comparison c;
  for (const auto& [key, e] : exhaustive.items()) {
    if (key[0] == '_') continue;
    const auto& f = frontier.at(key);
    ++c.tasks;
    if (f.at("status") == e.at("status") && f.at("params") == e.at("params")) {
      ++c.identical;
      continue;
    }
    ++c.differing;
    if (verbose) {
      std::printf("  differs %s: frontier %s %s %s/%s; exhaustive %s %s %s/%s\n", key.c_str(),
                  f.at("status").dump().c_str(), f.at("params").dump().c_str(), f.at("speedup").dump().c_str(),
                  f.at("score_loss").dump().c_str(), e.at("status").dump().c_str(), e.at("params").dump().c_str(),
                  e.at("speedup").dump().c_str(), e.at("score_loss").dump().c_str());
    }
    if (f.at("status") == "ok") {
      const auto task = partition::parse_task(f.at("task").get<std::string>());
      const bool feasible = f.at("speedup").get<double>() >= task.speedup.value_or(0) &&
                            f.at("score_loss").get<double>() <= task.max_score_loss;
      c.differing_feasible += feasible;
      if (e.at("status") == "ok") {
        c.worst_excess =
            std::max(c.worst_excess, f.at("score_loss").get<double>() - e.at("score_loss").get<double>());
      }
    } else if (e.at("status") == f.at("status")) {
      ++c.differing_infeasible_both;  // both infeasible: a different nearest point
    }
  }
  return c;
}

void report(const std::string& name, const Outcome& fr, const Outcome& ex, const Comparison& c) {
  std::printf(
      "%-34s tasks %zu | GPU-s frontier %.4g, exhaustive %.4g, ratio %.1fx | items %zu vs %zu | identical %zu "
      "(%.2f%%) | differing %zu: feasible %zu, both infeasible %zu | worst loss excess %.4f | wall %.1fs + %.1fs\n",
      name.c_str(), c.tasks, fr.gpu_seconds, ex.gpu_seconds, ex.gpu_seconds / fr.gpu_seconds, fr.items, ex.items,
      c.identical, 100.0 * c.identical / c.tasks, c.differing, c.differing_feasible, c.differing_infeasible_both,
      c.worst_excess, fr.wall_s, ex.wall_s);
  std::fflush(stdout);
}

void usage(std::FILE* to, const char* self) {
  std::fprintf(to,
               "usage: %s synthetic [--grid C] [--samples N] [--landscape SPEC]... [--filter EXPR] [KNOBS] [-v]\n"
               "       %s replay FILE.h5 --tasks FILE [--samples N] [KNOBS] [-v]\n"
               "KNOBS (the frontier's, as diffsearch search takes them): --race-prompts N,N,... --confidence P\n"
               "  --loss-tolerance L --assume-monotone --no-assume-monotone --combine fronts|product\n"
               "  --speed-calibration K --polish R\n"
               "Without --landscape: noise-free, noise 1, doubled noise and bumps (docs/search.md).\n",
               self, self);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    usage(stdout, argv[0]);
    return 0;
  }
  if (argc < 2 || (std::strcmp(argv[1], "synthetic") != 0 && std::strcmp(argv[1], "replay") != 0)) {
    usage(stderr, argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  int grid = 4, samples = 32;
  std::string filter, tasks_file, replay_file, space_file;
  std::vector<std::string> landscapes;
  bool verbose = false, monotone = coordinator::FrontierOptions{}.assume_monotone;
  std::string combine = "fronts";
  double confidence = 0.99, loss_tolerance = 0;
  int calibration = 12, polish = coordinator::FrontierOptions{}.polish;
  std::vector<int> race = {4, 8, 16, 32};
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (a == "--grid") grid = std::stoi(next());
    else if (a == "--samples") samples = std::stoi(next());
    else if (a == "--landscape") landscapes.push_back(next());
    else if (a == "--filter") filter = next();
    else if (a == "--tasks") tasks_file = next();
    else if (a == "--space") space_file = next();
    else if (a == "-v") verbose = true;
    else if (a == "--combine") combine = next();
    else if (a == "--no-assume-monotone") monotone = false;
    else if (a == "--assume-monotone") monotone = true;
    else if (a == "--confidence") confidence = std::stod(next());
    else if (a == "--loss-tolerance") loss_tolerance = std::stod(next());
    else if (a == "--speed-calibration") calibration = std::stoi(next());
    else if (a == "--polish") polish = std::stoi(next());
    else if (a == "--race-prompts") {
      race.clear();
      std::string list = next();
      for (std::size_t p = 0; p < list.size();) {
        std::size_t e = list.find(',', p);
        if (e == std::string::npos) e = list.size();
        race.push_back(std::stoi(list.substr(p, e - p)));
        p = e + 1;
      }
    }
    else if (mode == "replay" && replay_file.empty()) replay_file = a;
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  coordinator::SearchOptions o;
  o.tasks = tasks_file.empty() ? partition::make_grid(grid) : partition::read_tasks_file(tasks_file);
  if (!filter.empty()) {
    std::vector<partition::Task> kept;
    for (const auto& t : o.tasks) {
      if (partition::task_key(t).find(filter) != std::string::npos) kept.push_back(t);
    }
    o.tasks = kept;
  }
  o.samples = samples;
  o.prompts = io::prompts_or_default("");
  if (mode == "replay") {
    const auto contents = io::read_results(replay_file);
    o = coordinator::options_from_config(contents.config, o.tasks);
    o.prompts = io::prompts_or_default("");
    o.speed_measure = contents.config.value("speed_measure", std::string("wall"));
    landscapes = {"replay:" + replay_file};
  }
  o.frontier.combine = combine;
  o.frontier.assume_monotone = monotone;
  o.frontier.confidence = confidence;
  o.frontier.loss_tolerance = loss_tolerance;
  o.frontier.race_prompts = race;
  o.frontier.calibration = calibration;
  o.frontier.polish = polish;
  if (landscapes.empty()) {
    landscapes = {"synthetic:seed=0,noise=0,jitter=0", "synthetic:seed=1", "synthetic:seed=2,noise=2",
                  "synthetic:seed=3,bumps=0.1"};
  }
  std::printf("frontier vs exhaustive: %zu tasks, %d prompts, speed by %s\n", o.tasks.size(), o.samples,
              o.speed_measure.c_str());
  for (const auto& landscape : landscapes) {
    o.evaluator = landscape;
    o.strategy = "frontier";
    const Outcome fr = run(o);
    o.strategy = "exhaustive";
    const Outcome ex = run(o);
    report(landscape, fr, ex, compare(fr.answers, ex.answers, verbose));
  }
  return 0;
}
