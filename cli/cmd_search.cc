// `diffsearch search`: the distributed search. Parses the options on every
// rank (all ranks plan the same units), starts MPI only under mpirun/srun,
// and hands the engine evaluator to the coordinator (which links no libtorch).
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/search_options.h"

namespace diffsearch::cli {
namespace {

Runner setup_search(CLI::App& sub) {
  auto a = std::make_shared<SearchArgs>();
  add_search_options(sub, *a, SearchOptionSet{});
  sub.footer(
      "Example:\n  mpirun -np 3 diffsearch search --grid 4 --filter sd15/ddim/20/ --models models.json \\\n"
      "      --clip clip/ --out results.h5 --num-samples 4 --speed-measure macs\n"
      "Exit codes: 0 done, 2 bad input, 75 interrupted (rerun with --resume).");
  return [a]() {
    a->command_line = own_command_line();
    return run_search([a] {
      std::string source;
      auto tasks = select_tasks(*a, source);
      return build_search_options(*a, std::move(tasks), source, "search");
    });
  };
}

DIFFSEARCH_COMMAND("search", "Search acceleration settings for tasks, distributed with MPI", setup_search);

}  // namespace
}  // namespace diffsearch::cli
