// The one exception type for errors a user can cause (bad input, missing
// files, impossible targets). Messages name the file, the field and the fix.
// Broken internal invariants use DIFFSEARCH_ASSERT instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace diffsearch {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Bad usage or bad input (exit code 2) versus a run that failed (exit code 1).
class InputError : public Error {
 public:
  explicit InputError(const std::string& message) : Error(message) {}
};

// Process exit codes, documented in README.md and docs/architecture.md ("Exit codes").
namespace exit_code {
constexpr int ok = 0;
constexpr int failed = 1;
constexpr int bad_input = 2;
constexpr int interrupted_resume = 75;  // EX_TEMPFAIL: rerun with --resume
}  // namespace exit_code

}  // namespace diffsearch

#define DIFFSEARCH_ASSERT(cond)                                                  \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "internal error: %s:%d: assertion failed: %s\n",       \
                   __FILE__, __LINE__, #cond);                                   \
      std::abort();                                                              \
    }                                                                            \
  } while (0)
