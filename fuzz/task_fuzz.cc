// The task language on arbitrary text: a sentence either parses into a task
// whose canonical sentence parses back to the same task, or is refused with
// an InputError; a tasks file likewise, its errors naming the file.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "partition/task.h"

using namespace diffsearch;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_clean_refusal([&] {
    const partition::Task task = partition::parse_task(text);
    const std::string canonical = partition::format_task(task);
    const partition::Task again = partition::parse_task(canonical);
    if (again != task || partition::format_task(again) != canonical) {
      std::fprintf(stderr, "finding: \"%s\" does not round-trip\n", canonical.c_str());
      std::abort();
    }
    DIFFSEARCH_ASSERT(partition::task_key(again) == partition::task_key(task));
    (void)partition::task_to_json(task).dump();
  });
  // Names of models, samplers and methods go through the same alias tables.
  fuzz::expect_clean_refusal([&] { (void)partition::parse_model(text); });
  fuzz::expect_clean_refusal([&] { (void)partition::parse_sampler(text); });
  fuzz::expect_clean_refusal([&] { (void)partition::parse_method(text); });
  const std::string path = fuzz::write_file("tasks.txt", data, size);
  fuzz::expect_clean_refusal(
      [&] {
        for (const auto& t : partition::read_tasks_file(path)) (void)partition::task_key(t);
      },
      path);
  return 0;
}
