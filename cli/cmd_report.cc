// `diffsearch report`: one self-contained HTML page for reading a results
// file after the run (report/, docs/report.md).
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "cli/command.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/result_store.h"
#include "partition/grid.h"
#include "report/render.h"
#include "report/report_data.h"

namespace diffsearch::cli {
namespace {

struct ReportArgs {
  std::string results;
  std::string tasks_file;
  int grid = 0;
  std::string out = "report.html";
};

// The tasks to answer: the ones given, else the search's own (its
// configuration lists their keys).
std::vector<partition::Task> report_tasks(const ReportArgs& a, const io::ResultsContents& contents) {
  if (a.grid != 0) return partition::make_grid(a.grid);
  if (!a.tasks_file.empty()) return partition::read_tasks_file(a.tasks_file);
  const auto& config = contents.config;
  if (!config.contains("tasks") || !config["tasks"].is_array()) {
    throw InputError(a.results + ": its configuration lists no tasks; give --tasks FILE or --grid C");
  }
  std::vector<partition::Task> tasks;
  for (const auto& key : config["tasks"]) {
    if (!key.is_string()) throw InputError(a.results + ": configuration field \"tasks\" holds a non-string; give --tasks FILE");
    try {
      tasks.push_back(partition::parse_task_key(key.get<std::string>()));
    } catch (const InputError& e) {
      throw InputError(a.results + ": configuration field \"tasks\": " + e.what() + "; give --tasks FILE or --grid C");
    }
  }
  return tasks;
}

int run_report(const ReportArgs& a) {
  const auto contents = io::read_results(a.results);
  const auto tasks = report_tasks(a, contents);
  const auto data = report::gather_report(contents, tasks, a.results);
  const std::string html = report::render_report(data);
  const std::string tmp = a.out + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << html;
    out.close();
    if (!out) throw InputError(a.out + ": cannot write (check the folder exists and is writable)");
  }
  if (std::rename(tmp.c_str(), a.out.c_str()) != 0) throw InputError(a.out + ": cannot write");
  log::info("report: " + a.out + " (" + std::to_string(data.answers.size()) + " tasks, " +
            std::to_string(data.points) + " measured settings in " + std::to_string(data.spaces.size()) +
            " spaces, " + std::to_string(data.rows) + " rows; " + std::to_string(html.size() / 1024) +
            " KiB, open it in a browser)");
  return exit_code::ok;
}

Runner setup_report(CLI::App& sub) {
  auto a = std::make_shared<ReportArgs>();
  sub.add_option("results", a->results, "Results file written by diffsearch search")->required()->type_name("FILE");
  auto tasks = sub.add_option("--tasks", a->tasks_file, "The tasks to answer, one sentence a line (default: the search's own)")
                   ->type_name("FILE");
  sub.add_option("--grid", a->grid, "Answer category C's grid instead")->type_name("C")->check(CLI::Range(1, 5))->excludes(tasks);
  sub.add_option("-o,--output", a->out, "The HTML file to write")->capture_default_str()->type_name("FILE");
  sub.footer(
      "Example:\n  diffsearch report results.h5 -o report.html   # then open report.html in a browser\n"
      "One self-contained page (no network): per method space the speed/quality plane with the\n"
      "Pareto front and each task's answer, the answers table, the timeline, failures, run records.");
  return [a]() { return run_report(*a); };
}

DIFFSEARCH_COMMAND("report", "Write one HTML page to read a results file with (planes, answers, timeline)",
                   setup_report);

}  // namespace
}  // namespace diffsearch::cli
