#pragma once
// FNV-1a (64-bit): a hash of text that is the same on every platform, build
// and run, for fingerprints written into results files (the prompt list) and
// for seeds that must not change between runs (the synthetic evaluators).
#include <cstdint>
#include <string_view>

namespace diffsearch::io {

inline constexpr std::uint64_t kFnv1aOffsetBasis = 1469598103934665603ull;

// `seed` chains hashes: fnv1a(b, fnv1a(a)) hashes a then b.
inline std::uint64_t fnv1a(std::string_view text, std::uint64_t seed = kFnv1aOffsetBasis) {
  std::uint64_t h = seed;
  for (const unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace diffsearch::io
