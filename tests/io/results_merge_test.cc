// Tests of merging shard files: the shards of one configuration joined in
// shard order with a run record of the merge, the merged file written and
// read back like any results file, and every kind of wrong input refused
// with a message naming the files and what differs.
#include "io/results_merge.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "io/error.h"

namespace diffsearch::io {
namespace {

namespace fs = std::filesystem;

nlohmann::json config(int index, int count, int seed = 0) {
  nlohmann::json c = {{"tasks", {"sd15/ddim/20/deepcache/x2.0/loss0.02"}}, {"samples", 2}, {"seed", seed},
                      {"speed_measure", "macs"}};
  if (count > 1) c["shard"] = {{"index", index}, {"count", count}};
  return c;
}

EvaluationRow row(const std::string& unit, const std::string& status = "ok") {
  EvaluationRow r;
  r.unit_key = unit;
  r.status = status;
  r.speedup_macs = 2.0;
  r.prompts.push_back({0, 30.0, 29.0, 20.0, 0.8});
  return r;
}

// A shard's contents: `units` measured (ok) out of `total`.
MergeInput shard(const std::string& path, int index, int count, std::vector<std::string> units, long long total,
                 int seed = 0) {
  MergeInput in;
  in.path = path;
  in.contents.config = config(index, count, seed);
  in.contents.runs.push_back({{"run_id", "run-" + path}, {"attributes", {{"units_total", total}}}});
  for (const auto& u : units) in.contents.rows.push_back(row(u));
  return in;
}

std::string merge_error(const std::vector<MergeInput>& inputs, bool partial = false) {
  try {
    merge_shards(inputs, "merge-1", nlohmann::json::object(), partial);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(merged without an error)";
}

TEST(ResultsMerge, JoinsShardsInShardOrder) {
  auto s1 = shard("b.h5", 1, 2, {"u3", "u4"}, 2);
  s1.contents.rows.insert(s1.contents.rows.begin(), row("u3", "failed"));  // a retried unit
  const auto s0 = shard("a.h5", 0, 2, {"u1", "u2"}, 2);
  const auto merged = merge_shards({s1, s0}, "merge-1", {{"command_line", "diffsearch merge"}});
  EXPECT_EQ(merged.config, config(0, 1)) << "the configuration of an unsharded search";
  EXPECT_FALSE(merged.config.contains("shard"));
  ASSERT_EQ(merged.rows.size(), 5u);
  const std::vector<std::string> order = {"u1", "u2", "u3", "u3", "u4"};
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(merged.rows[i].unit_key, order[i]);
  ASSERT_EQ(merged.runs.size(), 3u);
  EXPECT_EQ(merged.runs[0]["run_id"], "run-a.h5");
  EXPECT_EQ(merged.runs[1]["run_id"], "run-b.h5");
  const auto& m = merged.runs[2];
  EXPECT_EQ(m["run_id"], "merge-1");
  EXPECT_EQ(m["attributes"]["units_total"], 4);
  EXPECT_EQ(m["attributes"]["shards"], 2);
  EXPECT_EQ(m["attributes"]["merged_from"], "[\"a.h5\",\"b.h5\"]");
  EXPECT_EQ(m["attributes"]["command_line"], "diffsearch merge");
}

TEST(ResultsMerge, MergedFileReadsBackLikeAnyResultsFile) {
  const fs::path dir = fs::temp_directory_path() / ("results_merge_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "all.h5").string();
  const auto merged = merge_shards({shard("a.h5", 0, 2, {"u1"}, 1), shard("b.h5", 1, 2, {"u2"}, 1)}, "merge-1", {});
  write_results_h5(path, merged);
  EXPECT_FALSE(fs::exists(path + ".rebuild.tmp")) << "the temporary file is renamed into place";
  const auto back = read_results(path);
  EXPECT_FALSE(back.from_journal);
  EXPECT_EQ(back.config, merged.config);
  ASSERT_EQ(back.rows.size(), 2u);
  EXPECT_EQ(back.rows[1].unit_key, "u2");
  ASSERT_EQ(back.rows[1].prompts.size(), 1u);
  EXPECT_EQ(back.rows[1].prompts[0].clip_acc, 29.0);
  EXPECT_EQ(back.runs.size(), 3u);
  fs::remove_all(dir);
}

// A frontier search's rows (one unit measured on nested prompt prefixes) keep
// their prompt ranges, global prompt indices and GPU-seconds through the
// merge and the merged file.
TEST(ResultsMerge, KeepsPromptRangesAndGpuSeconds) {
  auto a = shard("a.h5", 0, 2, {}, 1);
  const std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 4}, {4, 8}, {8, 16}};
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    EvaluationRow r = row("u1");
    r.num_samples = 16;
    r.prompt_begin = ranges[i].first;
    r.prompt_end = ranges[i].second;
    r.gpu_seconds = 1.25 * static_cast<double>(i + 1);
    r.prompts.clear();
    for (int64_t p = r.prompt_begin; p < r.prompt_end; ++p) r.prompts.push_back({p, 30.0, 29.0, 20.0, 0.8});
    a.contents.rows.push_back(r);
  }
  const auto b = shard("b.h5", 1, 2, {"u2"}, 1);
  const auto merged = merge_shards({b, a}, "merge-1", {});
  const fs::path dir = fs::temp_directory_path() / ("results_merge_ranges_test_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "all.h5").string();
  write_results_h5(path, merged);
  const auto back = read_results(path);
  fs::remove_all(dir);
  for (const auto* c : {&merged, &back}) {
    ASSERT_EQ(c->rows.size(), 4u);
    for (std::size_t i = 0; i < ranges.size(); ++i) {
      const auto& r = c->rows[i];
      EXPECT_EQ(r.num_samples, 16);
      EXPECT_EQ(r.prompt_begin, ranges[i].first);
      EXPECT_EQ(r.prompt_end, ranges[i].second);
      EXPECT_EQ(r.gpu_seconds, 1.25 * static_cast<double>(i + 1));
      ASSERT_EQ(r.prompts.size(), static_cast<std::size_t>(r.prompt_end - r.prompt_begin));
      EXPECT_EQ(r.prompts.front().prompt_index, r.prompt_begin) << "the global index in the prompt list";
      EXPECT_EQ(r.prompts.back().prompt_index, r.prompt_end - 1);
    }
    EXPECT_EQ(c->rows[3].unit_key, "u2");
  }
}

TEST(ResultsMerge, RefusesWhatIsNotOneSearchsShards) {
  const auto a = shard("a.h5", 0, 2, {"u1"}, 1);
  const auto b = shard("b.h5", 1, 2, {"u2"}, 1);

  auto unsharded = shard("whole.h5", 0, 1, {"u1"}, 1);
  EXPECT_NE(merge_error({a, unsharded}).find("whole.h5: not a shard"), std::string::npos);

  EXPECT_NE(merge_error({a, shard("c.h5", 1, 2, {"u2"}, 1, /*seed=*/7)})
                .find("c.h5: another search configuration than a.h5 (fields that differ: seed)"),
            std::string::npos)
      << merge_error({a, shard("c.h5", 1, 2, {"u2"}, 1, 7)});

  EXPECT_NE(merge_error({a, shard("c.h5", 1, 3, {"u2"}, 1)}).find("c.h5 is shard 1/3 but a.h5 is shard 0/2"),
            std::string::npos);

  EXPECT_NE(merge_error({a, b, shard("a2.h5", 0, 2, {"u9"}, 1)}).find("a.h5 and a2.h5 are both shard 0/2"),
            std::string::npos);

  EXPECT_NE(merge_error({a}).find("shard 1/2 missing"), std::string::npos) << merge_error({a});
  EXPECT_NE(merge_error({shard("x.h5", 1, 4, {"u"}, 1)}).find("shards 0/4, 2/4, 3/4 missing"), std::string::npos);

  EXPECT_NE(merge_error({a, shard("b.h5", 1, 2, {"u1"}, 1)}).find("unit u1 is in both a.h5 and b.h5"),
            std::string::npos);

  auto damaged = b;
  damaged.contents.config["shard"] = {{"index", 5}, {"count", 2}};
  EXPECT_NE(merge_error({a, damaged}).find("b.h5: the configuration's \"shard\" field"), std::string::npos);

  EXPECT_NE(merge_error({}).find("no results files"), std::string::npos);
}

TEST(ResultsMerge, UnfinishedShardRefusedUnlessPartial) {
  const auto a = shard("a.h5", 0, 2, {"u1", "u2"}, 2);
  const auto b = shard("b.h5", 1, 2, {"u3"}, 3);  // 2 of its 3 units still to measure
  const std::string error = merge_error({a, b});
  EXPECT_NE(error.find("b.h5 (shard 1/2) holds 1 of its 3 units"), std::string::npos) << error;
  EXPECT_NE(error.find("--resume"), std::string::npos) << error;
  const auto merged = merge_shards({a, b}, "merge-1", {}, /*allow_incomplete=*/true);
  EXPECT_EQ(merged.rows.size(), 3u);
  EXPECT_EQ(merged.runs.back()["attributes"]["units_total"], 5) << "what the shards were to measure";
}

}  // namespace
}  // namespace diffsearch::io
