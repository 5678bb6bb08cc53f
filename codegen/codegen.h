// From answers (search_params.json) to code: per task, a Python script that
// realises the setting with diffusers and the methods' own packages, the
// equivalent `diffsearch sample` command, and an index of them; for tasks
// without an `ok` answer, why, and the search command that would measure them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "partition/search_space.h"
#include "partition/task.h"
#include "render/embedded.h"

namespace diffsearch::codegen {

// The prompt a script uses when none is given on its command line.
extern const char* const kDefaultPrompt;

// Where the answers came from, for headers and for the commands in messages.
struct Provenance {
  std::string params_path;   // search_params.json, as the user named it
  std::string results_path;  // the results file it was distilled from; empty: unknown
  // The results file's last recorded search command line and its process
  // count; empty: unknown (the command is rebuilt from _config instead).
  std::string search_command_line;
  int search_processes = 0;
};

struct CodegenRequest {
  nlohmann::json params;  // the parsed search_params.json
  Provenance provenance;
  std::vector<partition::Task> tasks;
  std::string tasks_argument;  // how the tasks were given: "--tasks FILE" or "--grid C"
  std::string prompt = kDefaultPrompt;
};

// Everything one script says, gathered from the answer, the task and the
// search configuration. Public so that tests can render scripts directly.
struct ScriptFacts {
  std::string key;   // canonical task key
  std::string task;  // canonical sentence
  partition::Model model = partition::Model::SD15;
  partition::SamplerKind sampler = partition::SamplerKind::DDIM;
  int steps = 50;
  partition::Setting setting;  // empty: the plain pipeline
  double speedup = 1;          // NaN when the file has none
  double score_loss = 0;  // CLIP score loss
  // The loss the answer was chosen by (search_params.json's "_quality" and
  // "loss"); "clip" when it is the CLIP score loss itself.
  std::string quality = "clip";
  double loss = 0;
  double clip_base = 0;  // NaN when unknown
  double clip_acc = 0;
  std::optional<double> latency_s;  // seconds per image, latency tasks
  std::string device;               // where it was measured
  std::string speed_measure = "wall";
  int resolution = 512;  // pixels, square
  int samples = 0;       // prompts per measurement; 0: unknown
  std::uint64_t seed = 0;
  std::string dtype = "float16";
  std::vector<std::int64_t> rows;  // in the results file
  std::string params_path;
  std::string results_path;  // empty: unknown
  std::string prompt = kDefaultPrompt;
  std::string file_name;  // the script's own name
};

struct Script {
  std::string key;
  std::string file_name;  // file_safe_key(key) + ".py"
  std::string text;
  nlohmann::json index_entry;
};

struct Unanswered {
  std::string key;
  std::string status;  // the answer's status, or "missing" when the file has none
  std::string reason;  // one line
  bool resumable = false;  // a --resume of the same search would measure it
};

struct CodegenResult {
  std::vector<Script> scripts;          // in task order
  std::vector<Unanswered> unanswered;   // in task order
  std::string resume_command;  // continues the search: for resumable tasks; empty if none
  std::string search_command;  // a new search: for tasks the search did not include; empty if none
  std::string command_note;    // what the placeholders in those commands stand for
  nlohmann::json index;        // index.json
  std::string readme;          // README.md

  // Lines for stderr: each task without a script, why, and the commands.
  std::string report() const;
};

// The scripts, index and README for `request`. InputError naming the file
// and the field for a search_params.json that is not distill's format, or an
// answer whose fields have the wrong type or whose methods are not the task's.
CodegenResult generate(const CodegenRequest& request);

// Creates `dir` and writes the scripts (executable), index.json and README.md,
// each through a temporary file renamed into place. A script left in `dir`
// by an earlier run for a task that now has no answer is removed, so the
// folder never shows a stale answer. InputError when `dir` cannot be written.
void write_result(const CodegenResult& result, const std::string& dir);

// A key as a file name: '/' becomes '_', characters outside
// [A-Za-z0-9._+@%-] are percent-encoded, a leading '.' too.
std::string file_safe_key(const std::string& key);

std::string render_script(const ScriptFacts& facts);
// `diffsearch sample ...` with the same model (MODEL_DIR), sampler, steps,
// size, seed, dtype and --accel specs.
std::string sample_command(const ScriptFacts& facts);
// "DeepCache cache_branch_id=0, cache_interval=3 + ToMe ratio=0.5"; "none".
std::string setting_text(const partition::Setting& setting);
// The measuring options a search configuration (search_params.json's
// _config) records, as `diffsearch search` flags with a leading space
// (" --num-samples 2 --speed-measure macs ..."); "" when it records none.
std::string search_options_text(const nlohmann::json& config);

// The parameters a script passes to each package: the setting's, completed
// with the defaults diffsearch's engine applied to the ones it lacks
// (DeepCacheSDHelper.set_params and TgateSDLoader's tgate(); tomesd's own
// defaults are the engine's, so ToMe's parameters go as they are).
nlohmann::json package_params(const partition::MethodSetting& method_setting);

// codegen/templates/ (the Python script and its README), embedded when the library is built (render/embed.cmake),
// so the executable renders them from any working directory; embedded_template
// throws diffsearch::Error naming what there is when none has `file_name`.
const render::TemplateFiles& embedded_templates();
const std::string& embedded_template(const std::string& file_name);

}  // namespace diffsearch::codegen
