// search_params.json as `diffsearch codegen` reads it, on arbitrary bytes:
// either scripts for the answered tasks or an InputError naming the file.
#include <cstdint>
#include <string>

#include "codegen/codegen.h"
#include "fuzz/fuzz_support.h"
#include "io/json_file.h"

using namespace diffsearch;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("search_params.json", data, size);
  fuzz::expect_clean_refusal(
      [&] {
        codegen::CodegenRequest request;
        request.params = io::read_json_file(path, "search_params.json");
        request.provenance.params_path = path;
        request.tasks = fuzz::tasks();
        request.tasks_argument = "--tasks tasks.txt";
        const auto result = codegen::generate(request);
        DIFFSEARCH_ASSERT(result.scripts.size() + result.unanswered.size() == request.tasks.size());
        (void)result.report();
        (void)result.index.dump();
      },
      path);
  return 0;
}
