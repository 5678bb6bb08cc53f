// The search strategy's command-line options, shared by `search` (which runs
// it) and `plan` (which estimates what it will cost).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "coordinator/strategy.h"

namespace diffsearch::cli {

struct StrategyArgs {
  std::string strategy = "frontier";
  std::string race_prompts = "4,8,16,32";
  double confidence = 0.99;
  bool assume_monotone = false;
  bool no_assume_monotone = false;  // the default; kept so recorded commands still run
  std::string combine = "fronts";
  int calibration = 12;
  double speed_margin = 0.05;
  double speed_tolerance = 0.01;
  int polish = 1;
  double loss_tolerance = 0;
};

void add_strategy_options(CLI::App& sub, StrategyArgs& args);
// Checks the values (InputError naming the option) and returns the knobs.
coordinator::FrontierOptions frontier_options(const StrategyArgs& args, int samples);

}  // namespace diffsearch::cli
