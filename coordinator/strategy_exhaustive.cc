// The exhaustive strategy: every unit of every planned space at full
// fidelity, in plan order. It defines the right answer; the frontier
// strategy must reach the same answers for far less.
#include "coordinator/search.h"
#include "coordinator/strategy_internal.h"

namespace diffsearch::coordinator {
namespace {

class ExhaustiveStrategy : public SearchStrategy {
 public:
  ExhaustiveStrategy(const SearchOptions& options, const SearchPlan& plan) {
    const auto& p = plan.plan;
    for (std::size_t b : plan.basic_baselines) {
      if (plan.in_shard[b]) ready_.push_back(make_work_item(p, partition::kNoSpace, 0, b, 0, options.samples));
    }
    remaining_.assign(plan.task_spaces, 0);
    for (std::size_t s = 0; s < plan.task_spaces; ++s) {
      const auto& space = p.spaces[s];
      if (!plan.in_shard[space.baseline]) continue;
      ++spaces_;
      remaining_[s] = space.size;
      for (uint64_t i = 0; i < space.size; ++i) {
        ready_.push_back(make_work_item(p, s, i, space.baseline, 0, options.samples));
      }
    }
    outstanding_ = ready_.size();
  }

  std::string name() const override { return "exhaustive"; }
  std::vector<WorkItem> take_ready() override { return std::move(ready_); }
  void settle(const WorkItem& item, const io::EvaluationRow*) override {
    --outstanding_;
    if (item.space != partition::kNoSpace && --remaining_[item.space] == 0) ++done_;
  }
  bool finished() const override { return outstanding_ == 0; }
  bool space_finished(std::size_t space) const override {
    return space < remaining_.size() && remaining_[space] == 0;
  }
  std::pair<std::size_t, std::size_t> spaces_done() const override { return {done_, spaces_}; }

 private:
  std::vector<WorkItem> ready_;
  std::vector<uint64_t> remaining_;
  std::size_t outstanding_ = 0, spaces_ = 0, done_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> make_exhaustive_strategy(const SearchOptions& options, const SearchPlan& plan) {
  return std::make_unique<ExhaustiveStrategy>(options, plan);
}

}  // namespace diffsearch::coordinator
