// The scheduler's bookkeeping: items as the strategy releases them, resume
// from the rows a file already holds, retries by the failure's kind (bad
// input: none; out of memory: a smaller batch; device faults and transient
// errors: another worker first), platform routing, affinity and stealing.
#include "coordinator/scheduler.h"

#include <algorithm>
#include <cassert>

#include "coordinator/evaluators.h"
#include "coordinator/search.h"
#include "io/failure.h"

namespace diffsearch::coordinator {

Scheduler::Scheduler(SearchStrategy& strategy, const SearchPlan& plan, const SearchOptions& options,
                     const std::vector<io::EvaluationRow>& existing)
    : strategy_(strategy), plan_(plan), max_attempts_(std::max(1, options.max_attempts)),
      batch_size_(options.batch_size) {
  for (const auto& b : plan.plan.baselines) {
    group_platform_.push_back(b.platform ? partition::platform_key(*b.platform) : "");
  }
  for (const auto& row : existing) {
    auto& p = previous_[WorkItem::work_key_of(row.unit_key, row.prompt_begin, row.prompt_end)];
    if (row.status == "ok") {
      if (!p.ok) p.ok = &row;
    } else if (parse_failure_kind(row.error_kind) != FailureKind::bad_input) {
      // A bad input was not retried in its run; a resume tries it once more
      // (the input may have been fixed), so it does not count here.
      p.attempts = std::max<int>(p.attempts, static_cast<int>(row.attempt));
      p.out_of_memory |= parse_failure_kind(row.error_kind) == FailureKind::out_of_memory;
    }
  }
  feed();
  // Later items were never asked for before (the strategy is deterministic),
  // and `existing` may move as the store grows.
  previous_.clear();
}

void Scheduler::feed() {
  if (feeding_) return;  // settle() below calls back into feed()
  feeding_ = true;
  while (true) {
    std::vector<WorkItem> ready = strategy_.take_ready();
    if (ready.empty()) break;
    for (auto& item : ready) {
      const std::size_t id = items_.size();
      items_.push_back(std::move(item));
      state_.emplace_back();
      auto& s = state_.back();
      s.batch = batch_size_;
      auto prev = previous_.find(items_[id].work_key());
      if (prev != previous_.end()) {
        if (prev->second.out_of_memory) s.batch = std::max(1, s.batch / 2);
        if (prev->second.ok) {
          s.ok = true;
          ++skipped_;
          settle(id, prev->second.ok);
          continue;
        }
        s.attempts = prev->second.attempts;
        if (s.attempts >= max_attempts_) {
          ++failed_;
          ++skipped_;
          settle(id, nullptr);
          continue;
        }
      }
      const std::string& platform = platform_of(id);
      if (!platform.empty() && dropped_platforms_.count(platform)) {
        s.done = true;
        ++done_;
        ++unservable_;
        continue;
      }
      queues_[items_[id].baseline].push_back(id);
    }
  }
  feeding_ = false;
}

void Scheduler::settle(std::size_t id, const io::EvaluationRow* ok) {
  auto& s = state_[id];
  assert(!s.done);
  s.done = true;
  ++done_;
  strategy_.settle(items_[id], ok);
}

const std::string& Scheduler::platform_of(std::size_t id) const { return group_platform_[items_[id].baseline]; }

bool Scheduler::servable(std::size_t id, const std::string& gpu) const {
  const std::string& p = platform_of(id);
  return p.empty() || p == partition::platform_key(gpu);
}

std::map<std::string, std::size_t> Scheduler::drop_unservable(const std::set<std::string>& gpus) {
  std::set<std::string> have;
  for (const auto& g : gpus) have.insert(partition::platform_key(g));
  for (const auto& p : group_platform_) {
    if (!p.empty() && !have.count(p)) dropped_platforms_.insert(p);
  }
  std::map<std::string, std::size_t> dropped;
  for (auto& [group, queue] : queues_) {
    const std::string& p = group_platform_[group];
    if (p.empty() || !dropped_platforms_.count(p)) continue;
    for (std::size_t id : queue) {
      auto& s = state_[id];
      if (s.done) continue;
      s.done = true;
      ++done_;
      ++unservable_;
      ++dropped[*plan_.plan.baselines[group].platform];
    }
    queue.clear();
  }
  // Retries of those platforms too (a worker that had their GPU retired).
  for (std::size_t id : retry_) {
    auto& s = state_[id];
    const std::string& p = platform_of(id);
    if (s.done || p.empty() || !dropped_platforms_.count(p)) continue;
    s.done = true;
    ++done_;
    ++unservable_;
    ++dropped[*plan_.plan.baselines[items_[id].baseline].platform];
  }
  return dropped;
}

Scheduler::Assignment Scheduler::start(std::size_t id) const {
  const auto& s = state_[id];
  return Assignment{id, s.attempts + 1, s.batch};
}

std::optional<Scheduler::Assignment> Scheduler::next(int worker, const std::string& gpu, long& held,
                                                     const std::set<int>& live, const std::map<int, long>& holders) {
  // Retries first, on a worker that has not failed them (unless all have).
  for (auto it = retry_.begin(); it != retry_.end(); ++it) {
    auto& s = state_[*it];
    if (s.done || !servable(*it, gpu)) continue;
    bool all_failed = std::all_of(live.begin(), live.end(), [&](int w) { return s.failed_on.count(w) > 0; });
    if (s.failed_on.count(worker) && !all_failed) continue;
    const std::size_t id = *it;
    retry_.erase(it);
    s.in_retry = false;
    return start(id);
  }
  auto pop = [&](long group) -> std::optional<std::size_t> {
    auto q = queues_.find(static_cast<std::size_t>(group));
    while (q != queues_.end() && !q->second.empty()) {
      const std::size_t id = q->second.front();
      q->second.pop_front();
      if (!state_[id].done) return id;
    }
    return std::nullopt;
  };
  if (held >= 0) {
    if (auto id = pop(held)) return start(*id);
  }
  // A group nobody holds, largest first; else steal from the largest.
  long best = -1, best_free = -1;
  std::size_t best_size = 0, best_free_size = 0;
  std::set<long> held_by_others;
  for (const auto& [w, g] : holders) {
    if (w != worker && g >= 0) held_by_others.insert(g);
  }
  for (const auto& [group, queue] : queues_) {
    if (queue.empty() || !servable(queue.front(), gpu)) continue;
    if (queue.size() > best_size) {
      best_size = queue.size();
      best = static_cast<long>(group);
    }
    if (!held_by_others.count(static_cast<long>(group)) && queue.size() > best_free_size) {
      best_free_size = queue.size();
      best_free = static_cast<long>(group);
    }
  }
  const long group = best_free >= 0 ? best_free : best;
  if (group < 0) return std::nullopt;
  held = group;
  if (auto id = pop(group)) return start(*id);
  return std::nullopt;
}

bool Scheduler::record(std::size_t id, const io::EvaluationRow& row, bool out_of_memory, int worker) {
  auto& s = state_[id];
  if (s.done) return false;
  if (row.status == "ok") {
    s.ok = true;
    settle(id, &row);
    feed();
    return true;
  }
  const FailureKind kind = parse_failure_kind(row.error_kind);
  s.attempts = std::max<int>(s.attempts, static_cast<int>(row.attempt));
  // Retries go to another worker while one has not failed the unit: what a
  // device fault needs, and no worse for the other kinds.
  s.failed_on.insert(worker);
  ++retried_;
  ++failures_by_kind_[row.error_kind.empty() ? "transient" : row.error_kind];
  if (kind == FailureKind::bad_input || s.attempts >= max_attempts_) {
    // A bad input fails the same way on every worker: recorded, not retried.
    ++failed_;
    settle(id, nullptr);
    feed();
  } else {
    if (out_of_memory || kind == FailureKind::out_of_memory) s.batch = std::max(1, s.batch / 2);
    if (!s.in_retry) retry_.push_back(id);
    s.in_retry = true;
  }
  return true;
}

void Scheduler::requeue(std::size_t id) {
  auto& s = state_[id];
  if (s.done || s.in_retry) return;
  s.in_retry = true;
  retry_.push_front(id);
}

}  // namespace diffsearch::coordinator
