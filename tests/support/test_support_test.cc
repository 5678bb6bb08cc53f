// The test-support library itself: the runner's exit codes (a killed
// command is 128 + its signal, which one suite's copy once read as a pass),
// its output, scratch folders and line counting.
#include "tests/support/test_support.h"

#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

namespace diffsearch::testing {
namespace {

TEST(TestSupport, RunCommandReportsExitCodesSignalsAndOutput) {
  EXPECT_EQ(run_command("exit 0").code, 0);
  EXPECT_EQ(run_command("exit 3").code, 3);
  EXPECT_EQ(run_command("kill -9 $$").code, 128 + 9);
  EXPECT_EQ(run_command("kill -11 $$").code, 128 + 11);
  const CommandResult r = run_command("printf 'a\\nb\\n'; echo err >&2");
  EXPECT_EQ(r.out, "a\nb\n");  // stdout only, unless the command redirects
  EXPECT_EQ(count_lines(r.out), 2u);
}

TEST(TestSupport, FreshTestDirIsEmptyAndPerTest) {
  const auto dir = fresh_test_dir("support");
  std::ofstream(dir / "left.txt") << "x";
  EXPECT_EQ(read_text_file(dir / "left.txt"), "x");
  const auto again = fresh_test_dir("support");
  EXPECT_EQ(again, dir);
  EXPECT_TRUE(std::filesystem::is_empty(again));  // made afresh
  std::filesystem::remove_all(again);
}

TEST(TestSupport, StartedCommandRunsInItsOwnSession) {
  const pid_t child = start_command_in_own_session("test \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\"");
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the shell does not lead its own session";
}

}  // namespace
}  // namespace diffsearch::testing
