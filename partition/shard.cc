// Shards of a plan: parsing "I/K" and the cost-balanced, order-independent
// assignment of baseline groups to shards.
#include "partition/shard.h"

#include <algorithm>
#include <numeric>

#include "io/error.h"

namespace diffsearch::partition {

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto digits = [](const std::string& s) {
    return !s.empty() && s.size() <= 6 && s.find_first_not_of("0123456789") == std::string::npos;
  };
  const std::string i = slash == std::string::npos ? "" : text.substr(0, slash);
  const std::string k = slash == std::string::npos ? "" : text.substr(slash + 1);
  if (!digits(i) || !digits(k)) {
    throw InputError("--shard \"" + text + "\": expected I/K, shard I (0 to K-1) of K, as in 0/4 " +
                     "(a job array passes $SLURM_ARRAY_TASK_ID/K)");
  }
  Shard shard{std::stoi(i), std::stoi(k)};
  if (shard.count < 1 || shard.index >= shard.count) {
    throw InputError("--shard " + text + ": shard numbers run from 0 to K-1 (" +
                     (shard.count < 1 ? std::string("K must be at least 1") :
                                        "0 to " + std::to_string(shard.count - 1)) + ")");
  }
  return shard;
}

std::string shard_text(const Shard& shard) {
  return std::to_string(shard.index) + "/" + std::to_string(shard.count);
}

std::vector<int> shard_of_baselines(const Plan& plan, int count) {
  DIFFSEARCH_ASSERT(count >= 1);
  const std::size_t groups = plan.baselines.size();
  if (static_cast<std::size_t>(count) > groups) {
    throw InputError("--shard I/" + std::to_string(count) + ": the tasks have " + std::to_string(groups) +
                     " baseline group" + (groups == 1 ? "" : "s") +
                     " (model, sampler, steps, resolution), and a group is never split, so at most " +
                     std::to_string(groups) + " shard" + (groups == 1 ? "" : "s") +
                     " can have work; use K <= " + std::to_string(groups));
  }
  std::vector<double> cost(groups);
  for (std::size_t b = 0; b < groups; ++b) cost[b] = plan.baselines[b].cost;
  for (const auto& space : plan.spaces) cost[space.baseline] += space.unit_cost * static_cast<double>(space.size);
  std::vector<std::size_t> order(groups);
  std::iota(order.begin(), order.end(), 0);
  std::vector<std::string> keys(groups);
  for (std::size_t b = 0; b < groups; ++b) keys[b] = plan.baselines[b].key();
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (cost[a] != cost[b]) return cost[a] > cost[b];
    return keys[a] < keys[b];
  });
  std::vector<int> shard_of(groups, 0);
  std::vector<double> load(static_cast<std::size_t>(count), 0.0);
  for (std::size_t b : order) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();  // first of equals
    shard_of[b] = static_cast<int>(least);
    load[static_cast<std::size_t>(least)] += cost[b];
  }
  return shard_of;
}

}  // namespace diffsearch::partition
