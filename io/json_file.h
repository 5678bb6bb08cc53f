// Reading JSON files (configurations, search spaces, model configs) with one
// set of messages that name the file and say how to fix it.
#pragma once

#include <string>

#include <nlohmann/json_fwd.hpp>

namespace diffsearch::io {

// Reads JSON from a file; InputError naming the file (and `what` it is for,
// as in "search space") when it is missing or malformed.
nlohmann::json read_json_file(const std::string& path, const std::string& what = "JSON");

}  // namespace diffsearch::io
