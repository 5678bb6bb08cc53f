// Scripts from answers in distill's format: one golden script per method
// combination (and the index and README), every script accepted by Python's
// compiler, hostile prompts, keys and device names landing only inside
// string literals, tasks without an ok answer named with the command that
// would measure them, and damaged answer files refused.
#include "codegen/codegen.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "render/escape.h"
#include "io/error.h"
#include "tests/support/test_support.h"

namespace diffsearch::codegen {
namespace {

namespace fs = std::filesystem;

using diffsearch::testing::read_text_file;

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

diffsearch::testing::CommandResult shell(const std::string& cmd) {
  return diffsearch::testing::run_command(cmd + " 2>&1");
}

// The answers file as distill writes it (coordinator/distill.cc), built by
// hand so that each combination gets exactly the setting it should.
class AnswersFile {
 public:
  AnswersFile() {
    json_ = {{"_format", "diffsearch-search-params"},
             {"_version", 1},
             {"_speed_measure", "wall"},
             {"_counts", nlohmann::json::object()},
             {"_rows", 500},
             {"_config",
              {{"tasks", nlohmann::json::array()},
               {"space", nullptr},
               {"samples", 32},
               {"batch_size", 8},
               {"seed", 0},
               {"prompts_fnv1a", "0123456789abcdef"},
               {"dtype", "float16"},
               {"resolution", {{"SD1.5", 512}, {"SD2.1", 768}, {"SDXL", 1024}}},
               {"speed_measure", "wall"},
               {"evaluator", "engine"}}}};
  }

  // Adds the task (searched) with an ok answer; returns the task.
  partition::Task ok(const std::string& sentence, const nlohmann::json& params, double speedup, double loss,
                     const std::string& device = "NVIDIA H100 80GB HBM3", std::optional<double> latency_s = {}) {
    const auto task = partition::parse_task(sentence);
    auto a = answer(task, "ok");
    a["params"] = params;
    a["speedup"] = speedup;
    a["score_loss"] = loss;
    a["clip_base"] = 31.25;
    a["clip_acc"] = 31.25 * (1 - loss);
    a["device"] = device;
    a["rows"] = {static_cast<int>(rows_++) * 7 + 3};
    if (latency_s) a["latency_s"] = *latency_s;
    add(task, a, true);
    return task;
  }

  partition::Task other(const std::string& sentence, const std::string& status, bool searched,
                        const nlohmann::json& params = nlohmann::json::object()) {
    const auto task = partition::parse_task(sentence);
    auto a = answer(task, status);
    a["params"] = params;
    if (status == "infeasible") {
      a["speedup"] = 1.71;
      a["score_loss"] = 0.0312;
      a["device"] = "NVIDIA H200";
      a["rows"] = {11};
    }
    a["units"] = {{"total", 108}, {"measured", status == "not_measured" ? 40 : 108}, {"failed", 0}};
    add(task, a, searched);
    return task;
  }

  nlohmann::json& json() { return json_; }
  std::vector<partition::Task>& tasks() { return tasks_; }

 private:
  nlohmann::json answer(const partition::Task& task, const std::string& status) {
    nlohmann::json methods = nlohmann::json::array();
    for (auto m : task.methods) methods.push_back(partition::method_name(m));
    return {{"task", partition::format_task(task)}, {"status", status},    {"methods", methods},
            {"params", nlohmann::json::object()},   {"speedup", nullptr},  {"score_loss", nullptr},
            {"clip_base", nullptr},                 {"clip_acc", nullptr}, {"device", nullptr},
            {"rows", nlohmann::json::array()},      {"units", {{"total", 1}, {"measured", 1}, {"failed", 0}}}};
  }
  void add(const partition::Task& task, const nlohmann::json& a, bool searched) {
    const auto key = partition::task_key(task);
    json_[key] = a;
    tasks_.push_back(task);
    if (searched) json_["_config"]["tasks"].push_back(key);
  }

  nlohmann::json json_;
  std::vector<partition::Task> tasks_;
  std::size_t rows_ = 0;
};

const nlohmann::json kDeepCache = {{"cache_interval", 3}, {"cache_branch_id", 0}};
const nlohmann::json kTGate = {{"gate_step", 10}, {"sp_interval", 3}, {"fi_interval", 1}, {"warm_up", 0}};
const nlohmann::json kToMe = {{"ratio", 0.5}, {"max_downsample", 1}, {"sx", 2}, {"sy", 2}, {"use_rand", false}};

// One task per method combination, over every model and sampler; the first
// five sentences are the original work's five tasks.
AnswersFile golden_answers() {
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by DeepCache with 3.04x "
       "speedup and precision loss not exceeding 0.02",
       {{"deepcache", {{"cache_interval", 4}, {"cache_branch_id", 0}}}}, 3.1217, 0.0154);
  f.ok("Generate a SD1.5 pipeline using the DPM-Solver++ sampler with 50 steps, accelerated by DeepCache with "
       "3.05x speedup and precision loss not exceeding 0.02",
       {{"deepcache", {{"cache_interval", 4}, {"cache_branch_id", 1}}}}, 3.0833, 0.0171);
  f.ok("Generate a SD1.5 pipeline using the UniPCMultistepScheduler sampler with 50 steps, accelerated by "
       "DeepCache with 3.04x speedup and precision loss not exceeding 0.02",
       {{"deepcache", {{"cache_interval", 5}, {"cache_branch_id", 2}}}}, 3.3102, 0.0192);
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 50 steps, accelerated by ToMe with 1.3x speedup "
       "and precision loss not exceeding 0.02",
       {{"tome", kToMe}}, 1.3529, 0.0089);
  f.ok("Generate a SD1.5 pipeline using the DPM-Solver++ with 20 steps, accelerated by T-Gate with 1.44x speedup "
       "and precision loss not exceeding 0.02",
       {{"tgate", kTGate}}, 1.4712, 0.0103);
  f.ok("Generate a SD2.1 pipeline using the UniPC sampler with 25 steps", nlohmann::json::object(), 1.0, 0.0);
  f.ok("Generate a SDXL pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache and T-Gate with "
       "2.0x speedup",
       {{"deepcache", kDeepCache}, {"tgate", {{"gate_step", 8}, {"sp_interval", 1}, {"fi_interval", 1}, {"warm_up", 0}}}},
       2.2406, 0.0177);
  f.ok("Generate a SD2.1 pipeline using the DPM-Solver++ sampler with 25 steps, accelerated by DeepCache and ToMe "
       "with 2.5x speedup",
       {{"deepcache", kDeepCache}, {"tome", {{"ratio", 0.3}, {"max_downsample", 2}, {"sx", 2}, {"sy", 2}, {"use_rand", false}}}},
       2.6120, 0.0121);
  f.ok("Generate a SDXL pipeline using the UniPC sampler with 50 steps, accelerated by T-Gate and ToMe with a "
       "3.0s latency budget on NVIDIA H100 80GB HBM3",
       {{"tgate", kTGate}, {"tome", {{"ratio", 0.4}, {"max_downsample", 2}, {"sx", 2}, {"sy", 2}, {"use_rand", false}}}},
       1.9031, 0.0143, "NVIDIA H100 80GB HBM3", 2.7144);
  f.ok("Generate a SD1.5 pipeline using the UniPC sampler with 20 steps, accelerated by DeepCache, T-Gate, and ToMe "
       "with 3.0x speedup",
       {{"deepcache", {{"cache_interval", 2}, {"cache_branch_id", 1}}}, {"tgate", kTGate}, {"tome", kToMe}}, 3.0144,
       0.0199);
  return f;
}

CodegenRequest request_for(AnswersFile& f) {
  CodegenRequest r;
  r.params = f.json();
  r.provenance.params_path = "search_params.json";
  r.provenance.results_path = "results.h5";
  r.tasks = f.tasks();
  r.tasks_argument = "--tasks tasks.txt";
  return r;
}

class CodegenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("codegen_test");
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

// Set DIFFSEARCH_UPDATE_GOLDEN=1 to rewrite tests/data/codegen/golden from
// the current output (then read the diff).
TEST_F(CodegenTest, GoldenScriptPerMethodCombination) {
  auto answers = golden_answers();
  const auto result = generate(request_for(answers));
  ASSERT_EQ(result.scripts.size(), 10u);
  EXPECT_TRUE(result.unanswered.empty());
  EXPECT_EQ(result.report(), "");
  write_result(result, dir_.string());

  const fs::path golden = fs::path(DIFFSEARCH_TEST_DATA) / "codegen" / "golden";
  const bool update = std::getenv("DIFFSEARCH_UPDATE_GOLDEN") != nullptr;
  if (update) fs::create_directories(golden);
  std::vector<std::string> names = {"index.json", "README.md"};
  for (const auto& s : result.scripts) names.push_back(s.file_name);
  for (const auto& name : names) {
    const std::string text = read_text_file(dir_ / name);
    if (update) write_text(golden / name, text);
    EXPECT_EQ(text, read_text_file(golden / name)) << name << " differs from tests/data/codegen/golden/" << name;
  }
  // The golden folder holds no script the generator no longer writes.
  std::size_t golden_files = 0;
  for (const auto& e : fs::directory_iterator(golden)) golden_files += e.is_regular_file();
  EXPECT_EQ(golden_files, names.size());
}

TEST_F(CodegenTest, CombinationsUseTheirPackagesInAWorkingOrder) {
  auto answers = golden_answers();
  const auto result = generate(request_for(answers));
  std::map<std::string, std::string> by_key;
  for (const auto& s : result.scripts) by_key[s.key] = s.text;
  auto has = [](const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; };

  const auto& dc = by_key.at("sd15/ddim/50/deepcache/x3.04/loss0.02");
  EXPECT_TRUE(has(dc, "from DeepCache import DeepCacheSDHelper"));
  EXPECT_TRUE(has(dc, "DEEPCACHE = {'cache_branch_id': 0, 'cache_interval': 4}"));
  EXPECT_TRUE(has(dc, "from diffusers import StableDiffusionPipeline, DDIMScheduler"));
  EXPECT_FALSE(has(dc, "tgate") || has(dc, "tomesd"));

  const auto& tgate = by_key.at("sd15/dpmsolver++/20/tgate/x1.44/loss0.02");
  EXPECT_TRUE(has(tgate, "from tgate import TgateSDLoader"));
  EXPECT_TRUE(has(tgate, "TGATE = {'fi_interval': 1, 'gate_step': 10, 'sp_interval': 3, 'warm_up': 0}"));
  EXPECT_TRUE(has(tgate, "return partial(pipe.tgate, **TGATE)"));
  EXPECT_TRUE(has(tgate, "DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)"));

  // DeepCache with T-GATE goes through T-GATE's DeepCache loader, never the
  // helper beside it; SDXL gets the SDXL classes.
  const auto& dc_tgate = by_key.at("sdxl/ddim/20/deepcache+tgate/x2.0/loss0.02");
  EXPECT_TRUE(has(dc_tgate, "pipe = TgateSDXLDeepCacheLoader(pipe, **DEEPCACHE)"));
  EXPECT_FALSE(has(dc_tgate, "from DeepCache import") || has(dc_tgate, "helper.enable()"));
  EXPECT_TRUE(has(dc_tgate, "StableDiffusionXLPipeline"));
  EXPECT_TRUE(has(dc_tgate, "RESOLUTION = 1024"));

  // ToMe is applied before the others.
  const auto& all = by_key.at("sd15/unipc/20/deepcache+tgate+tome/x3.0/loss0.02");
  const auto patch = all.find("tomesd.apply_patch(pipe, **TOME)");
  const auto loader = all.find("pipe = TgateSDDeepCacheLoader(pipe, **DEEPCACHE)");
  ASSERT_NE(patch, std::string::npos);
  ASSERT_NE(loader, std::string::npos);
  EXPECT_LT(patch, loader);
  EXPECT_TRUE(has(all, "TOME = {'max_downsample': 1, 'ratio': 0.5, 'sx': 2, 'sy': 2, 'use_rand': False}"));
  EXPECT_TRUE(has(all, "--accel deepcache:cache_branch_id=1,cache_interval=2 --accel "
                       "tgate:fi_interval=1,gate_step=10,sp_interval=3,warm_up=0 --accel "
                       "tome:max_downsample=1,ratio=0.5,sx=2,sy=2,use_rand=false"));

  const auto& basic = by_key.at("sd21/unipc/25/basic");
  EXPECT_FALSE(has(basic, "DeepCache") || has(basic, "tgate") || has(basic, "tomesd"));
  EXPECT_TRUE(has(basic, "MODEL_ID = 'stabilityai/stable-diffusion-2-1'"));
  EXPECT_TRUE(has(basic, "    return pipe\n"));
}

// A setting that lacks parameters gets the values diffsearch's engine used
// for them, not the loaders' own (T-GATE's DeepCache loaders differ).
TEST_F(CodegenTest, MissingParametersTakeTheEnginesDefaults) {
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache and T-Gate",
       {{"deepcache", {{"cache_branch_id", 2}}}, {"tgate", {{"gate_step", 6}}}}, 2.0, 0.01);
  const auto result = generate(request_for(f));
  ASSERT_EQ(result.scripts.size(), 1u);
  const auto& text = result.scripts[0].text;
  EXPECT_NE(text.find("DEEPCACHE = {'cache_branch_id': 2, 'cache_interval': 1}"), std::string::npos) << text;
  EXPECT_NE(text.find("TGATE = {'fi_interval': 1, 'gate_step': 6, 'sp_interval': 5, 'warm_up': 2}"),
            std::string::npos);
  // The sample command keeps the measured setting as it was.
  EXPECT_NE(text.find("--accel deepcache:cache_branch_id=2 --accel tgate:gate_step=6"), std::string::npos);
}

TEST_F(CodegenTest, PythonCompilesEveryScript) {
  auto answers = golden_answers();
  const auto result = generate(request_for(answers));
  write_result(result, dir_.string());
  std::string files;
  for (const auto& s : result.scripts) {
    files += " " + (dir_ / s.file_name).string();
    EXPECT_TRUE(fs::status(dir_ / s.file_name).permissions() == (fs::status(dir_ / s.file_name).permissions() |
                                                                 fs::perms::owner_exec))
        << s.file_name << " is not executable";
  }
  const auto run = shell("/usr/bin/python3 -m py_compile" + files);
  EXPECT_EQ(run.code, 0) << run.out;
}

// Hostile text in every field that reaches a script: the file stays ASCII,
// compiles to exactly the tree a plain input gives (str constants aside),
// has the same comment lines, and holds each input whole in a str constant.
TEST_F(CodegenTest, HostileInputsLandOnlyInStringLiterals) {
  const std::vector<std::string> hostile = {
      "x'''\"\"\"\\'); import os; os.system('echo pwned')  # \\",
      "\n# -*- coding: utf-7 -*-\n+AAo-import os\r\nexec('1')\\",
      "caf\xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xef\xbb\xbf \xf0\x9f\x98\x80 \xff\xfe\xed\xa0\x80",
      [] {
        const char raw[] = "{{prompt}} {{#if tgate}}\0\x1b[2J";
        return std::string(raw, sizeof raw - 1);
      }(),
  };
  auto answers = golden_answers();
  auto request = request_for(answers);
  std::vector<ScriptFacts> benign, evil;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    ScriptFacts f;
    f.key = "sd15/ddim/50/deepcache+tgate+tome/x3.0/loss0.02";
    f.task = "Generate a SD1.5 pipeline";
    f.setting = partition::setting_from_json({{"deepcache", kDeepCache}, {"tgate", kTGate}, {"tome", kToMe}}, "test");
    f.speedup = 3.1;
    f.score_loss = 0.01;
    f.latency_s = 1.5;
    f.device = "NVIDIA H200";
    f.rows = {1};
    f.params_path = "search_params.json";
    f.results_path = "results.h5";
    f.file_name = "script.py";
    benign.push_back(f);
    const std::string& h = hostile[i];
    f.key = h;
    f.task = h + " task";
    f.prompt = h + " prompt";
    f.device = h + " device";
    f.params_path = h + " params";
    f.results_path = h + " results";
    f.file_name = h + " file";
    evil.push_back(f);
  }
  std::string files;
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    write_text(dir_ / ("benign" + std::to_string(i) + ".py"), render_script(benign[i]));
    write_text(dir_ / ("evil" + std::to_string(i) + ".py"), render_script(evil[i]));
    files += " " + (dir_ / ("benign" + std::to_string(i) + ".py")).string() + " " +
             (dir_ / ("evil" + std::to_string(i) + ".py")).string();
  }
  const auto run = shell("/usr/bin/python3 " DIFFSEARCH_SOURCE_DIR "/tests/codegen/python_shape.py" + files);
  ASSERT_EQ(run.code, 0) << run.out;
  const auto shapes = nlohmann::json::parse(run.out);
  ASSERT_EQ(shapes.size(), 2 * hostile.size());
  auto hex = [](const std::string& s) {
    std::string out;
    char buf[3];
    for (unsigned char c : s) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      out += buf;
    }
    return out;
  };
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    const auto& b = shapes[2 * i];
    const auto& e = shapes[2 * i + 1];
    EXPECT_TRUE(e["ascii"].get<bool>()) << i;
    EXPECT_EQ(e["shape"], b["shape"]) << "input " << i << " changed the code";
    EXPECT_EQ(e["comment_lines"], b["comment_lines"]) << "input " << i << " changed the comments";
    const auto strings = e["strings"].get<std::vector<std::string>>();
    auto holds = [&](const std::string& text, bool whole) {
      for (const auto& s : strings) {
        // Byte-aligned: compare on even hex offsets only.
        for (std::size_t at = s.find(hex(text)); at != std::string::npos; at = s.find(hex(text), at + 1)) {
          if (at % 2 == 0 && (!whole || s == hex(text))) return true;
        }
      }
      return false;
    };
    EXPECT_TRUE(holds(evil[i].key, true)) << "TASK_KEY " << i;
    EXPECT_TRUE(holds(evil[i].task, true)) << "TASK " << i;
    EXPECT_TRUE(holds(evil[i].prompt, true)) << "DEFAULT_PROMPT " << i;
    EXPECT_TRUE(holds(evil[i].device, false)) << "MEASURED " << i;
  }
}

// Through generate(): a platform name with quotes and line breaks in a task
// file's sentence, a device name from the answers file, a prompt.
TEST_F(CodegenTest, HostilePlatformAndDeviceCompile) {
  AnswersFile f;
  const std::string platform = "GPU ''' \\ \\n caf\xc3\xa9 {{x}} %41";
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe with a 1.5s latency "
       "budget on \"" + platform + "\"",
       {{"tome", kToMe}}, 1.4, 0.01, "evil\n'''device\"\"\"\\", 1.2);
  auto request = request_for(f);
  request.prompt = "a \"quoted\" 'prompt'\n\\ with caf\xc3\xa9";
  const auto result = generate(request);
  ASSERT_EQ(result.scripts.size(), 1u);
  EXPECT_NE(result.scripts[0].file_name.find("lat1.5s@GPU_"), std::string::npos) << result.scripts[0].file_name;
  EXPECT_EQ(result.scripts[0].file_name.find('/'), std::string::npos);
  write_result(result, dir_.string());
  const auto run = shell("/usr/bin/python3 -m py_compile " + (dir_ / result.scripts[0].file_name).string());
  EXPECT_EQ(run.code, 0) << run.out;
  const auto shape = shell("/usr/bin/python3 " DIFFSEARCH_SOURCE_DIR "/tests/codegen/python_shape.py " +
                           (dir_ / result.scripts[0].file_name).string());
  ASSERT_EQ(shape.code, 0) << shape.out;
  EXPECT_TRUE(nlohmann::json::parse(shape.out)[0]["ascii"].get<bool>());
  // The README's table keeps one row per script whatever the cells hold.
  const std::string readme = read_text_file(dir_ / "README.md");
  std::size_t rows = 0;
  std::istringstream lines(readme);
  for (std::string line; std::getline(lines, line);) rows += line.rfind("| sd15", 0) == 0;
  EXPECT_EQ(rows, 1u) << readme;
}

TEST_F(CodegenTest, TasksWithoutAnOkAnswerGetNoScriptAndAreNamed) {
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 1.5x speedup",
       {{"deepcache", kDeepCache}}, 1.9, 0.01);
  const auto not_measured = f.other(
      "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 3.0x speedup",
      "not_measured", true);
  const auto infeasible = f.other(
      "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 4.0x speedup",
      "infeasible", true, {{"deepcache", kDeepCache}});
  const auto failed = f.other(
      "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe with 1.2x speedup",
      "failed", true);
  // Asked for, but in no answer at all.
  const auto absent = partition::parse_task(
      "Generate a SDXL pipeline using the DDIM sampler with 25 steps, accelerated by ToMe with 1.5x speedup");
  f.tasks().push_back(absent);
  auto request = request_for(f);
  request.provenance.results_path = "";
  f.json()["_config"]["space"] = {{"deepcache", {{"cache_interval", {2, 3}}}}};
  request.params = f.json();
  const auto result = generate(request);

  ASSERT_EQ(result.scripts.size(), 1u);
  EXPECT_EQ(result.scripts[0].key, "sd15/ddim/20/deepcache/x1.5/loss0.02");
  ASSERT_EQ(result.unanswered.size(), 4u);
  EXPECT_EQ(result.unanswered[0].key, partition::task_key(not_measured));
  EXPECT_EQ(result.unanswered[0].status, "not_measured");
  EXPECT_TRUE(result.unanswered[0].resumable);
  EXPECT_NE(result.unanswered[0].reason.find("40 of 108"), std::string::npos) << result.unanswered[0].reason;
  EXPECT_EQ(result.unanswered[1].status, "infeasible");
  EXPECT_FALSE(result.unanswered[1].resumable);
  EXPECT_NE(result.unanswered[1].reason.find("1.71x at loss 0.0312"), std::string::npos) << result.unanswered[1].reason;
  EXPECT_EQ(result.unanswered[2].status, "failed");
  EXPECT_TRUE(result.unanswered[2].resumable);
  EXPECT_EQ(result.unanswered[3].key, partition::task_key(absent));
  EXPECT_EQ(result.unanswered[3].status, "missing");

  // The requested tasks are not the search's (one more), so the resume
  // command names that list by a placeholder; the options come from _config.
  EXPECT_EQ(result.resume_command.find("mpirun -np N diffsearch search --tasks SEARCHED_TASKS.txt --models "
                                       "MODELS.json --clip CLIP_DIR --out RESULTS.h5 --space SPACE.json "
                                       "--num-samples 32 --batch-size 8 --seed 0 --device cuda --dtype float16 "
                                       "--speed-measure wall --strategy exhaustive --resume --max-attempts 6"),
            0u)
      << result.resume_command;
  EXPECT_EQ(result.search_command.find("mpirun -np N diffsearch search --tasks tasks.txt --models MODELS.json "
                                       "--clip CLIP_DIR --out NEW_RESULTS.h5"),
            0u)
      << result.search_command;
  const std::string report = result.report();
  for (const auto& u : result.unanswered) EXPECT_NE(report.find(u.key + ": "), std::string::npos) << report;
  EXPECT_NE(report.find(result.resume_command), std::string::npos);
  EXPECT_NE(report.find(result.search_command), std::string::npos);
  EXPECT_NE(report.find("SEARCHED_TASKS.txt: the task list that search was given"), std::string::npos) << report;
  EXPECT_EQ(result.index["unanswered"].size(), 4u);
  EXPECT_EQ(result.index["scripts"].size(), 1u);

  // A script from an earlier run for a task that has lost its answer goes;
  // a file that is not ours stays.
  write_text(dir_ / (file_safe_key(partition::task_key(not_measured)) + ".py"),
             "#!/usr/bin/env python3\n# Generated by `diffsearch codegen` (docs/codegen.md). Pure ASCII.\n");
  write_text(dir_ / (file_safe_key(partition::task_key(failed)) + ".py"), "# mine\nprint(1)\n");
  write_result(result, dir_.string());
  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir_)) files.insert(e.path().filename().string());
  EXPECT_EQ(files, (std::set<std::string>{"README.md", "index.json", "sd15_ddim_20_deepcache_x1.5_loss0.02.py",
                                          file_safe_key(partition::task_key(failed)) + ".py"}));
  const std::string readme = read_text_file(dir_ / "README.md");
  EXPECT_NE(readme.find("## Tasks without a script"), std::string::npos);
  EXPECT_NE(readme.find("1 of\n5 tasks have a script"), std::string::npos) << readme;
}

// The rebuilt command carries the file's strategy and the knobs that differ
// from their defaults (a resume with others is refused); a configuration
// without a strategy was exhaustive.
TEST_F(CodegenTest, RebuiltCommandCarriesTheStrategy) {
  AnswersFile f;
  f.other("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe", "not_measured", true);
  f.json()["_config"]["strategy"] = "frontier";
  f.json()["_config"]["frontier"] = {{"race_prompts", {2, 4}}, {"confidence", 0.999}, {"assume_monotone", false},
                                     {"combine", "fronts"}, {"calibration", 12}, {"speed_margin", 0.05},
                                     {"speed_tolerance", 0.01}};
  auto request = request_for(f);
  std::string command = generate(request).resume_command;
  // No "polish": searched without it (before it existed).
  EXPECT_NE(command.find(" --race-prompts 2,4 --confidence 0.999 --polish 0 --resume"),
            std::string::npos)
      << command;
  EXPECT_EQ(command.find("--strategy"), std::string::npos) << command;
  EXPECT_EQ(command.find("--combine"), std::string::npos) << command;
  EXPECT_EQ(command.find("monotone"), std::string::npos) << "not assuming is the default: " << command;
  f.json()["_config"]["frontier"]["assume_monotone"] = true;
  command = generate(request_for(f)).resume_command;
  EXPECT_NE(command.find(" --assume-monotone"), std::string::npos) << command;
  f.json()["_config"]["frontier"]["assume_monotone"] = false;
  f.json()["_config"]["frontier"]["polish"] = 1;  // the default: nothing to say
  command = generate(request_for(f)).resume_command;
  EXPECT_EQ(command.find("--polish"), std::string::npos) << command;
  f.json()["_config"]["frontier"]["polish"] = 2;
  command = generate(request_for(f)).resume_command;
  EXPECT_NE(command.find(" --polish 2 --resume"), std::string::npos) << command;
  EXPECT_EQ(command.find("--loss-tolerance"), std::string::npos) << "0, absent, is the default: " << command;
  f.json()["_config"]["frontier"]["loss_tolerance"] = 0.002;
  command = generate(request_for(f)).resume_command;
  EXPECT_NE(command.find(" --polish 2 --loss-tolerance 0.002 --resume"), std::string::npos) << command;
  f.json()["_config"].erase("strategy");
  f.json()["_config"].erase("frontier");
  command = generate(request_for(f)).resume_command;
  EXPECT_NE(command.find(" --strategy exhaustive --resume"), std::string::npos) << command;
}

// With the search's own task list and its recorded command line, the resume
// command is that line with --resume.
TEST_F(CodegenTest, ResumeCommandFromTheRecordedSearch) {
  AnswersFile f;
  f.other("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe", "not_measured", true);
  auto request = request_for(f);
  auto result = generate(request);
  EXPECT_EQ(result.resume_command.find("mpirun -np N diffsearch search --tasks tasks.txt --models MODELS.json "
                                       "--clip CLIP_DIR --out results.h5 --num-samples 32"),
            0u)
      << result.resume_command;
  EXPECT_TRUE(result.search_command.empty());
  request.provenance.search_command_line = "/opt/diffsearch search --tasks t.txt --out r.h5";
  request.provenance.search_processes = 5;
  result = generate(request);
  EXPECT_EQ(result.resume_command, "mpirun -np 5 /opt/diffsearch search --tasks t.txt --out r.h5 --resume");

  // Failed units are retried only with more attempts than the search had.
  AnswersFile g;
  g.other("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe", "failed", true);
  request = request_for(g);
  request.provenance.search_command_line = "diffsearch search --tasks t.txt --max-attempts=2 --out r.h5";
  request.provenance.search_processes = 1;
  EXPECT_EQ(generate(request).resume_command, "diffsearch search --tasks t.txt --max-attempts=5 --out r.h5 --resume");
  request.provenance.search_command_line = "diffsearch search --tasks t.txt --max-attempts 3 --out r.h5";
  EXPECT_EQ(generate(request).resume_command, "diffsearch search --tasks t.txt --max-attempts 6 --out r.h5 --resume");
  request.provenance.search_command_line = "diffsearch search --tasks t.txt";
  EXPECT_EQ(generate(request).resume_command, "diffsearch search --tasks t.txt --resume --max-attempts 6");
}

// A task the search included but the answers file lacks (distilled for
// fewer tasks): the fix is another distill, not another search.
TEST_F(CodegenTest, TaskSearchedButNotDistilled) {
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps", nlohmann::json::object(), 1.0, 0.0);
  f.json().erase("sd15/ddim/20/basic");
  const auto result = generate(request_for(f));
  ASSERT_EQ(result.unanswered.size(), 1u);
  EXPECT_EQ(result.unanswered[0].status, "missing");
  EXPECT_EQ(result.unanswered[0].reason,
            "no answer in search_params.json, though its search included the task: distill again with it "
            "(diffsearch distill results.h5 --tasks tasks.txt -o search_params.json)");
  EXPECT_TRUE(result.resume_command.empty());
  EXPECT_TRUE(result.search_command.empty());
}

// Found by fuzz/search_params_fuzz.cc: a top-level "_speed_measure" that is
// not a string, or a frontier knob of another type in "_config", escaped as a
// JSON library type_error (exit 1, no file named). The first is an
// InputError naming the file and field; the knobs are left out of commands.
TEST_F(CodegenTest, FieldsOfOtherTypesAreInputErrorsOrLeftOut) {
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache",
       {{"deepcache", kDeepCache}}, 2.0, 0.01);
  auto request = request_for(f);
  request.params["_speed_measure"] = 3;
  try {
    generate(request);
    ADD_FAILURE() << "a numeric _speed_measure was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("search_params.json: field \"_speed_measure\": expected a string, found 3"),
              std::string::npos) << e.what();
  }
  request = request_for(f);
  request.params["_config"] = {{"strategy", "frontier"}, {"frontier", {{"assume_monotone", "no"}, {"combine", 7}}}};
  request.tasks.push_back(partition::parse_task("Generate a SD2.1 pipeline using the DDIM sampler with 20 steps"));
  const auto result = generate(request);
  EXPECT_EQ(result.search_command.find("--combine"), std::string::npos) << result.search_command;
  EXPECT_EQ(result.search_command.find("monotone"), std::string::npos) << result.search_command;
}

TEST_F(CodegenTest, DamagedAnswerFilesAreRefused) {
  auto expect_input_error = [&](const nlohmann::json& params, const std::string& needle) {
    AnswersFile f;
    f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache",
         {{"deepcache", kDeepCache}}, 2.0, 0.01);
    auto request = request_for(f);
    request.params = params.is_null() ? f.json() : params;
    if (params.is_null()) request.params["sd15/ddim/20/deepcache/max/loss0.02"]["params"] = {{"tome", kToMe}};
    try {
      generate(request);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_input_error(nlohmann::json::array(), "search_params.json: expected a JSON object");
  expect_input_error({{"_format", "other"}}, "search_params.json: field \"_format\"");
  expect_input_error({{"_format", "diffsearch-search-params"}, {"_version", 2}}, "field \"_version\": expected 1");
  expect_input_error(nullptr, "field \"sd15/ddim/20/deepcache/max/loss0.02.params\": expected settings of the "
                              "task's methods (deepcache)");
  AnswersFile f;
  f.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache",
       {{"deepcache", {{"cache_interval", "three"}}}}, 2.0, 0.01);
  try {
    generate(request_for(f));
    ADD_FAILURE() << "no error for a string parameter";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("deepcache.cache_interval"), std::string::npos) << e.what();
  }
  AnswersFile g;
  g.ok("Generate a SD1.5 pipeline using the DDIM sampler with 20 steps", nlohmann::json::object(), 1.0, 0.0);
  g.json()["sd15/ddim/20/basic"]["speedup"] = "fast";
  try {
    generate(request_for(g));
    ADD_FAILURE() << "no error for a string speedup";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("\"sd15/ddim/20/basic.speedup\": expected a number or null"),
              std::string::npos)
        << e.what();
  }
}

TEST(FileSafeKey, KeysBecomeFlatFileNames) {
  EXPECT_EQ(file_safe_key("sd15/ddim/50/deepcache/x3.04/loss0.02"), "sd15_ddim_50_deepcache_x3.04_loss0.02");
  EXPECT_EQ(file_safe_key("sd15/dpmsolver++/20/basic/lat1.5s@NVIDIA_H200"), "sd15_dpmsolver++_20_basic_lat1.5s@NVIDIA_H200");
  EXPECT_EQ(file_safe_key("a/%27b"), "a_%27b");
  EXPECT_EQ(file_safe_key("../x y\n\xc3\xa9"), "%2E._x%20y%0A%C3%A9");
}

}  // namespace
}  // namespace diffsearch::codegen
