#include "tests/support/test_support.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace diffsearch::testing {

namespace fs = std::filesystem;

CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  const int status = pclose(pipe);
  if (status == -1) return r;
  // A killed command reads as the shell reports it, never as a success.
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

fs::path fresh_test_dir(const std::string& prefix) {
  const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::temp_directory_path() /
                       (prefix + "_" + std::to_string(getpid()) + "_" + (test != nullptr ? test->name() : "suite"));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t count_lines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

void expect_contains(const std::string& text, const std::vector<std::string>& parts) {
  for (const auto& p : parts) EXPECT_NE(text.find(p), std::string::npos) << "no \"" << p << "\" in:\n" << text;
}

pid_t start_command_in_own_session(const std::string& command) {
  const pid_t child = fork();
  if (child == 0) {
    setsid();
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return child;
}

void allow_mpirun_here() {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
}

std::size_t journal_evaluation_rows(const std::string& results) {
  std::ifstream in(results + ".journal");
  std::string line;
  std::size_t n = 0;
  while (std::getline(in, line)) n += line.find("\"kind\":\"evaluation\"") != std::string::npos;
  return n;
}

}  // namespace diffsearch::testing
