// The diffsearch executable: dispatches to the subcommands registered in
// cli/cmd_*.cc and turns exceptions into one-line messages and exit codes.
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>

#include "cli/command.h"
#include "io/env_switches.h"
#include "io/error.h"
#include "io/failure.h"
#include "io/log/log.h"
#include "io/version.h"

namespace diffsearch::cli {

std::vector<CommandSpec>& command_registry() {
  static std::vector<CommandSpec> registry;
  return registry;
}

}  // namespace diffsearch::cli

int main(int argc, char** argv) {
  using namespace diffsearch;
  CLI::App app{
      "diffsearch: search, across GPUs, for the Stable Diffusion acceleration settings\n"
      "(DeepCache, ToMe, T-GATE) that meet a speed target at the least quality loss."};
  app.require_subcommand(1);
  app.fallthrough();  // --log-level may follow the subcommand too
  app.set_version_flag("--version", io::version_text());
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();

  std::vector<std::pair<CLI::App*, cli::Runner>> runners;
  for (auto& spec : cli::command_registry()) {
    CLI::App* sub = app.add_subcommand(spec.name, spec.description);
    runners.emplace_back(sub, spec.setup(*sub));
  }
  // Set after the subcommands, which would inherit it: the top-level --help
  // names the environment switches, one table (io/env_switches.h).
  app.footer(io::env_switches_help());
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? exit_code::ok : exit_code::bad_input;
  }
  try {
    log::set_level(log::parse_level(log_level));
    for (auto& [sub, runner] : runners) {
      if (sub->parsed()) return runner();
    }
    std::fprintf(stderr, "error: no subcommand given; see diffsearch --help\n");
    return exit_code::bad_input;
  } catch (const InputError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code::bad_input;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return exit_code::failed;
  } catch (const std::exception& e) {
    // libtorch's out of memory (diffsearch sample) may be a memory cap's doing.
    const std::string note = classify_failure(e) == FailureKind::out_of_memory
                                 ? io::env_switch_note("DIFFSEARCH_CUDA_MEMORY_FRACTION")
                                 : std::string();
    std::fprintf(stderr, "error: %s%s\n", e.what(), note.c_str());
    return exit_code::failed;
  }
}
