// Which work item each worker gets next: items come from the strategy as
// results settle earlier ones; groups are baselines, so a worker that holds a
// model and its baseline keeps getting that group's items; idle workers
// steal from the largest group; failures are retried elsewhere.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/strategy.h"
#include "coordinator/work_item.h"
#include "io/result_store.h"

namespace diffsearch::coordinator {

struct SearchOptions;
struct SearchPlan;

class Scheduler {
 public:
  // `existing`: the rows of a resumed file: items they settle are settled at
  // once (the strategy replays to where the file left it).
  Scheduler(SearchStrategy& strategy, const SearchPlan& plan, const SearchOptions& options,
            const std::vector<io::EvaluationRow>& existing);

  // Whether a worker whose GPU is `gpu` may measure item `id`: platform
  // tasks' units only on a GPU of that name.
  bool servable(std::size_t id, const std::string& gpu) const;
  // Once every worker has said which GPU it has: the items of platforms none
  // of them has cannot be measured in this run; they stay unmeasured (no
  // row: a later --resume on the right GPUs measures them), and so do those
  // the strategy asks for later. Returns platform -> items dropped.
  std::map<std::string, std::size_t> drop_unservable(const std::set<std::string>& gpus);

  struct Assignment {
    std::size_t id;
    int attempt;
    int batch;
  };
  // `held`: the group the worker holds (-1: none), updated. `live`: workers
  // still working; `holders`: each worker's held group.
  std::optional<Assignment> next(int worker, const std::string& gpu, long& held, const std::set<int>& live,
                                 const std::map<int, long>& holders);
  // Returns false for a result that arrives after the item was settled (a
  // worker that came back after its deadline): the first result wins. A
  // failed row is retried by its error_kind: bad_input never, out_of_memory
  // with half the batch, others on a worker that has not failed it first.
  bool record(std::size_t id, const io::EvaluationRow& row, bool out_of_memory, int worker);
  // A worker was lost (or retired) with `id` in flight: hand it to someone
  // else, without counting an attempt.
  void requeue(std::size_t id);

  const WorkItem& item(std::size_t id) const { return items_[id]; }
  // Nothing queued or in flight, and the strategy asks for nothing more.
  bool finished() const { return done_ == items_.size(); }
  std::size_t total() const { return items_.size(); }
  std::size_t done() const { return done_; }
  std::size_t skipped() const { return skipped_; }
  std::size_t failed() const { return failed_; }
  std::size_t failed_attempts() const { return retried_; }
  std::size_t unservable() const { return unservable_; }
  // Failed attempts recorded in this run, by kind (io/failure.h's names).
  const std::map<std::string, std::size_t>& failures_by_kind() const { return failures_by_kind_; }
  const SearchStrategy& strategy() const { return strategy_; }

 private:
  struct ItemState {
    int attempts = 0;
    int batch = 8;
    bool done = false;
    bool ok = false;
    bool in_retry = false;  // queued in retry_ (a late failure and a requeue must not queue it twice)
    std::set<int> failed_on;
  };
  struct Previous {  // what a resumed file holds for a work key
    const io::EvaluationRow* ok = nullptr;
    int attempts = 0;
    bool out_of_memory = false;
  };
  void feed();
  void settle(std::size_t id, const io::EvaluationRow* ok);
  const std::string& platform_of(std::size_t id) const;
  Assignment start(std::size_t id) const;

  SearchStrategy& strategy_;
  const SearchPlan& plan_;
  int max_attempts_;
  int batch_size_;
  std::vector<WorkItem> items_;
  std::vector<ItemState> state_;
  std::map<std::size_t, std::deque<std::size_t>> queues_;  // baseline -> items
  std::deque<std::size_t> retry_;
  std::vector<std::string> group_platform_;  // per baseline: platform_key, "" for none
  std::set<std::string> dropped_platforms_;  // platform keys no worker has
  std::map<std::string, Previous> previous_;
  bool feeding_ = false;
  std::size_t done_ = 0, skipped_ = 0, failed_ = 0, retried_ = 0, unservable_ = 0;
  std::map<std::string, std::size_t> failures_by_kind_;
};

}  // namespace diffsearch::coordinator
