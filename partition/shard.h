// Splitting one search among K independent jobs (`--shard I/K`, a Slurm job
// array): whole baseline groups go to one shard each, so no unit and no
// baseline is measured by two shards, and the shards' units together are
// exactly the unsharded plan's.
#pragma once

#include <string>
#include <vector>

#include "partition/plan.h"

namespace diffsearch::partition {

// Shard `index` (0-based) of `count`; count 1 is the whole plan.
struct Shard {
  int index = 0;
  int count = 1;
};

// "I/K" with 0 <= I < K; InputError naming the text and the fix otherwise.
Shard parse_shard(const std::string& text);
// "I/K".
std::string shard_text(const Shard& shard);

// The shard (0..count-1) of each baseline of `plan`, and so of every unit of
// its spaces: groups in order of cost (largest first, ties by key), each to
// the shard with the least cost so far (ties: the lowest index). The same
// plan gives the same assignment whatever the order of its tasks.
// InputError when `count` exceeds the number of baseline groups (a shard
// would have nothing to measure).
std::vector<int> shard_of_baselines(const Plan& plan, int count);

}  // namespace diffsearch::partition
