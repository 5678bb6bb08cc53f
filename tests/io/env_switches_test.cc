// The one list of environment switches is complete: every DIFFSEARCH_ name
// the sources quote is in it (or is one the program sets for itself), and
// docs/architecture.md lists each; --help prints each; a note names a switch
// only while it is set.
#include "io/env_switches.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace diffsearch::io {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::set<std::string> listed() {
  std::set<std::string> names;
  for (const auto& s : env_switches()) names.insert(s.name);
  return names;
}

TEST(EnvSwitches, EveryQuotedNameInTheSourcesIsListed) {
  const fs::path root(DIFFSEARCH_SOURCE_DIR);
  // Set by diffsearch itself (a worker for its child), not by users.
  const std::set<std::string> internal = {"DIFFSEARCH_CHILD_GENERATION"};
  const std::regex quoted("\"(DIFFSEARCH_[A-Z0-9_]+)\"");
  const auto names = listed();
  std::size_t seen = 0;
  for (const char* folder : {"cli", "coordinator", "io", "partition", "worker", "codegen", "render", "slurm", "report"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root / folder)) {
      const auto ext = entry.path().extension();
      if (ext != ".cc" && ext != ".h") continue;
      const std::string text = slurp(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), quoted), end; it != end; ++it) {
        const std::string name = (*it)[1];
        ++seen;
        EXPECT_TRUE(names.count(name) || internal.count(name))
            << entry.path() << " reads " << name << ", which io/env_switches.cc does not list";
      }
    }
  }
  EXPECT_GT(seen, names.size());  // the scan found the code that reads them
}

TEST(EnvSwitches, TheDocsAndHelpNameEach) {
  const std::string doc = slurp(fs::path(DIFFSEARCH_SOURCE_DIR) / "docs" / "architecture.md");
  const std::string help = env_switches_help();
  for (const auto& s : env_switches()) {
    EXPECT_NE(doc.find(std::string("`") + s.name + "`"), std::string::npos) << s.name << " not in docs/architecture.md";
    EXPECT_NE(help.find(s.name), std::string::npos) << s.name;
  }
}

TEST(EnvSwitches, NoteNamesASwitchOnlyWhileSet) {
  const char* name = "DIFFSEARCH_CUDA_MEMORY_FRACTION";
  unsetenv(name);
  EXPECT_EQ(env_switch_note(name), "");
  setenv(name, "0.25", 1);
  EXPECT_NE(env_switch_note(name).find("DIFFSEARCH_CUDA_MEMORY_FRACTION=0.25 is set"), std::string::npos);
  unsetenv(name);
}

}  // namespace
}  // namespace diffsearch::io
