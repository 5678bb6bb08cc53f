// `diffsearch codegen`: a runnable Python (diffusers) script per answered
// task, with an index; the tasks without an `ok` answer are named with the
// search command that would measure them, and the exit code says so.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "codegen/codegen.h"
#include "codegen/escape.h"
#include "io/error.h"
#include "io/json_file.h"
#include "io/log/log.h"
#include "io/result_store.h"
#include "partition/grid.h"

namespace diffsearch::cli {
namespace {

struct CodegenArgs {
  std::string params;
  std::string tasks_file;
  int grid = 0;
  std::string out;
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

int run_codegen(const CodegenArgs& a) {
  if ((a.grid != 0) == !a.tasks_file.empty()) {
    throw InputError("codegen needs exactly one of --tasks FILE or --grid C (the tasks to write code for)");
  }
  codegen::CodegenRequest request;
  request.tasks = a.grid != 0 ? partition::make_grid(a.grid) : partition::read_tasks_file(a.tasks_file);
  request.tasks_argument = a.grid != 0 ? "--grid " + std::to_string(a.grid) : "--tasks " + codegen::sh_word(a.tasks_file);
  request.params = io::read_json_file(a.params, "search_params.json");
  request.provenance.params_path = a.params;
  request.prompt = a.prompt;
  if (!a.results.empty()) add_results_provenance(a.results, request.params, request.provenance);

  const auto result = codegen::generate(request);
  codegen::write_result(result, a.out);
  log::info("codegen: " + std::to_string(result.scripts.size()) + " scripts, index.json and README.md in " + a.out);
  if (result.unanswered.empty()) return exit_code::ok;
  std::fprintf(stderr, "error: %s", result.report().c_str());
  return exit_code::failed;
}

Runner setup_codegen(CLI::App& sub) {
  auto a = std::make_shared<CodegenArgs>();
  sub.add_option("--params", a->params, "search_params.json written by diffsearch distill")
      ->required()
      ->type_name("FILE");
  auto tasks = sub.add_option("--tasks", a->tasks_file, "The tasks to write code for, one sentence a line")
                   ->type_name("FILE");
  sub.add_option("--grid", a->grid, "Write code for category C's grid instead")
      ->type_name("C")
      ->check(CLI::Range(1, 5))
      ->excludes(tasks);
  sub.add_option("-o,--output", a->out, "Folder for the scripts, index.json and README.md (created)")
      ->required()
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
      "Exit codes: 0 every task has a script, 1 some have none (named on stderr, with the search\n"
      "command that would measure them; the others are written), 2 bad input.");
  return [a]() { return run_codegen(*a); };
}

DIFFSEARCH_COMMAND("codegen", "Write a runnable diffusers script per answered task (from search_params.json)",
                   setup_codegen);

}  // namespace
}  // namespace diffsearch::cli
