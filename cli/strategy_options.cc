// Declaring and checking the strategy options (docs/search.md explains each).
#include "cli/strategy_options.h"

#include "io/error.h"

namespace diffsearch::cli {

void add_strategy_options(CLI::App& sub, StrategyArgs& a) {
  const char* group = "Strategy (docs/search.md)";
  sub.add_option("--strategy", a.strategy,
                 "frontier (races settings over nested prompt prefixes; 1/15 to 1/189 of exhaustive's GPU time on "
                 "category 4's synthetic landscapes, docs/search.md) or exhaustive (every setting at full fidelity)")
      ->capture_default_str()->group(group);
  sub.add_option("--race-prompts", a.race_prompts,
                 "frontier: the nested prompt counts of the race's rounds (--num-samples always ends it)")
      ->type_name("N,N,...")->capture_default_str()->group(group);
  sub.add_option("--confidence", a.confidence,
                 "frontier: one-sided confidence of each elimination (paired t bound over shared prompts)")
      ->capture_default_str()->group(group);
  sub.add_flag("--assume-monotone", a.assume_monotone,
               "frontier: assume loss grows with each parameter's aggressiveness (drops settings unmeasured; "
               "cheaper, but noise and T-GATE's gate step break it: off by default)")
      ->group(group);
  sub.add_flag("--no-assume-monotone", a.no_assume_monotone,
               "frontier: do not assume loss grows with each parameter's aggressiveness (the default)")
      ->group(group);
  sub.add_option("--combine", a.combine,
                 "frontier: a combination's candidates: fronts (product of its methods' surviving settings) or "
                 "product (every setting)")
      ->capture_default_str()->group(group);
  sub.add_option("--speed-calibration", a.calibration,
                 "frontier: combination settings timed to fit the speed model (0: no model, race them all)")
      ->capture_default_str()->group(group);
  sub.add_option("--speed-margin", a.speed_margin,
                 "frontier: least relative margin on predicted speedups (the fit's held-out error widens it)")
      ->capture_default_str()->group(group);
  sub.add_option("--speed-tolerance", a.speed_tolerance,
                 "frontier: relative uncertainty of a speedup measured on a prompt prefix (near a target, kept for it)")
      ->capture_default_str()->group(group);
  sub.add_option("--polish", a.polish,
                 "frontier: rounds of racing a combination's survivors' neighbours outside its methods' fronts (0: off)")
      ->capture_default_str()->group(group);
  sub.add_option("--loss-tolerance", a.loss_tolerance,
                 "frontier: how much more loss (by --quality) than exhaustive's pick an answer may have; near-ties stop racing "
                 "(0: exhaustive's own picks wherever the race can tell them apart)")
      ->capture_default_str()->group(group);
}

coordinator::FrontierOptions frontier_options(const StrategyArgs& a, int samples) {
  if (a.strategy != "frontier" && a.strategy != "exhaustive") {
    throw InputError("--strategy \"" + a.strategy + "\": expected frontier or exhaustive");
  }
  coordinator::FrontierOptions f;
  f.race_prompts.clear();
  std::size_t pos = 0;
  while (pos <= a.race_prompts.size()) {
    std::size_t end = a.race_prompts.find(',', pos);
    if (end == std::string::npos) end = a.race_prompts.size();
    const std::string item = a.race_prompts.substr(pos, end - pos);
    if (item.empty() || item.size() > 6 || item.find_first_not_of("0123456789") != std::string::npos) {
      throw InputError("--race-prompts \"" + a.race_prompts + "\": expected increasing prompt counts, as in 4,8,16,32");
    }
    f.race_prompts.push_back(std::stoi(item));
    pos = end + 1;
  }
  f.confidence = a.confidence;
  if (a.assume_monotone && a.no_assume_monotone) {
    throw InputError("--assume-monotone and --no-assume-monotone: pick one (the default is not to assume)");
  }
  f.assume_monotone = a.assume_monotone;
  f.combine = a.combine;
  f.calibration = a.calibration;
  f.speed_margin = a.speed_margin;
  f.speed_tolerance = a.speed_tolerance;
  f.polish = a.polish;
  f.loss_tolerance = a.loss_tolerance;
  f.validate(samples);
  return f;
}

}  // namespace diffsearch::cli
