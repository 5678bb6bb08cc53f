// The safetensors reader on arbitrary bytes: opening either refuses the file
// with an InputError naming it, or yields views a loader can trust (inside
// the mapping, sizes that match shape and dtype, dimensions >= 0).
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "io/safetensors.h"

using namespace diffsearch;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("input.safetensors", data, size);
  fuzz::expect_clean_refusal(
      [&] {
        const auto file = io::SafetensorsFile::open(path);
        for (const auto& name : file->names()) {
          const auto& view = file->tensor(name);
          for (auto d : view.shape) DIFFSEARCH_ASSERT(d >= 0);
          DIFFSEARCH_ASSERT(static_cast<std::uint64_t>(view.numel()) * io::dtype_size(view.dtype) == view.nbytes);
          // Touch both ends: ASan reports a view that leaves the mapping.
          volatile std::uint8_t sink = 0;
          if (view.nbytes > 0) sink = sink + view.data[0] + view.data[view.nbytes - 1];
          (void)sink;
        }
        for (const auto& [k, v] : file->metadata()) (void)k.size(), (void)v.size();
      },
      path);
  return 0;
}
