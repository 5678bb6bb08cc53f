// Tests of the batch script renderer: the #SBATCH lines for GPU, CPU and
// array jobs, the script valid for bash, search arguments that reach the
// search word for word whatever they hold (bash itself reads them back), and
// every inconsistent option refused with its fix.
#include "slurm/batch_script.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/error.h"
#include "tests/support/test_support.h"

namespace diffsearch::slurm {
namespace {

namespace fs = std::filesystem;
using diffsearch::testing::run_command;

BatchOptions gpu_options() {
  BatchOptions o;
  o.nodes = 2;
  o.gpus_per_node = 8;
  o.time = "12:00:00";
  o.partition = "gpu";
  o.account = "proj-42";
  o.diffsearch = "/opt/diffsearch/bin/diffsearch";
  o.workdir = "/scratch/me/run1";
  o.search_args = {"--grid", "4", "--models", "models.json", "--clip", "clip/", "--out", "results.h5",
                   "--device", "cuda"};
  o.render_command = "diffsearch slurm render ...";
  return o;
}

BatchOptions cpu_options() {
  BatchOptions o;
  o.gpus_per_node = 0;
  o.tasks_per_node = 3;
  o.diffsearch = "/usr/bin/diffsearch";
  o.workdir = "/tmp/x";
  o.search_args = {"--tasks", "tasks.txt", "--out", "r.h5", "--device", "cpu", "--resume"};
  return o;
}

// A line that is `line`, or `line` and a comment.
bool has_line(const std::string& script, const std::string& line) {
  std::istringstream in(script);
  std::string l;
  while (std::getline(in, l)) {
    if (l == line || l.rfind(line + "  # ", 0) == 0) return true;
  }
  return false;
}

// A script in a folder of its own (numbered, as a test may hold several).
class ScriptFile {
 public:
  explicit ScriptFile(const std::string& text)
      : dir_(diffsearch::testing::fresh_test_dir("batch_script_test_" + std::to_string(counter_++))),
        path_((dir_ / "job.sh").string()) {
    std::ofstream(path_) << text;
  }
  ~ScriptFile() { fs::remove_all(dir_); }
  const std::string& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path dir_;
  std::string path_;
};

TEST(BatchScript, GpuJobAsksForGpusAndACoordinatorSlot) {
  const std::string s = render_batch_script(gpu_options());
  EXPECT_EQ(s.rfind("#!/bin/bash\n", 0), 0u) << "the shebang comes first";
  for (const char* line :
       {"#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=9", "#SBATCH --gpus-per-node=8", "#SBATCH --cpus-per-gpu=8",
        "#SBATCH --time=12:00:00", "#SBATCH --partition=gpu", "#SBATCH --account=proj-42", "#SBATCH --requeue",
        "#SBATCH --signal=B:USR1@300", "#SBATCH --chdir=/scratch/me/run1",
        "#SBATCH --output=slurm-logs/%x-%j.out", "#SBATCH --open-mode=append", "launcher=srun",
        "gpus_per_node=8", "threads_per_process=8", "results=results.h5", "shards=0",
        "diffsearch=/opt/diffsearch/bin/diffsearch"}) {
    EXPECT_TRUE(has_line(s, line)) << line << "\n" << s;
  }
  EXPECT_EQ(s.find("#SBATCH --array"), std::string::npos);
  EXPECT_EQ(s.find("--cpus-per-task"), std::string::npos);
  EXPECT_EQ(s.find("--overcommit"), std::string::npos);
  EXPECT_NE(s.find("16 workers, one per GPU"), std::string::npos) << s;
  // Every #SBATCH line before the first command, or sbatch ignores it.
  const auto first_command = s.find("\nset -uo pipefail");
  EXPECT_LT(s.rfind("#SBATCH"), first_command);
  ScriptFile f(s);
  EXPECT_EQ(run_command("bash -n " + f.path() + " 2>&1").code, 0);
}

TEST(BatchScript, CpuJobArrayAndMpirun) {
  BatchOptions o = cpu_options();
  o.array = 3;
  o.launcher = Launcher::mpirun;
  o.overcommit = true;
  o.cpus_per_task = 2;
  const std::string s = render_batch_script(o);
  for (const char* line : {"#SBATCH --nodes=1", "#SBATCH --ntasks=3", "#SBATCH --cpus-per-task=2",
                           "#SBATCH --overcommit", "#SBATCH --array=0-2", "#SBATCH --output=slurm-logs/%x-%A_%a.out",
                           "launcher=mpirun", "gpus_per_node=0", "threads_per_process=2", "shards=3"}) {
    EXPECT_TRUE(has_line(s, line)) << line << "\n" << s;
  }
  EXPECT_EQ(s.find("--gpus-per-node="), std::string::npos);
  EXPECT_EQ(s.find("--ntasks-per-node"), std::string::npos) << "Slurm refuses it above the cores with --overcommit";
  EXPECT_EQ(s.find("--partition"), std::string::npos);
  EXPECT_NE(s.find("r.shard-0-of-3.h5"), std::string::npos) << "the header names the shard files";
  ScriptFile f(s);
  EXPECT_EQ(run_command("bash -n " + f.path() + " 2>&1").code, 0);
}

// What bash makes of the settings block: the words the search would get.
std::vector<std::string> settings_as_bash_reads_them(const std::string& script) {
  const auto end = script.find("# ---- end of settings ----");
  EXPECT_NE(end, std::string::npos);
  ScriptFile f(script.substr(0, end) +
               "printf '%s\\0' \"$diffsearch\" \"$results\" \"${search_args[@]}\"\n");
  const auto bash = run_command("bash " + f.path());
  EXPECT_EQ(bash.code, 0);
  const std::string& out = bash.out;
  std::vector<std::string> words;
  std::size_t pos = 0;
  while (pos < out.size()) {
    const auto nul = out.find('\0', pos);
    words.push_back(out.substr(pos, nul - pos));
    pos = nul + 1;
  }
  return words;
}

TEST(BatchScript, SearchArgumentsReachTheSearchWordForWord) {
  // Its own folder: the scripts' folders come and go while it must stay absent.
  const fs::path marker = diffsearch::testing::fresh_test_dir("batch_script_marker") / "injected";
  const std::vector<std::string> hostile = {
      "my tasks.txt", "$(touch " + marker.string() + ")", "`touch " + marker.string() + "`", "it's \"quoted\"",
      "two\nlines", "; touch " + marker.string(), "${HOME}", "*", "-", "caf\xc3\xa9", "a\\b", "#not a comment", ""};
  BatchOptions o = cpu_options();
  o.diffsearch = "/opt/my tools/diffsearch";  // a path with a blank, quoted in the script
  o.search_args = {"--out", "out dir/r $x.h5", "--device", "cpu"};
  for (const auto& h : hostile) {
    o.search_args.push_back("--filter");
    o.search_args.push_back(h);
  }
  o.render_command = "diffsearch slurm render -- --filter 'x\ny' $(touch " + marker.string() + ")";
  const std::string s = render_batch_script(o);
  const auto words = settings_as_bash_reads_them(s);
  ASSERT_EQ(words.size(), 2 + 2 + 2 * hostile.size()) << s;
  EXPECT_EQ(words[0], "/opt/my tools/diffsearch");
  EXPECT_EQ(words[1], "out dir/r $x.h5");
  EXPECT_EQ(words[2], "--device");
  EXPECT_EQ(words[3], "cpu");
  for (std::size_t i = 0; i < hostile.size(); ++i) {
    EXPECT_EQ(words[4 + 2 * i], "--filter");
    EXPECT_EQ(words[5 + 2 * i], hostile[i]);
  }
  EXPECT_FALSE(fs::exists(marker)) << "a search argument ran as a command";
  // The render command is one comment line, whatever it holds.
  EXPECT_EQ(s.find("\ny)"), std::string::npos) << s;
  ScriptFile f(s);
  EXPECT_EQ(run_command("bash -n " + f.path() + " 2>&1").code, 0);
  fs::remove_all(marker.parent_path());
}

TEST(BatchScript, ResumeAndOutAreTheScriptsOwn) {
  const std::string s = render_batch_script(cpu_options());
  const auto words = settings_as_bash_reads_them(s);
  // --out and --resume are passed by the script itself (--out per shard).
  const std::vector<std::string> expected = {"/usr/bin/diffsearch", "r.h5", "--tasks", "tasks.txt", "--device", "cpu"};
  EXPECT_EQ(words, expected);
  EXPECT_NE(s.find("--out \"$out\" --resume"), std::string::npos);
}

void expect_refused(const BatchOptions& o, const std::string& fragment) {
  try {
    render_batch_script(o);
    ADD_FAILURE() << "accepted; expected an error containing: " << fragment;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(BatchScript, InconsistentOptionsRefusedWithTheirFix) {
  BatchOptions o = cpu_options();
  o.tasks_per_node = 0;
  expect_refused(o, "--gpus-per-node 0 needs --ntasks-per-node T");

  o = gpu_options();
  o.tasks_per_node = 8;
  expect_refused(o, "needs 9 task slots");

  o = gpu_options();
  o.search_args = {"--grid", "4", "--out", "r.h5"};
  expect_refused(o, "add --device cuda");

  o = cpu_options();
  o.search_args = {"--grid", "4", "--out", "r.h5", "--device=cuda"};
  expect_refused(o, "--gpus-per-node 0 asks for no GPUs");

  o = cpu_options();
  o.search_args = {"--grid", "4"};
  expect_refused(o, "no --out FILE");

  o = cpu_options();
  o.search_args = {"--grid", "4", "--out", "a.h5", "--out=b.h5"};
  expect_refused(o, "--out given twice");

  o = cpu_options();
  o.array = 2;
  o.search_args.push_back("--shard=0/2");
  expect_refused(o, "take --shard out");

  o = cpu_options();
  o.array = 1;
  expect_refused(o, "--array 1");

  o = cpu_options();
  o.time = "90";
  expect_refused(o, "expected HH:MM:SS");
  o.time = "00:04:00";
  expect_refused(o, "not longer than --signal-before 300");

  o = cpu_options();
  o.partition = "gpu long";
  expect_refused(o, "--partition \"gpu long\"");
  o = cpu_options();
  o.workdir = "/home/my folder";
  expect_refused(o, "no blanks or quotes");
  o = cpu_options();
  o.job_name = "a'b";
  expect_refused(o, "--job-name");
}

TEST(BatchScript, TimeLimits) {
  EXPECT_EQ(parse_time_limit("00:10:00"), 600);
  EXPECT_EQ(parse_time_limit("48:00:00"), 48 * 3600);
  EXPECT_EQ(parse_time_limit("2-01:00:30"), 2 * 86400 + 3600 + 30);
  for (const char* bad : {"", "10:00", "1:2:3:4", "00:60:00", "00:00:60", "x-01:00:00", "-01:00:00", "00:00:00",
                          "1-", "01::00"}) {
    EXPECT_THROW(parse_time_limit(bad), InputError) << bad;
  }
}

TEST(BatchScript, ShardResultsPaths) {
  EXPECT_EQ(shard_results_path("results.h5", 1, 4), "results.shard-1-of-4.h5");
  EXPECT_EQ(shard_results_path("out/r", 0, 2), "out/r.shard-0-of-2.h5");
}

}  // namespace
}  // namespace diffsearch::slurm
