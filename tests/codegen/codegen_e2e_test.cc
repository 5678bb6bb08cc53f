// The whole path through the built executable: `diffsearch search` (fake
// evaluator) over the five original tasks and a category-4 slice, distill,
// codegen; every script compiles, a generated `diffsearch sample` command
// runs on the tiny model, tasks without an answer exit 1 and are named, and
// the resume commands codegen prints are accepted by `diffsearch search`.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;

using diffsearch::testing::CommandResult;

const char* const kOriginalTasks[] = {
    "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by DeepCache with 3.04x speedup "
    "and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DPM-Solver++ sampler with 50 steps, accelerated by DeepCache with 3.05x "
    "speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the UniPCMultistepScheduler sampler with 50 steps, accelerated by DeepCache "
    "with 3.04x speedup and precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ToMe with 1.3x speedup and "
    "precision loss not exceeding 0.02",
    "Generate a SD1.5 pipeline using the DPM-Solver++ with 20 steps, accelerated by T-Gate with 1.44x speedup and "
    "precision loss not exceeding 0.02",
};

class CodegenE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("codegen_e2e");
    const std::string models = std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models";
    write("models.json", "{\"SD1.5\": \"" + models + "/tiny-sd15\", \"SD2.1\": \"" + models +
                             "/tiny-sd21\", \"SDXL\": \"" + models + "/tiny-sdxl\"}\n");
    // Large enough that the fake evaluator's random speedups reach every
    // target of the slice within the loss bound.
    write("space.json",
          R"({"deepcache": {"cache_interval": [2, 3, 4, 5, 6, 8, 10], "cache_branch_id": [0, 1, 2]},
              "tgate": {"gate_step_fraction": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
                        "sp_interval": [1, 3, 5], "warm_up": [0, 2]},
              "tome": {"ratio": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], "max_downsample": [1, 2]}})");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << text;
  }
  std::string read(const std::string& name) const { return diffsearch::testing::read_text_file(dir_ / name); }
  // Runs `command` in the test's folder.
  CommandResult shell(const std::string& command) const {
    return diffsearch::testing::run_command("cd '" + dir_.string() + "' && " + command + " 2>&1");
  }
  CommandResult diffsearch(const std::string& args) const { return shell(std::string("'") + DIFFSEARCH_BIN + "' " + args); }
  std::string search_args(const std::string& tasks, const std::string& out, const std::string& evaluator) const {
    return "search --tasks " + tasks + " --models models.json --clip " + DIFFSEARCH_TEST_DATA +
           "/fixtures/models/tiny-clip --space space.json --out " + out +
           " --num-samples 2 --speed-measure macs --resolution SD1.5=64 --evaluator " + evaluator +
           " --journal-sync 1 --progress-interval 1000";
  }

  fs::path dir_;
};

TEST_F(CodegenE2e, OriginalTasksAndACategoryFourSliceBecomeScripts) {
  std::string tasks;
  for (const char* t : kOriginalTasks) tasks += std::string(t) + "\n";
  write("tasks.txt", tasks);
  // The category-4 slice: SD1.5, DDIM, 20 steps (six accelerators x seven targets).
  auto r = diffsearch("grid --category 4 | grep 'SD1.5 pipeline using the DDIM sampler with 20 steps' >> tasks.txt");
  ASSERT_EQ(r.code, 0) << r.out;
  // Exhaustive: the fake evaluator's landscape is a hash, with none of the
  // structure the frontier strategy assumes (that one is tested on the
  // synthetic landscape).
  r = diffsearch(search_args("tasks.txt", "r.h5", "fake") + " --strategy exhaustive");
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("distill r.h5 --tasks tasks.txt -o search_params.json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto params = nlohmann::json::parse(read("search_params.json"));
  ASSERT_EQ(params["_counts"], nlohmann::json({{"ok", 47}})) << params["_counts"];

  // From another folder: the templates are inside the executable.
  r = shell("mkdir elsewhere && cd elsewhere && '" + std::string(DIFFSEARCH_BIN) +
            "' codegen --params ../search_params.json --tasks ../tasks.txt -o ../code --results ../r.h5");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto index = nlohmann::json::parse(read("code/index.json"));
  ASSERT_EQ(index["scripts"].size(), 47u);
  EXPECT_TRUE(index["unanswered"].empty());
  std::size_t scripts = 0;
  std::string files;
  for (const auto& e : fs::directory_iterator(dir_ / "code")) {
    if (e.path().extension() == ".py") {
      ++scripts;
      files += " '" + e.path().string() + "'";
    }
  }
  EXPECT_EQ(scripts, 47u);
  r = shell("/usr/bin/python3 -m py_compile" + files);
  EXPECT_EQ(r.code, 0) << r.out;

  // Each combination of the slice with its package calls, and the header
  // naming where the numbers came from.
  const auto& all = index["scripts"]["sd15/ddim/20/deepcache+tgate+tome/x4.0/loss0.02"];
  const std::string script = read("code/" + all["file"].get<std::string>());
  EXPECT_NE(script.find("tomesd.apply_patch(pipe, **TOME)"), std::string::npos);
  EXPECT_NE(script.find("pipe = TgateSDDeepCacheLoader(pipe, **DEEPCACHE)"), std::string::npos);
  EXPECT_NE(script.find("of ../r.h5, distilled into ../search_params.json"), std::string::npos);
  EXPECT_NE(script.find("RESOLUTION = 64"), std::string::npos);
  EXPECT_NE(script.find("(MAC ratio)"), std::string::npos);
  // The gate step is the measured, absolute one.
  const int gate_step = all["params"]["tgate"]["gate_step"].get<int>();
  EXPECT_NE(script.find("'gate_step': " + std::to_string(gate_step) + ","), std::string::npos);

  // The equivalent diffsearch sample command runs on the tiny model.
  std::string sample = all["sample_command"].get<std::string>();
  const std::string model_dir = "--model MODEL_DIR";
  ASSERT_EQ(sample.rfind("diffsearch sample " + model_dir, 0), 0u) << sample;
  sample.replace(sample.find(model_dir), model_dir.size(),
                 std::string("--model ") + DIFFSEARCH_TEST_DATA + "/fixtures/models/tiny-sd15");
  sample.replace(0, std::string("diffsearch").size(), std::string("'") + DIFFSEARCH_BIN + "'");
  r = shell(sample);
  EXPECT_EQ(r.code, 0) << sample << "\n" << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "image.png")) << r.out;

  // A task the search did not include: named, exit 1, the others written.
  write("more.txt", read("tasks.txt") +
                        "Generate a SDXL pipeline using the DDIM sampler with 25 steps, accelerated by ToMe with 1.5x "
                        "speedup\n");
  r = diffsearch("codegen --params search_params.json --tasks more.txt -o code_more");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("error: no script for 1 of 48 tasks"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  sdxl/ddim/25/tome/x1.5/loss0.02: no answer in search_params.json"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("diffsearch search --tasks more.txt --models MODELS.json --clip CLIP_DIR --out "
                       "NEW_RESULTS.h5 --space SPACE.json --num-samples 2"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(nlohmann::json::parse(read("code_more/index.json"))["scripts"].size(), 47u);
  EXPECT_FALSE(fs::exists(dir_ / "code_more" / "sdxl_ddim_25_tome_x1.5_loss0.02.py"));

  // Bad input: exit 2, naming the file.
  auto changed = params;
  changed["_config"]["seed"] = 7;
  write("changed.json", changed.dump());
  r = diffsearch("codegen --params changed.json --tasks tasks.txt -o code_bad --results r.h5");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("r.h5: not the results file changed.json was distilled from (search configuration fields "
                       "that differ: seed)"),
            std::string::npos)
      << r.out;
  r = diffsearch("codegen --params models.json --tasks tasks.txt -o code_bad");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("models.json: field \"_format\""), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir_ / "code_bad"));
}

// Answers whose every measurement failed: no scripts for them, and both
// resume commands codegen prints (the recorded one, and the one rebuilt from
// the answers' configuration with placeholders filled in) continue that very
// search: `diffsearch search` accepts them as the same configuration.
TEST_F(CodegenE2e, ResumeCommandsContinueTheSearch) {
  write("tasks.txt", std::string(kOriginalTasks[3]) + "\n" + kOriginalTasks[4] +
                         "\nGenerate a SD1.5 pipeline using the DDIM sampler with 20 steps\n");
  auto r = diffsearch(search_args("tasks.txt", "r.h5", "fake:fail_always,fail_every=1") + " --max-attempts 1");
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("distill r.h5 --tasks tasks.txt -o search_params.json");
  ASSERT_EQ(r.code, 0) << r.out;

  r = diffsearch("codegen --params search_params.json --tasks tasks.txt -o code --results r.h5");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("sd15/ddim/50/tome/x1.3/loss0.02: every measurement failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sd15/dpmsolver++/20/tgate/x1.44/loss0.02: every measurement failed"), std::string::npos);
  const auto index = nlohmann::json::parse(read("code/index.json"));
  EXPECT_EQ(index["scripts"].size(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "code" / "sd15_ddim_20_basic.py"));
  std::string recorded = index["resume_command"].get<std::string>();
  ASSERT_NE(recorded.find(" search --tasks tasks.txt "), std::string::npos) << recorded;
  // The search ran with --max-attempts 1: the resume allows more.
  ASSERT_NE(recorded.find(" --max-attempts 4 --resume"), std::string::npos) << recorded;
  EXPECT_NE(r.out.find(recorded), std::string::npos) << r.out;

  const std::string journal_before = read("r.h5.journal");
  const auto rows_before = std::count(journal_before.begin(), journal_before.end(), '\n');
  r = shell(recorded);
  EXPECT_EQ(r.code, 0) << recorded << "\n" << r.out;
  const std::string journal = read("r.h5.journal");
  EXPECT_GT(std::count(journal.begin(), journal.end(), '\n'), rows_before) << "the resume measured nothing";

  // Without --results: rebuilt from _config, placeholders named.
  r = diffsearch("codegen --params search_params.json --tasks tasks.txt -o code2");
  EXPECT_EQ(r.code, 1) << r.out;
  std::string rebuilt = nlohmann::json::parse(read("code2/index.json"))["resume_command"].get<std::string>();
  EXPECT_NE(r.out.find("give codegen --results FILE for the recorded command line"), std::string::npos) << r.out;
  auto fill = [&](const std::string& placeholder, const std::string& value) {
    const auto at = rebuilt.find(placeholder);
    ASSERT_NE(at, std::string::npos) << placeholder << " in " << rebuilt;
    rebuilt.replace(at, placeholder.size(), value);
  };
  fill("mpirun -np N diffsearch", std::string("'") + DIFFSEARCH_BIN + "'");
  fill("MODELS.json", "models.json");
  fill("CLIP_DIR", std::string(DIFFSEARCH_TEST_DATA) + "/fixtures/models/tiny-clip");
  fill("SPACE.json", "space.json");
  fill("RESULTS.h5", "r.h5");
  // The evaluator's options are not part of the configuration; keep failing.
  fill("--evaluator fake", "--evaluator fake:fail_always,fail_every=1 --progress-interval 1000");
  r = shell(rebuilt);
  EXPECT_EQ(r.code, 0) << rebuilt << "\n" << r.out;
  EXPECT_EQ(r.out.find("different search configuration"), std::string::npos) << r.out;
}

}  // namespace
