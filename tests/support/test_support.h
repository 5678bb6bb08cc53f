// What many test suites need: a fresh folder of their own, running a shell
// command and reading its output, reading a file whole, checking that a
// message names what it should, counting the rows a search journalled.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace diffsearch::testing {

struct CommandResult {
  int code = -1;    // exit status; 128 + signal when killed, -1 when it could not start
  std::string out;  // stdout (and stderr when the command redirects it)
};

// Runs `command` with sh, reading its stdout to the end.
CommandResult run_command(const std::string& command);

// An empty folder under the system's temporary one, named after `prefix`,
// this process and the running test, so parallel tests never share one.
// Call it from inside a test (it reads the test's name); a second call with
// the same prefix in the same test empties the folder again.
std::filesystem::path fresh_test_dir(const std::string& prefix);

// The whole content of a file; empty when it cannot be read.
std::string read_text_file(const std::filesystem::path& path);

// The number of '\n' in `text`.
std::size_t count_lines(const std::string& text);

// Fails the running test for each of `parts` missing from `text`.
void expect_contains(const std::string& text, const std::vector<std::string>& parts);

// Starts `command` with sh in a session of its own (so a test can signal
// the whole group, mpirun and its ranks, with kill(-pid, ...)) and returns
// at once with its process id; the caller waits for it.
pid_t start_command_in_own_session(const std::string& command);

// Lets this process's mpirun children run as root (CI and the GPU machines
// are root) and put more ranks than cores on a 2-core machine.
void allow_mpirun_here();

// Evaluation rows in a results file's journal (what a search has recorded
// so far, also while it runs).
std::size_t journal_evaluation_rows(const std::string& results);

}  // namespace diffsearch::testing
