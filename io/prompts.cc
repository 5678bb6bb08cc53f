// Reading prompt files: plain text (one prompt a line) and COCO captions JSON
// (the first caption of each image, in image-id order).
#include "io/prompts.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/error.h"
#include "io/utf8.h"

namespace fs = std::filesystem;

namespace diffsearch::io {
namespace {

const char* kFormats =
    "a prompts file is plain text with one prompt a line, or COCO's captions JSON "
    "(annotations/captions_val2017.json)";

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string trim_right(std::string s) {
  while (!s.empty() && is_space(s.back())) s.pop_back();
  return s;
}

std::string trim(std::string s) {
  s = trim_right(std::move(s));
  std::size_t start = 0;
  while (start < s.size() && is_space(s[start])) ++start;
  return s.substr(start);
}

std::string read_file(const std::string& path) {
  if (!fs::exists(path)) {
    throw InputError(path + ": prompts file not found; " + kFormats +
                     " (leave --prompts out to use the built-in default prompts)");
  }
  if (fs::is_directory(path)) {
    throw InputError(path + ": is a folder, expected a prompts file; " + kFormats);
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": prompts file unreadable (check its permissions)");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  // Editors on Windows write a byte-order mark; it is not part of a prompt.
  if (text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
  return text;
}

std::vector<std::string> read_coco(const std::string& path, const nlohmann::json& json) {
  if (!json.is_object() || !json.contains("annotations") || !json["annotations"].is_array()) {
    throw InputError(path + ": JSON without an 'annotations' array; expected COCO captions "
                            "(annotations/captions_val2017.json, whose annotations have "
                            "'image_id' and 'caption'); or give a text file with one prompt a line");
  }
  // image id -> (annotation id, caption) of the lowest annotation id so far.
  std::map<int64_t, std::pair<int64_t, std::string>> first;
  const auto& annotations = json["annotations"];
  for (std::size_t i = 0; i < annotations.size(); ++i) {
    const auto& a = annotations[i];
    const std::string where = path + ": annotations[" + std::to_string(i) + "]";
    if (!a.is_object() || !a.contains("image_id") || !a["image_id"].is_number_integer() ||
        !a.contains("caption") || !a["caption"].is_string()) {
      throw InputError(where + " must be an object with an integer 'image_id' and a string "
                               "'caption', found " + a.dump().substr(0, 200) +
                       " (is this COCO's captions file, not instances or keypoints?)");
    }
    // Files without annotation ids keep their own order.
    int64_t id = static_cast<int64_t>(i);
    if (a.contains("id")) {
      if (!a["id"].is_number_integer()) {
        throw InputError(where + ": field 'id' must be an integer, found " + a["id"].dump());
      }
      id = a["id"].get<int64_t>();
    }
    // COCO captions carry stray spaces and newlines at either end.
    std::string caption = trim(a["caption"].get<std::string>());
    if (caption.empty()) continue;
    const int64_t image = a["image_id"].get<int64_t>();
    auto it = first.find(image);
    if (it == first.end() || id < it->second.first) first[image] = {id, std::move(caption)};
  }
  std::vector<std::string> prompts;
  prompts.reserve(first.size());
  for (auto& entry : first) prompts.push_back(std::move(entry.second.second));
  if (prompts.empty()) {
    throw InputError(path + ": COCO captions JSON with no non-empty caption in 'annotations'; "
                            "give a captions file with annotations or a text file of prompts");
  }
  return prompts;
}

std::vector<std::string> read_lines(const std::string& path, const std::string& text) {
  std::vector<std::string> prompts;
  std::size_t start = 0, line = 1;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string prompt = trim_right(text.substr(start, end - start));
    if (!prompt.empty()) {
      const std::size_t bad = invalid_utf8_at(prompt);
      if (bad != std::string::npos) {
        throw InputError(path + ":" + std::to_string(line) + ": not valid UTF-8 (byte " +
                         std::to_string(bad + 1) + " of the line); save the file as UTF-8");
      }
      prompts.push_back(std::move(prompt));
    }
    start = end + 1;
    ++line;
  }
  if (prompts.empty()) {
    throw InputError(path + ": no prompts in the file (it is empty or only blank lines); " +
                     kFormats);
  }
  return prompts;
}

bool has_json_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".json";
}

}  // namespace

std::vector<std::string> read_prompts(const std::string& path) {
  const std::string text = read_file(path);
  const std::string body = trim(text);
  const bool named_json = has_json_extension(path);
  if (named_json || (!body.empty() && body.front() == '{')) {
    if (body.empty()) {
      throw InputError(path + ": empty file; expected COCO captions JSON "
                              "(annotations/captions_val2017.json)");
    }
    nlohmann::json json;
    try {
      json = nlohmann::json::parse(body);
    } catch (const nlohmann::json::exception& e) {
      // A text file whose first prompt happens to start with '{' is still text.
      if (!named_json) return read_lines(path, text);
      throw InputError(path + ": not valid JSON (" + std::string(e.what()) +
                       "); expected COCO captions JSON (annotations/captions_val2017.json), "
                       "or rename a text file of prompts to .txt");
    }
    if (named_json || json.is_object()) return read_coco(path, json);
  }
  return read_lines(path, text);
}

std::vector<std::string> prompts_or_default(const std::string& path) {
  return path.empty() ? default_prompts() : read_prompts(path);
}

}  // namespace diffsearch::io
