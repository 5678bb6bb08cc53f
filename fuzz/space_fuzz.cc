// `--space` files on arbitrary bytes: read, resolved for every model at a few
// step counts and enumerated. Either an InputError naming the file, or
// settings whose canonical key reads back to the same setting.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "partition/search_space.h"

using namespace diffsearch;
using partition::Method;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = fuzz::write_file("space.json", data, size);
  partition::SpaceConfig config;
  bool read = false;
  fuzz::expect_clean_refusal(
      [&] {
        config = partition::read_space_file(path);
        read = true;
      },
      path);
  if (!read) return 0;
  const std::vector<std::vector<Method>> combos = {
      {Method::DeepCache}, {Method::TGate}, {Method::ToMe}, {Method::DeepCache, Method::TGate, Method::ToMe}};
  for (auto model : partition::all_models()) {
    for (int steps : {1, 7, 50, partition::kMaxSteps}) {
      fuzz::expect_clean_refusal(
          [&] {
            (void)partition::resolve_method_space(model, steps, config);
            for (const auto& methods : combos) {
              // Enumerate only what stays small (a few hundred round trips
              // under ASan is already milliseconds); counting covers the rest.
              if (partition::count_settings(model, steps, methods, config) > 256) continue;
              for (const auto& setting : partition::enumerate_settings(model, steps, methods, config)) {
                const auto json = partition::setting_to_json(setting);
                const auto back = partition::setting_from_json(json, "fuzz");
                DIFFSEARCH_ASSERT(partition::setting_key(back) == partition::setting_key(setting));
                (void)partition::accel_args(setting);
              }
            }
          },
          path);
    }
  }
  return 0;
}
