// `diffsearch parse`: one task sentence in, its canonical key (or its JSON
// object) out; the quickest check of what the task language understood.
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "partition/task.h"

namespace diffsearch::cli {
namespace {

Runner setup_parse(CLI::App& sub) {
  auto words = std::make_shared<std::vector<std::string>>();
  auto json = std::make_shared<bool>(false);
  auto sentence = std::make_shared<bool>(false);
  sub.add_option("text", *words,
                 "The task sentence (quote it, or pass its words as separate arguments)");
  sub.add_flag("--json", *json,
               "Print one JSON object: key, model, sampler, steps, methods, speedup, "
               "max_score_loss, latency_s, platform, category");
  sub.add_flag("--sentence", *sentence, "Print the canonical sentence instead of the key");
  sub.footer(
      "Example:\n  diffsearch parse \"Generate a SD1.5 pipeline using the DDIM sampler with 50 "
      "steps, accelerated by DeepCache with 3.04x speedup and precision loss not exceeding "
      "0.02\"\n  -> sd15/ddim/50/deepcache/x3.04/loss0.02");
  return [words, json, sentence]() {
    std::string text;
    for (const auto& w : *words) text += (text.empty() ? "" : " ") + w;
    const partition::Task task = partition::parse_task(text);
    std::string out;
    if (*json) {
      out = partition::task_to_json(task).dump();
    } else if (*sentence) {
      out = partition::format_task(task);
    } else {
      out = partition::task_key(task);
    }
    std::printf("%s\n", out.c_str());
    return 0;
  };
}

DIFFSEARCH_COMMAND("parse", "Parse a task sentence and print its canonical key (or JSON)",
                   setup_parse);

}  // namespace
}  // namespace diffsearch::cli
