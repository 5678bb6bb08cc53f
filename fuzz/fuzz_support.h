// What every fuzz target shares: the input as a file (the parsers read
// paths), and the rule that a parser may only refuse input with an
// InputError. Any other exception is a finding: the CLI would print it
// without the file, field and fix, and exit 1 instead of 2.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "io/error.h"
#include "io/log/log.h"
#include "partition/task.h"

namespace diffsearch::fuzz {

// A per-process scratch folder: libFuzzer's -fork and -jobs modes run targets
// side by side, so names carry the process id.
inline std::string scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string d = std::string(base && *base ? base : "/tmp") + "/diffsearch-fuzz-" + std::to_string(::getpid());
    std::string cmd = "mkdir -p '" + d + "'";
    if (std::system(cmd.c_str()) != 0) std::abort();
    return d;
  }();
  return dir;
}

inline std::string write_file(const std::string& name, const std::uint8_t* data, std::size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) std::abort();
  return path;
}

inline void quiet_logs() { log::set_level(log::Level::error); }

// Runs `body`; an InputError is the parser refusing bad input, as it should.
// The message must name the input (`must_name`: the file's path or a word of
// the text) so that the user can find what to fix.
template <class F>
void expect_clean_refusal(F&& body, const std::string& must_name = "") {
  try {
    body();
  } catch (const InputError& e) {
    const std::string what = e.what();
    if (!must_name.empty() && what.find(must_name) == std::string::npos) {
      std::fprintf(stderr, "finding: InputError does not name %s: %s\n", must_name.c_str(), what.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "finding: %s escaped instead of an InputError: %s\n", typeid(e).name(), e.what());
    std::abort();
  }
}

// The tasks the results and search_params targets (and their seeds, from
// make_seeds) answer: every category, two models, a latency budget.
inline const std::vector<partition::Task>& tasks() {
  static const std::vector<partition::Task> list = [] {
    std::vector<partition::Task> out;
    for (const char* s : {
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with "
             "1.5x speedup and precision loss not exceeding 0.02",
             "Generate a SD2.1 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache and ToMe "
             "with 2.0x speedup and precision loss not exceeding 0.02",
             "Generate a SD2.1 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe",
             "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe, with 1.5s "
             "latency on \"NVIDIA H200\"",
         }) {
      out.push_back(partition::parse_task(s));
    }
    return out;
  }();
  return list;
}

}  // namespace diffsearch::fuzz
