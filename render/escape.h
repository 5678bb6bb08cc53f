// Turning untrusted text (task sentences, prompts, device names, paths) and
// numbers into pieces of generated files: Python literals, comment text,
// Markdown table cells, HTML text, URLs and shell words. Every result is pure ASCII and
// free of line breaks, so no input can end a literal or a comment early.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace diffsearch::render {

// A Python str literal that evaluates to `utf8`: single-quoted, printable
// ASCII kept, quotes and backslashes escaped, \n \r \t, other characters as
// \xNN, \uNNNN or \UNNNNNNNN. Bytes that are not valid UTF-8 become \udcNN,
// Python's surrogateescape spelling of the raw byte.
std::string py_str(const std::string& utf8);

// The same escapes without quotes (a quote stays as it is): text for a
// '#' comment or a plain-text note, on one line whatever the input.
std::string comment_text(const std::string& utf8);

// comment_text with Markdown's punctuation backslash-escaped: one table cell.
std::string md_cell(const std::string& utf8);

// HTML text or a quoted attribute value: & < > " ' as entities, other
// non-ASCII characters as &#xNN; references (so the page is ASCII whatever
// its charset), line breaks and tabs as &#10; and &#9; (still line breaks
// in <pre> and attributes), bytes that are not UTF-8 and other control
// characters as U+FFFD.
std::string html_text(const std::string& utf8);

// Percent-encoding of everything but A-Z a-z 0-9 - . _ ~ (Markdown links).
std::string url_path(const std::string& text);
// Every byte that is neither an ASCII letter or digit nor in `keep` as %XX
// (upper-case hex): the one percent-encoder behind url_path and file names.
std::string percent_encode(const std::string& text, const std::string& keep);

// A POSIX shell word: unquoted when it holds only [A-Za-z0-9@%+=:,./_-],
// else single-quoted ('\'' for a quote). Not one line: pass it on through
// comment_text before it lands in a comment.
std::string sh_word(const std::string& text);

// Python numbers: the shortest text that reads back to the same double
// ("2.0", "0.3", "1e-05"); float('nan'), float('inf'), -float('inf').
std::string py_float(double value);
std::string py_int(std::int64_t value);
std::string py_bool(bool value);
// A JSON scalar as a Python literal (None, True/False, int, float, str); a
// JSON object as a dict literal with its keys in sorted order. Arrays are
// refused (DIFFSEARCH_ASSERT): settings hold none.
std::string py_value(const nlohmann::json& value);

}  // namespace diffsearch::render
