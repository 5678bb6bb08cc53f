// The original DiffBench scripts' command lines through the built
// executable: `diffsearch traverse` with traversal_search.py's flags (one
// task searched, its answer printed and kept in search_params.json, extended
// by the next, a rerun measuring nothing again, under mpirun too, the
// spellings its users type, everything else refused with the valid values),
// and `diffsearch codegen` with no tasks answering auto_code_gen_v4.py's five
// (each one without an answer named with the traverse command that answers it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::testing::CommandResult;

// The synthetic landscape (no models, no GPU); small spaces so a traverse
// takes a fraction of a second.
const char* kSpace = R"({"deepcache": {"cache_interval": [2, 3, 4, 5, 6, 8], "cache_branch_id": [0, 1, 2]},
                         "tome": {"ratio": [0.2, 0.4, 0.6, 0.7]},
                         "tgate": {"gate_step_fraction": [0.1, 0.3, 0.5, 0.7], "sp_interval": [1, 3], "warm_up": [0]}})";
const char* kOptions = " --space space.json --evaluator synthetic:seed=2,noise=0 --speed-measure macs"
                       " --progress-interval 1000 --journal-sync 1";

class TraverseE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    diffsearch::testing::allow_mpirun_here();
    dir_ = diffsearch::testing::fresh_test_dir("traverse_e2e");
    std::ofstream(dir_ / "space.json") << kSpace;
  }
  void TearDown() override { fs::remove_all(dir_); }

  CommandResult diffsearch(const std::string& args, const std::string& prefix = "") const {
    return diffsearch::testing::run_command("cd '" + dir_.string() + "' && " + prefix + "'" + DIFFSEARCH_BIN + "' " +
                                            args + " 2>&1");
  }
  nlohmann::json params(const std::string& name = "search_params.json") const {
    std::ifstream in(dir_ / name);
    return nlohmann::json::parse(in);
  }
  bool exists(const std::string& name) const { return fs::exists(dir_ / name); }

  fs::path dir_;
};

TEST_F(TraverseE2e, TheOriginalCommandLineSearchesOneTaskAndKeepsItsAnswer) {
  // As traversal_search.py's users type it.
  auto r = diffsearch(std::string("traverse --num_samples 4 --search_targets deepcache --batch_size 2 --pipe sd1.5 "
                                  "--sched ddim --steps 50 --req_speedup 3.04 --req_score_loss 0.02") + kOptions);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string key = "sd15/ddim/50/deepcache/x3.04/loss0.02";
  EXPECT_NE(r.out.find(key + ": ok"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DeepCache cache_branch_id="), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("params: {\"deepcache\":"), std::string::npos) << r.out;
  const std::string results = "traverse_sd15_ddim_50_deepcache_x3.04_loss0.02.h5";
  ASSERT_TRUE(exists(results)) << r.out;
  auto p = params();
  EXPECT_EQ(p["_format"], "diffsearch-search-params");
  ASSERT_EQ(p[key]["status"], "ok") << p.dump(2);
  EXPECT_GE(p[key]["speedup"].get<double>(), 3.04);
  EXPECT_LE(p[key]["score_loss"].get<double>(), 0.02);
  EXPECT_EQ(p["_config"]["samples"], 4);
  EXPECT_EQ(p["_config"]["batch_size"], 2);
  // The answer is the one distill gives for the same file and task.
  std::ofstream(dir_ / "one.txt") << "Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by "
                                     "DeepCache with 3.04x speedup and precision loss not exceeding 0.02\n";
  r = diffsearch("distill " + results + " --tasks one.txt -o distilled.json");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(params("distilled.json")[key], p[key]);

  // No --req_speedup: the largest speedup within the loss bound; hyphenated
  // search options work too; the answers file is extended.
  r = diffsearch(std::string("traverse --num-samples 4 --batch-size 2 --search_targets tome,deepcache --pipe SD1.5 "
                             "--sched dpm-solver++ --steps 20 --req_score_loss 0.05") + kOptions);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string max_key = "sd15/dpmsolver++/20/deepcache+tome/max/loss0.05";
  EXPECT_NE(r.out.find(max_key + ": ok"), std::string::npos) << r.out;
  p = params();
  EXPECT_EQ(p[key]["status"], "ok");
  EXPECT_EQ(p[max_key]["status"], "ok");
  EXPECT_LE(p[max_key]["score_loss"].get<double>(), 0.05);
  EXPECT_EQ(p["_counts"], nlohmann::json({{"ok", 2}}));
  EXPECT_EQ(p["_config"]["tasks"], nlohmann::json({key, max_key}));
  EXPECT_EQ(p["_traverse"].size(), 2u);

  // The same command again continues its file: nothing measured twice, the same answer.
  const auto rows = diffsearch::testing::journal_evaluation_rows((dir_ / results).string());
  r = diffsearch(std::string("traverse --num_samples 4 --search_targets deepcache --batch_size 2 --pipe sd1.5 "
                             "--sched ddim --steps 50 --req_speedup 3.04 --req_score_loss 0.02") + kOptions);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(diffsearch::testing::journal_evaluation_rows((dir_ / results).string()), rows);
  EXPECT_EQ(params()[key], p[key]);
  EXPECT_EQ(params()["_traverse"].size(), 2u);

  // Other measuring options cannot share the answers file: refused, naming the field.
  r = diffsearch(std::string("traverse --num_samples 2 --search_targets tgate --pipe sd1.5 --sched ddim --steps 20 "
                             "--req_speedup 1.2") + kOptions);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("search_params.json: its answers come from searches with other settings (batch_size, "
                       "prompts_fnv1a, samples differ)"),
            std::string::npos) << r.out;
}

TEST_F(TraverseE2e, RunsUnderMpirun) {
  auto r = diffsearch(std::string("traverse --num_samples 4 --search_targets tgate --batch_size 2 --pipe sdxl "
                                  "--sched unipcmultistepscheduler --steps 25 --req_speedup 1.1 --out t.h5") + kOptions,
                      "mpirun --oversubscribe -np 3 ");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string key = "sdxl/unipc/25/tgate/x1.1/loss0.02";
  // Rank 0 alone prints the answer and writes the file.
  EXPECT_NE(r.out.find(key + ": "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(key + ": "), r.out.rfind(key + ": ")) << r.out;
  EXPECT_TRUE(params().contains(key));
  EXPECT_TRUE(exists("t.h5"));
}

TEST_F(TraverseE2e, SpellingsOfTheOriginalAreAcceptedAndOthersRefusedWithTheValidValues) {
  struct Case {
    const char* flags;
    const char* key;
  };
  for (const Case& c : {Case{"--pipe SD1.5 --sched DDIMScheduler --search_targets DeepCache", "sd15/ddim/"},
                        Case{"--pipe sd2.1 --sched DPMSolverMultistepScheduler --search_targets T-Gate", "sd21/dpmsolver++/"},
                        Case{"--pipe SDXL --sched UniPCMultistepScheduler --search_targets tome", "sdxl/unipc/"},
                        Case{"--pipe sd15 --sched dpmsolver++ --search_targets deepcache+tome", "sd15/dpmsolver++/"}}) {
    auto r = diffsearch(std::string("traverse --num_samples 2 --steps 10 --req_speedup 1.1 --params p.json ") + c.flags +
                        " --out " + std::to_string(std::hash<std::string>()(c.flags)) + ".h5" + kOptions);
    EXPECT_EQ(r.code, 0) << c.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(c.key), std::string::npos) << r.out;
  }
  struct Bad {
    const char* flags;
    const char* message;
  };
  for (const Bad& b :
       {Bad{"--pipe sd3 --sched ddim --search_targets deepcache", "--pipe \"sd3\": expected sd1.5, sd2.1 or sdxl"},
        Bad{"--pipe sd1.5 --sched euler --search_targets deepcache",
            "--sched \"euler\": expected ddim, dpm-solver++ or unipc"},
        Bad{"--pipe sd1.5 --sched ddim --search_targets fastcache",
            "--search_targets \"fastcache\": expected deepcache, tgate or tome"},
        Bad{"--pipe sd1.5 --sched ddim --search_targets deepcache --req_speedup 0.5", "--req_speedup 0.5: expected a speedup above 1"},
        Bad{"--pipe sd1.5 --sched ddim --search_targets deepcache --req_score_loss 2", "--req_score_loss 2.0: expected"},
        Bad{"--pipe sd1.5 --sched ddim --search_targets deepcache --steps 0", "--steps 0: expected 1 to 1000"},
        Bad{"--pipe sd1.5 --sched ddim", "--search_targets is required"},
        Bad{"--pipe sd1.5 --sched ddim --search_targets deepcache --grid 4", "--grid"}}) {
    auto r = diffsearch(std::string("traverse ") + b.flags + kOptions);
    EXPECT_EQ(r.code, 2) << b.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(b.message), std::string::npos) << b.flags << "\n" << r.out;
  }
  // The engine needs models: named as the search does.
  auto r = diffsearch("traverse --pipe sd1.5 --sched ddim --search_targets deepcache");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("traverse needs --models MODELS.json"), std::string::npos) << r.out;
}

TEST_F(TraverseE2e, CodegenWithoutTasksAnswersTheOriginalFiveAndNamesTheTraverseOfEachMissingOne) {
  // Nothing answered yet: each of the five gets its traverse command.
  auto r = diffsearch("codegen");
  ASSERT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no script for 5 of the original 5 tasks (search_params.json does not exist yet)"),
            std::string::npos) << r.out;
  const char* commands[] = {
      "diffsearch traverse --pipe sd1.5 --sched ddim --steps 50 --search_targets deepcache --req_speedup 3.04 "
      "--req_score_loss 0.02 --models MODELS.json --clip CLIP_DIR",
      "diffsearch traverse --pipe sd1.5 --sched dpm-solver++ --steps 50 --search_targets deepcache --req_speedup 3.05 "
      "--req_score_loss 0.02",
      "diffsearch traverse --pipe sd1.5 --sched unipc --steps 50 --search_targets deepcache --req_speedup 3.04 "
      "--req_score_loss 0.02",
      "diffsearch traverse --pipe sd1.5 --sched ddim --steps 50 --search_targets tome --req_speedup 1.3 "
      "--req_score_loss 0.02",
      "diffsearch traverse --pipe sd1.5 --sched dpm-solver++ --steps 20 --search_targets tgate --req_speedup 1.44 "
      "--req_score_loss 0.02"};
  for (const char* c : commands) EXPECT_NE(r.out.find(c), std::string::npos) << c << "\n" << r.out;

  // Answer two of them; the message then carries the search's options, and
  // the printed commands, run as printed (the placeholders filled in), answer the rest.
  const std::string opts = " --num_samples 4 --batch_size 2" + std::string(kOptions);
  r = diffsearch("traverse --pipe sd1.5 --sched ddim --steps 50 --search_targets deepcache --req_speedup 3.04" + opts);
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("traverse --pipe sd1.5 --sched ddim --steps 50 --search_targets tome --req_speedup 1.3" + opts);
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("codegen");
  ASSERT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no script for 3 of the original 5 tasks;"), std::string::npos) << r.out;
  EXPECT_TRUE(exists("code/sd15_ddim_50_deepcache_x3.04_loss0.02.py"));
  EXPECT_TRUE(exists("code/sd15_ddim_50_tome_x1.3_loss0.02.py"));
  std::istringstream lines(r.out);
  int ran = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto at = line.find("diffsearch traverse ");
    if (at == std::string::npos) continue;
    std::string command = line.substr(at + std::string("diffsearch ").size());
    EXPECT_NE(command.find(" --num-samples 4 --batch-size 2 --seed 0"), std::string::npos) << command;
    for (const std::string placeholder : {" --models MODELS.json --clip CLIP_DIR", " --space SPACE.json"}) {
      const auto p = command.find(placeholder);
      ASSERT_NE(p, std::string::npos) << command;
      command.erase(p, placeholder.size());
    }
    // The configuration records the evaluator's kind, not its knobs: the same landscape as above.
    const std::string evaluator = " --evaluator synthetic";
    ASSERT_NE(command.find(evaluator), std::string::npos) << command;
    command.replace(command.find(evaluator), evaluator.size(), " --evaluator synthetic:seed=2,noise=0");
    r = diffsearch(command + " --space space.json --progress-interval 1000");
    ASSERT_EQ(r.code, 0) << command << "\n" << r.out;
    ++ran;
  }
  EXPECT_EQ(ran, 3);
  // Every task answered. On this landscape no DeepCache setting of the space
  // reaches 3.04x with UniPC within the bound: that one is named with why,
  // and no traverse command (the same one would give the same answer).
  EXPECT_EQ(params()["_counts"], nlohmann::json({{"ok", 4}, {"infeasible", 1}}));
  r = diffsearch("codegen");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("no script for 1 of the original 5 tasks;"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sd15/unipc/50/deepcache/x3.04/loss0.02: no measured setting meets the goal; the nearest, "),
            std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("diffsearch traverse"), std::string::npos) << r.out;
  std::size_t scripts = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "code")) scripts += e.path().extension() == ".py";
  EXPECT_EQ(scripts, 4u);
  r = diffsearch::testing::run_command("/usr/bin/python3 -m py_compile '" + (dir_ / "code").string() +
                                       "'/*.py 2>&1");
  EXPECT_EQ(r.code, 0) << r.out;
}

}  // namespace
