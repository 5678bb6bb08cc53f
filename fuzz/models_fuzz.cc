// `--models` files on arbitrary bytes: model names to folders, or an
// InputError naming the file.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "partition/models_file.h"

using namespace diffsearch;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("models.json", data, size);
  fuzz::expect_clean_refusal(
      [&] {
        for (const auto& [model, dir] : partition::read_models_file(path)) {
          DIFFSEARCH_ASSERT(!partition::model_name(model).empty());
          (void)dir.size();
        }
      },
      path);
  return 0;
}
