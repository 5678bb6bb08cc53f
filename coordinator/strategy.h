// Search strategies: which units to measure next, decided on rank 0 from the
// results recorded so far. Exhaustive measures every unit of the plan; the
// frontier strategy (docs/search.md) measures speed broadly and quality
// narrowly, and reaches the same answers for a sliver of the GPU time.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/work_item.h"
#include "io/result_store.h"

namespace diffsearch::coordinator {

// The frontier strategy's knobs (`diffsearch search --help`, docs/search.md).
struct FrontierOptions {
  // Nested prompt prefixes of the race: round k measures the survivors on
  // prompts [race_prompts[k-1], race_prompts[k]). Values above --num-samples
  // are dropped and --num-samples always ends the list.
  std::vector<int> race_prompts = {4, 8, 16, 32};
  // One-sided confidence of each elimination (paired t bound on the prompts
  // both settings have).
  double confidence = 0.99;
  // Loss never decreases as a setting gets more aggressive on every declared
  // axis (partition::ParamSpec::aggressive): a less aggressive setting that
  // is as fast dominates without measuring quality. Off by default: noise
  // breaks it in exhaustive's own measured losses, and T-GATE's gate step
  // breaks it on the recorded GPU landscape (docs/search.md).
  bool assume_monotone = false;
  // "fronts": a combination's candidates are the product of its methods'
  // surviving settings; "product": every setting of the combination.
  std::string combine = "fronts";
  // Fronts only pay where the combination has more than this many times the
  // settings of its methods together (they are measured first): smaller
  // combinations race every setting.
  static constexpr double kFrontsMinRatio = 4;
  // Rounds of racing a combination's survivors' neighbours in the whole
  // product (one parameter of one method one step away) after its race:
  // what the fronts assumption misses. 0 turns it off.
  int polish = 1;
  // Combination settings timed before the speed model predicts the rest.
  int calibration = 12;
  // The least margin on predicted speedups (the fit's held-out error widens it).
  double speed_margin = 0.05;
  // Relative uncertainty of a speedup measured on part of the prompts: a
  // setting this close to a target is not trusted to reach (or miss) it.
  double speed_tolerance = 0.01;
  // How much more loss (by --quality) than exhaustive's pick an answer may
  // have: before the last round the race drops a setting once a
  // better-looking one surely loses at most this much more, so near-ties
  // stop racing early. 0 (the default): exhaustive's own pick wherever the
  // race can tell.
  double loss_tolerance = 0;

  nlohmann::json to_json() const;
  // Checks the knobs; InputError naming the option otherwise.
  void validate(int samples) const;
  // The prompt schedule for `samples` prompts, ending at `samples`.
  std::vector<int> schedule(int samples) const;
};

// What a strategy is asked for and told. Deterministic by contract: what it
// hands out depends only on the plan and the rows it was given, never on
// their arrival order, so resume, any worker count and shards agree.
class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  virtual std::string name() const = 0;
  // Items that became measurable since the last call, in a fixed order.
  virtual std::vector<WorkItem> take_ready() = 0;
  // An item handed out earlier is settled: its ok row, or nullptr when it
  // failed after every retry or cannot be measured in this run.
  virtual void settle(const WorkItem& item, const io::EvaluationRow* ok) = 0;
  // Every space has reached its answer (nothing more will be handed out).
  virtual bool finished() const = 0;
  // Whether `space` (an index into the plan's spaces) has reached its answer.
  virtual bool space_finished(std::size_t space) const = 0;
  // Spaces done and in all, for progress lines.
  virtual std::pair<std::size_t, std::size_t> spaces_done() const = 0;
};

struct SearchPlan;
struct SearchOptions;
std::unique_ptr<SearchStrategy> make_strategy(const SearchOptions& options, const SearchPlan& plan);

// Replays a strategy over the rows of a results file (first ok row of each
// work item wins; failed attempts up to `max_attempts` settle it as failed):
// what distill and status use to tell which spaces a run has finished.
// Returns the strategy in the state those rows leave it.
std::unique_ptr<SearchStrategy> replay_strategy(const SearchOptions& options, const SearchPlan& plan,
                                                const std::vector<io::EvaluationRow>& rows);

}  // namespace diffsearch::coordinator
