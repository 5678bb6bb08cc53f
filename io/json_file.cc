// JSON files read whole and parsed, errors on one line naming the file.
#include "io/json_file.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace diffsearch::io {

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) throw InputError(path + ": " + what + " file not found or unreadable (check the path)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  try {
    return nlohmann::json::parse(buffer.str());
  } catch (const nlohmann::json::exception& e) {
    std::string detail = e.what();  // names the byte offset; keep the message on one line
    for (auto& c : detail) {
      if (c == '\n') c = ' ';
    }
    throw InputError(path + ": " + what + " file is not valid JSON (" + detail + "); fix the syntax");
  }
}

}  // namespace diffsearch::io
