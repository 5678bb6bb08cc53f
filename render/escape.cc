// Escapers for generated files. One decoder walks the UTF-8 so that every
// output form treats malformed bytes the same way.
#include "render/escape.h"

#include <cctype>
#include <cmath>
#include <cstdio>

#include "io/error.h"
#include "partition/task.h"

namespace diffsearch::render {
namespace {

std::string hex_escape(char kind, unsigned long value, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\%c%0*lx", kind, digits, value);
  return buf;
}

// Decodes one code point at s[i]; returns its length in bytes, or 0 when the
// bytes there are not well-formed UTF-8 (overlong forms, surrogates and code
// points past U+10FFFF included).
std::size_t decode_utf8(const std::string& s, std::size_t i, unsigned long& cp) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  std::size_t len;
  unsigned long min;
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// The body of a Python string literal; `quote` is escaped when non-zero.
std::string escape_python(const std::string& s, char quote) {
  std::string out;
  out.reserve(s.size() + 8);
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned long cp = 0;
    const std::size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      out += hex_escape('u', 0xDC00 + static_cast<unsigned char>(s[i]), 4);
      ++i;
      continue;
    }
    i += len;
    if (cp == '\\') {
      out += "\\\\";
    } else if (quote != 0 && cp == static_cast<unsigned long>(quote)) {
      out += '\\';
      out += quote;
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp >= 0x20 && cp < 0x7F) {
      out += static_cast<char>(cp);
    } else if (cp < 0x100) {
      out += hex_escape('x', cp, 2);
    } else if (cp < 0x10000) {
      out += hex_escape('u', cp, 4);
    } else {
      out += hex_escape('U', cp, 8);
    }
  }
  return out;
}

}  // namespace

std::string py_str(const std::string& utf8) { return "'" + escape_python(utf8, '\'') + "'"; }

std::string comment_text(const std::string& utf8) { return escape_python(utf8, 0); }

std::string md_cell(const std::string& utf8) {
  std::string out;
  for (char c : comment_text(utf8)) {
    // CommonMark lets any ASCII punctuation be backslash-escaped; these are
    // the ones that can start markup or end a table cell.
    if (std::string("\\`*_[]<>|#&!~").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

std::string html_text(const std::string& utf8) {
  std::string out;
  out.reserve(utf8.size() + 8);
  std::size_t i = 0;
  while (i < utf8.size()) {
    unsigned long cp = 0;
    std::size_t len = decode_utf8(utf8, i, cp);
    if (len == 0) {
      cp = 0xFFFD;  // a byte that is not UTF-8: the replacement character, as browsers show it
      len = 1;
    }
    i += len;
    if (cp == '&') {
      out += "&amp;";
    } else if (cp == '<') {
      out += "&lt;";
    } else if (cp == '>') {
      out += "&gt;";
    } else if (cp == '"') {
      out += "&quot;";
    } else if (cp == '\'') {
      out += "&#39;";
    } else if (cp >= 0x20 && cp < 0x7F) {
      out += static_cast<char>(cp);
    } else if (cp == '\n') {
      out += "&#10;";  // still a line break in <pre> and attributes, but not in the output
    } else if (cp == '\t') {
      out += "&#9;";
    } else if (cp < 0x20 || cp == 0x7F) {
      out += "&#xFFFD;";  // control characters are not allowed in HTML text
    } else {
      char buf[16];
      std::snprintf(buf, sizeof buf, "&#x%lX;", cp);
      out += buf;
    }
  }
  return out;
}

std::string percent_encode(const std::string& text, const std::string& keep) {
  std::string out;
  for (unsigned char c : text) {
    if ((c < 0x80 && std::isalnum(c)) || (c != '\0' && keep.find(static_cast<char>(c)) != std::string::npos)) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string url_path(const std::string& text) { return percent_encode(text, "-._~"); }

std::string sh_word(const std::string& text) {
  bool plain = !text.empty();
  for (unsigned char c : text) {
    if (!(std::isalnum(c) || std::string("@%+=:,./_-").find(static_cast<char>(c)) != std::string::npos)) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string py_float(double value) {
  if (std::isnan(value)) return "float('nan')";
  if (std::isinf(value)) return value > 0 ? "float('inf')" : "-float('inf')";
  return partition::format_number(value);
}

std::string py_int(std::int64_t value) { return std::to_string(value); }

std::string py_bool(bool value) { return value ? "True" : "False"; }

std::string py_value(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: return "None";
    case nlohmann::json::value_t::boolean: return py_bool(value.get<bool>());
    case nlohmann::json::value_t::number_integer: return py_int(value.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned: return std::to_string(value.get<std::uint64_t>());
    case nlohmann::json::value_t::number_float: return py_float(value.get<double>());
    case nlohmann::json::value_t::string: return py_str(value.get<std::string>());
    case nlohmann::json::value_t::object: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : value.items()) {
        out += (first ? "" : ", ") + py_str(k) + ": " + py_value(v);
        first = false;
      }
      return out + "}";
    }
    default: break;
  }
  DIFFSEARCH_ASSERT(!"py_value: arrays and binary values have no place in a setting");
  return {};
}

}  // namespace diffsearch::render
