// `diffsearch codegen`: a runnable Python (diffusers) script per answered
// task, with an index; the tasks without an `ok` answer are named with the
// search command that would measure them, and the exit code says so. Given
// no tasks, the original auto_code_gen_v4.py's five, with the `diffsearch
// traverse` command of each one that has no answer.
#include <sys/stat.h>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "codegen/codegen.h"
#include "render/escape.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/log/log.h"
#include "io/result_store.h"
#include "partition/grid.h"
#include "partition/original_tasks.h"

namespace diffsearch::cli {
namespace {

struct CodegenArgs {
  std::string params = "search_params.json";
  std::string tasks_file;
  int grid = 0;
  std::string out = "code";
  std::string results;
  std::string prompt = codegen::kDefaultPrompt;
};

// The results file must be the one the answers came from: its configuration
// is the one distill copied into _config.
void add_results_provenance(const std::string& path, const nlohmann::json& params, codegen::Provenance& p) {
  const auto contents = io::read_results(path);
  const auto config = params.value("_config", nlohmann::json::object());
  const auto differ = io::config_differences(contents.config, config);
  if (!differ.empty()) {
    std::string fields;
    for (const auto& f : differ) fields += (fields.empty() ? "" : ", ") + f;
    throw InputError(path + ": not the results file " + p.params_path + " was distilled from (search " +
                     "configuration fields that differ: " + fields + "); give the matching --results or leave it out");
  }
  p.results_path = path;
  if (!contents.runs.empty()) {
    const auto& attrs = contents.runs.back().value("attributes", nlohmann::json::object());
    if (attrs.contains("command_line") && attrs["command_line"].is_string()) {
      p.search_command_line = attrs["command_line"].get<std::string>();
    }
    if (attrs.contains("processes") && attrs["processes"].is_number_integer()) {
      p.search_processes = attrs["processes"].get<int>();
    }
  }
}

// The `diffsearch traverse` command that answers `task` into `params_path`,
// with the measuring options the answers already there were searched with
// (traverse extends the file only for the same ones).
std::string traverse_command(const partition::Task& task, const nlohmann::json& config, const std::string& params_path) {
  static const char* const pipes[] = {"sd1.5", "sd2.1", "sdxl"};
  static const char* const scheds[] = {"ddim", "dpm-solver++", "unipc"};
  std::string targets;
  for (auto m : task.methods) targets += (targets.empty() ? "" : ",") + partition::method_slug(m);
  std::string out = "diffsearch traverse --pipe " + std::string(pipes[static_cast<int>(task.model)]) + " --sched " +
                    scheds[static_cast<int>(task.sampler)] + " --steps " + std::to_string(task.steps) +
                    " --search_targets " + targets;
  if (task.speedup) out += " --req_speedup " + partition::format_number(*task.speedup);
  out += " --req_score_loss " + partition::format_number(task.max_score_loss);
  out += " --models MODELS.json --clip CLIP_DIR" + codegen::search_options_text(config);
  if (params_path != "search_params.json") out += " --params " + render::sh_word(params_path);
  return out;
}

// The original's five tasks: each one without a script gets the traverse
// command that would answer it (the original printed "<config> not exist!!"
// and stopped at the first).
int report_original_tasks(const codegen::CodegenResult& result, const std::vector<partition::Task>& tasks,
                          const nlohmann::json& params, const std::string& params_path, bool params_exist) {
  if (result.unanswered.empty()) return exit_code::ok;
  const auto& config = params.contains("_config") && params["_config"].is_object() ? params["_config"]
                                                                                    : nlohmann::json::object();
  std::string out = "no script for " + std::to_string(result.unanswered.size()) + " of the original " +
                    std::to_string(tasks.size()) + " tasks" +
                    (params_exist ? "" : " (" + params_path + " does not exist yet)") +
                    "; to answer each into " + params_path + ", then run codegen again:\n";
  for (const auto& u : result.unanswered) {
    out += "  " + u.key + ": " + u.reason + "\n";
    // An infeasible task was measured in full: the same traverse gives the
    // same answer (its reason says what would change it).
    if (u.status != "infeasible") {
      out += "    " + traverse_command(partition::parse_task_key(u.key), config, params_path) + "\n";
    }
  }
  out += "  (MODELS.json: model name -> diffusers folder; CLIP_DIR: a CLIPModel folder";
  if (config.contains("space") && !config["space"].is_null()) out += "; SPACE.json: _config.space in " + params_path;
  out += "; or search them all at once: diffsearch codegen --tasks FILE prints the search command)\n";
  std::fprintf(stderr, "error: %s", out.c_str());
  return exit_code::failed;
}

int run_codegen(const CodegenArgs& a) {
  if (a.grid != 0 && !a.tasks_file.empty()) {
    throw InputError("codegen takes one of --tasks FILE or --grid C (the tasks to write code for), not both");
  }
  // Neither: the five tasks the original code generator wrote code for.
  const bool original = a.grid == 0 && a.tasks_file.empty();
  codegen::CodegenRequest request;
  if (original) {
    request.tasks = partition::original_tasks();
    request.tasks_argument = "--tasks ORIGINAL_TASKS.txt";
  } else {
    request.tasks = a.grid != 0 ? partition::make_grid(a.grid) : partition::read_tasks_file(a.tasks_file);
    request.tasks_argument = a.grid != 0 ? "--grid " + std::to_string(a.grid) : "--tasks " + render::sh_word(a.tasks_file);
  }
  struct stat st;
  const bool params_exist = ::stat(a.params.c_str(), &st) == 0;
  if (original && !params_exist) {
    // Nothing answered yet: every task gets its traverse command.
    request.params = {{"_format", "diffsearch-search-params"}, {"_version", 1}};
  } else {
    request.params = io::read_json_file(a.params, "search_params.json");
  }
  request.provenance.params_path = a.params;
  request.prompt = a.prompt;
  if (!a.results.empty()) add_results_provenance(a.results, request.params, request.provenance);

  const auto result = codegen::generate(request);
  codegen::write_result(result, a.out);
  log::info("codegen: " + std::to_string(result.scripts.size()) + " scripts, index.json and README.md in " + a.out);
  if (original) return report_original_tasks(result, request.tasks, request.params, a.params, params_exist);
  if (result.unanswered.empty()) return exit_code::ok;
  std::fprintf(stderr, "error: %s", result.report().c_str());
  return exit_code::failed;
}

Runner setup_codegen(CLI::App& sub) {
  auto a = std::make_shared<CodegenArgs>();
  sub.add_option("--params", a->params, "search_params.json written by diffsearch distill or traverse")
      ->capture_default_str()
      ->type_name("FILE");
  auto tasks = sub.add_option("--tasks", a->tasks_file,
                              "The tasks to write code for, one sentence a line (neither this nor --grid: the "
                              "original auto_code_gen_v4.py's five)")
                   ->type_name("FILE");
  sub.add_option("--grid", a->grid, "Write code for category C's grid instead")
      ->type_name("C")
      ->check(CLI::Range(1, 5))
      ->excludes(tasks);
  sub.add_option("-o,--output", a->out, "Folder for the scripts, index.json and README.md (created)")
      ->capture_default_str()
      ->type_name("DIR");
  sub.add_option("--results", a->results,
                 "The results file the answers came from: named in the scripts, checked against them, and "
                 "its recorded search command used in messages")
      ->type_name("FILE");
  sub.add_option("--prompt", a->prompt, "The scripts' default prompt (each takes --prompt too)")
      ->capture_default_str()
      ->type_name("TEXT");
  sub.footer(
      "Example:\n"
      "  diffsearch codegen --params search_params.json --tasks tasks.txt -o code/\n"
      "  python3 code/sd15_ddim_50_deepcache_x3.04_loss0.02.py --prompt \"a red bicycle\" --benchmark\n"
      "  diffsearch codegen   # the original five tasks from ./search_params.json into code/, as auto_code_gen_v4.py\n"
      "Exit codes: 0 every task has a script, 1 some have none (named on stderr, with the search\n"
      "command that would measure them; the others are written), 2 bad input.");
  return [a]() { return run_codegen(*a); };
}

DIFFSEARCH_COMMAND("codegen", "Write a runnable diffusers script per answered task (from search_params.json)",
                   setup_codegen);

}  // namespace
}  // namespace diffsearch::cli
