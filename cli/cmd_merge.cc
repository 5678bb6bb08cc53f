// `diffsearch merge`: joins the results files of a sharded search (a Slurm
// job array's shards) into one results file, written atomically, that
// distill, status and h5py read like an unsharded search's.
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/result_store.h"
#include "io/results_merge.h"
#include "io/version.h"

namespace diffsearch::cli {
namespace {

struct MergeArgs {
  std::vector<std::string> inputs;
  std::string out;
  bool partial = false;
};

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// Same file, whatever the spelling of its path.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

std::string command_line() {
  std::string line;
  if (FILE* f = std::fopen("/proc/self/cmdline", "rb")) {
    int c;
    while ((c = std::fgetc(f)) != EOF) line += c == 0 ? ' ' : static_cast<char>(c);
    std::fclose(f);
  }
  if (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

int run_merge(const MergeArgs& a) {
  for (const auto& in : a.inputs) {
    if (in == a.out || same_file(in, a.out)) {
      throw InputError("-o " + a.out + " is also an input; write the merged file to a new path");
    }
  }
  if (exists(a.out) || exists(a.out + ".journal")) {
    throw InputError(a.out + (exists(a.out) ? "" : ".journal") +
                     " already exists; remove it (and its .journal) or choose another -o");
  }
  std::vector<io::MergeInput> inputs;
  for (const auto& path : a.inputs) {
    if (!exists(path) && !exists(path + ".journal")) throw InputError(path + ": no such results file");
    inputs.push_back({path, io::read_results(path)});
  }
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  // Named like a search's runs ("run-<ms>-..."), so it sorts after the shards' runs in /runs
  // and is the last run, whose units_total `diffsearch status` reports.
  const std::string run_id = "run-" + std::to_string(static_cast<long long>(now * 1000)) + "-merge";
  const nlohmann::json attributes = {{"command_line", command_line()}, {"versions", io::version_text()},
                                     {"started_at", now}, {"processes", 1}};
  const io::ResultsContents merged = io::merge_shards(inputs, run_id, attributes, a.partial);
  io::write_results_h5(a.out, merged);  // a temporary file renamed into place
  log::info("merge: " + std::to_string(inputs.size()) + " shards, " + std::to_string(merged.rows.size()) +
            " rows (" + merged.runs.back()["attributes"]["units_total"].dump() + " units) -> " + a.out);
  return exit_code::ok;
}

Runner setup_merge(CLI::App& sub) {
  auto a = std::make_shared<MergeArgs>();
  sub.add_option("inputs", a->inputs, "The shards' results files (diffsearch search --shard I/K), all of them")
      ->required()
      ->type_name("FILE");
  sub.add_option("-o,--output", a->out, "The merged results file to write (must not exist)")
      ->required()
      ->type_name("FILE");
  sub.add_flag("--partial", a->partial, "Merge even if some shard has not measured all its units");
  sub.footer(
      "Example:\n  diffsearch merge results.shard-0-of-2.h5 results.shard-1-of-2.h5 -o results.h5\n"
      "Refuses files of different search configurations (naming the fields), shards given twice or\n"
      "missing, and unfinished shards (resume them first, or --partial).");
  return [a]() { return run_merge(*a); };
}

DIFFSEARCH_COMMAND("merge", "Join the results files of a sharded search (job array) into one", setup_merge);

}  // namespace
}  // namespace diffsearch::cli
