// What many tests need: a fresh folder of their own, running a shell command
// and reading its output, counting the rows a search journalled.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace diffsearch::testing {

struct CommandResult {
  int code = -1;    // exit status; 128 + signal when killed
  std::string out;  // stdout (and stderr when the command redirects it)
};

// Runs `command` with sh, reading its stdout to the end.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// An empty folder under the system's temporary one, named after `prefix`,
// this process and the running test, so parallel tests never share one.
inline std::filesystem::path fresh_test_dir(const std::string& prefix) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       (prefix + "_" + std::to_string(getpid()) + "_" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Evaluation rows in a results file's journal (what a search has recorded
// so far, also while it runs).
inline std::size_t journal_evaluation_rows(const std::string& results) {
  std::ifstream in(results + ".journal");
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) n += line.find("\"kind\":\"evaluation\"") != std::string::npos;
  return n;
}

}  // namespace diffsearch::testing
