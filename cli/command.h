// How subcommands plug into the one `diffsearch` executable: each cli/cmd_*.cc
// registers itself with DIFFSEARCH_COMMAND, so adding a subcommand touches one
// file. Only cli/ sees CLI11.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace diffsearch::cli {

// Runs the parsed subcommand; returns the process exit code (io/error.h).
using Runner = std::function<int()>;
// Declares the subcommand's options on `sub` and returns its runner. The
// runner reads the variables the options were bound to.
using Setup = std::function<Runner(CLI::App& sub)>;

struct CommandSpec {
  std::string name;
  std::string description;
  Setup setup;
};

std::vector<CommandSpec>& command_registry();

struct CommandRegistrar {
  CommandRegistrar(std::string name, std::string description, Setup setup) {
    command_registry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace diffsearch::cli

#define DIFFSEARCH_CONCAT_INNER(a, b) a##b
#define DIFFSEARCH_CONCAT(a, b) DIFFSEARCH_CONCAT_INNER(a, b)
// DIFFSEARCH_COMMAND("parse", "Parse a task sentence", [](CLI::App& sub) { ... return runner; });
#define DIFFSEARCH_COMMAND(name, description, setup)                              \
  static ::diffsearch::cli::CommandRegistrar DIFFSEARCH_CONCAT(command_registrar_, \
                                                               __LINE__)(name, description, setup)
