// `diffsearch distill`: the answer of every task from a results file, written
// as search_params.json (byte-identical for the same file and tasks).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "coordinator/distill.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/result_store.h"
#include "partition/grid.h"

namespace diffsearch::cli {
namespace {

struct DistillArgs {
  std::string results;
  std::string tasks_file;
  int grid = 0;
  std::string out;
  bool table = false;
  std::string quality;  // "": the measure the search recorded
};

// One line per task: key, status, the chosen setting, speedup and loss.
void print_table(const nlohmann::json& answers) {
  const std::string loss = answers.value("_quality", std::string("clip")) + " loss";
  std::printf("%-48s %-11s %8s %9s  %s\n", "task", "status", "speedup", loss.c_str(), "setting");
  for (const auto& [key, a] : answers.items()) {
    if (!key.empty() && key[0] == '_') continue;
    std::string setting;
    if (a.contains("params") && a["params"].is_object()) {
      for (const auto& [method, params] : a["params"].items()) {
        if (!setting.empty()) setting += " + ";
        setting += method + " " + params.dump();
      }
    }
    auto number = [&](const char* field) {
      return a.contains(field) && a[field].is_number() ? a[field].get<double>() : std::nan("");
    };
    std::printf("%-48s %-11s %7.2fx %9.4f  %s\n", key.c_str(), a.value("status", "?").c_str(),
                number("speedup"), number("loss"), setting.c_str());
  }
}

int run_distill(const DistillArgs& a) {
  if ((a.grid != 0) == !a.tasks_file.empty()) {
    throw InputError("distill needs exactly one of --tasks FILE or --grid C (the tasks to answer)");
  }
  const auto tasks = a.grid != 0 ? partition::make_grid(a.grid) : partition::read_tasks_file(a.tasks_file);
  const auto contents = io::read_results(a.results);
  std::optional<coordinator::Quality> quality;
  if (!a.quality.empty()) quality = coordinator::parse_quality(a.quality);
  const auto answers = coordinator::distill(contents, tasks, quality);
  if (answers.contains("_quality_searched")) {
    log::warn("distill: answering by " + answers["_quality"].get<std::string>() + " loss, but the frontier search raced " +
              answers["_quality_searched"].get<std::string>() +
              " loss: each answer is the best of the settings it measured in full, which may miss a better one "
              "by this measure (search again with --quality " + answers["_quality"].get<std::string>() + ")");
  }
  const std::string text = coordinator::distill_text(answers);
  if (a.out.empty() || a.out == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    const std::string tmp = a.out + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
      if (!out) throw InputError(a.out + ": cannot write (check the folder exists and is writable)");
    }
    if (std::rename(tmp.c_str(), a.out.c_str()) != 0) throw InputError(a.out + ": cannot write");
  }
  if (a.table) {
    print_table(answers);
    std::fflush(stdout);  // the table before the summary on stderr, not through it
  }
  const auto& counts = answers["_counts"];
  std::string summary;
  for (const auto& [status, n] : counts.items()) summary += (summary.empty() ? "" : ", ") + status + " " + n.dump();
  log::info("distill: " + std::to_string(tasks.size()) + " tasks (" + summary + ")");
  return exit_code::ok;
}

Runner setup_distill(CLI::App& sub) {
  auto a = std::make_shared<DistillArgs>();
  sub.add_option("results", a->results, "Results file written by diffsearch search")->required()->type_name("FILE");
  auto tasks = sub.add_option("--tasks", a->tasks_file, "The tasks to answer, one sentence a line")->type_name("FILE");
  sub.add_option("--grid", a->grid, "Answer category C's grid instead")->type_name("C")->check(CLI::Range(1, 5))
      ->excludes(tasks);
  sub.add_option("-o,--output", a->out, "search_params.json to write (default: stdout)")->type_name("FILE");
  sub.add_flag("--table", a->table, "Also print one line per task (with -o)");
  sub.add_option("--quality", a->quality,
                 "Loss the tasks' bounds apply to: clip (CLIP score loss), ssim (1 - mean SSIM against the "
                 "baseline image) or psnr (mean 10^(-PSNR/10)); default: the one the search used")
      ->type_name("MEASURE");
  sub.footer("Example:\n  diffsearch distill results.h5 --tasks tasks.txt -o search_params.json");
  return [a]() { return run_distill(*a); };
}

DIFFSEARCH_COMMAND("distill", "Answer every task from a results file (search_params.json)", setup_distill);

}  // namespace
}  // namespace diffsearch::cli
