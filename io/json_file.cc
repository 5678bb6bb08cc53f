// JSON files read whole and parsed, errors on one line naming the file.
#include "io/json_file.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace diffsearch::io {
namespace {

// Python's json writes the non-standard tokens NaN, Infinity and -Infinity
// (diffusers' scheduler configs carry "lambda_min_clipped": -Infinity). They
// become the strings "NaN", "Infinity" and "-Infinity"; readers of such
// fields accept those.
std::string quote_python_constants(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    bool replaced = false;
    for (const char* token : {"-Infinity", "Infinity", "NaN"}) {
      const std::size_t n = std::char_traits<char>::length(token);
      if (text.compare(i, n, token) == 0) {
        out += '"';
        out += token;
        out += '"';
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

}  // namespace

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": " + what + " file not found or unreadable (check the path)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(quote_python_constants(buffer.str()));
  } catch (const nlohmann::json::exception& e) {
    std::string detail = e.what();  // names the byte offset; keep the message on one line
    for (auto& c : detail) {
      if (c == '\n') c = ' ';
    }
    throw InputError(path + ": " + what + " file is not valid JSON (" + detail + "); fix the syntax");
  }
}

}  // namespace diffsearch::io
