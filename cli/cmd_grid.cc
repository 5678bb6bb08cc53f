// `diffsearch grid`: prints one of the five task categories, a sentence (or
// a JSON object) a line, in the grid's fixed order.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "partition/grid.h"

namespace diffsearch::cli {
namespace {

Runner setup_grid(CLI::App& sub) {
  auto category = std::make_shared<int>(0);
  auto format = std::make_shared<std::string>("text");
  auto config = std::make_shared<std::string>();
  sub.add_option("--category,-c", *category,
                 "1 basic, 2 one method, 3 combined methods, 4 speedup targets (1134), "
                 "5 latency budgets")
      ->required()
      ->check(CLI::Range(1, 5));
  sub.add_option("--format", *format,
                 "text (one sentence a line) or jsonl (parse --json's "
                 "object plus \"sentence\")")
      ->check(CLI::IsMember({"text", "jsonl"}))
      ->capture_default_str();
  sub.add_option("--config", *config,
                 "JSON file with category 5's platforms, latency_budgets_s, accelerators "
                 "(docs/task-language.md)")
      ->type_name("FILE");
  sub.footer("Example:\n  diffsearch grid --category 4 | wc -l   # 1134");
  return [category, format, config]() {
    partition::GridConfig grid_config;
    if (!config->empty()) grid_config = partition::read_grid_config(*config);
    for (const auto& task : partition::make_grid(*category, grid_config)) {
      if (*format == "jsonl") {
        auto j = partition::task_to_json(task);
        j["sentence"] = partition::format_task(task);
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("%s\n", partition::format_task(task).c_str());
      }
    }
    return 0;
  };
}

DIFFSEARCH_COMMAND("grid", "Print the tasks of a category (1-5), one a line", setup_grid);

}  // namespace
}  // namespace diffsearch::cli
