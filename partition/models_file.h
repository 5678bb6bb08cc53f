// The --models file of `diffsearch search`: a JSON object mapping model names
// ("SD1.5", "SD2.1", "SDXL", or their aliases) to diffusers folders.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "partition/task.h"

namespace diffsearch::partition {

// Model -> folder; a relative folder is taken relative to the file's own
// folder. Keys starting with '_' are comments. InputError naming `path`, the
// key and the fix for anything else.
std::map<Model, std::string> models_from_json(const nlohmann::json& json, const std::string& path);
std::map<Model, std::string> read_models_file(const std::string& path);

}  // namespace diffsearch::partition
