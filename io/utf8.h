#pragma once
// Well-formed UTF-8: what nlohmann::json needs to dump a string, and what
// every text diffsearch writes (prompts, task fields, results columns) is.
#include <cstddef>
#include <string_view>

namespace diffsearch::io {

// Byte offset of the first sequence that is not well-formed UTF-8 (a stray
// continuation byte, a truncated sequence, an overlong form, a surrogate or a
// code point past U+10FFFF), or std::string_view::npos when there is none.
std::size_t invalid_utf8_at(std::string_view text);

inline bool is_utf8(std::string_view text) { return invalid_utf8_at(text) == std::string_view::npos; }

}  // namespace diffsearch::io
