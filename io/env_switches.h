// The environment variables diffsearch reads, in one table: `diffsearch
// --help` prints it, and docs/architecture.md ("Environment switches") lists
// the same names. A new getenv in the code belongs here too.
#pragma once

#include <string>
#include <vector>

namespace diffsearch::io {

struct EnvSwitch {
  const char* name;
  const char* values;   // what it may be set to
  const char* meaning;  // one line
};

// Every switch a user may set, in the order --help prints them.
const std::vector<EnvSwitch>& env_switches();

// The --help footer: one line per switch.
std::string env_switches_help();

// " (NAME=value is set; ...)" when NAME is set and non-empty, else "": for
// error messages whose cause the switch may be.
std::string env_switch_note(const char* name);

}  // namespace diffsearch::io
