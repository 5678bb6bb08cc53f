// Joining the results files of a sharded search (`diffsearch merge`): every
// shard of one configuration, each once, into the contents an unsharded
// search of that configuration would have written.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/result_store.h"

namespace diffsearch::io {

struct MergeInput {
  std::string path;  // for messages
  ResultsContents contents;
};

// The shards' contents joined: the configuration without its "shard" field,
// the runs and rows of shard 0, then shard 1, ..., then a run record of the
// merge (`merge_run_id`, `merge_attributes` plus "merged_from", "shards" and
// "units_total", the shards' units together). InputError, naming the files
// and the fix, for a file that is not a shard, shards of other
// configurations (naming the fields that differ) or counts, a shard given
// twice or missing, a unit or run in two files, and, unless
// `allow_incomplete`, a shard that has not measured all its units yet.
ResultsContents merge_shards(const std::vector<MergeInput>& inputs, const std::string& merge_run_id,
                             const nlohmann::json& merge_attributes, bool allow_incomplete = false);

}  // namespace diffsearch::io
