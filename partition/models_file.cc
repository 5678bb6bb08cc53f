// The --models file: model name -> diffusers folder.
#include "partition/models_file.h"

#include "io/error.h"
#include "io/json_file.h"

namespace diffsearch::partition {

std::map<Model, std::string> models_from_json(const nlohmann::json& json, const std::string& path) {
  if (!json.is_object()) {
    throw InputError(path + ": expected a JSON object mapping \"SD1.5\", \"SD2.1\", \"SDXL\" to model folders");
  }
  const auto slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  std::map<Model, std::string> out;
  for (const auto& [name, value] : json.items()) {
    if (!name.empty() && name[0] == '_') continue;
    const auto model = find_model(name);
    if (!model) throw InputError(path + ": unknown model \"" + name + "\" (expected SD1.5, SD2.1 or SDXL)");
    if (!value.is_string()) throw InputError(path + ": \"" + name + "\" must be a folder path (a string)");
    std::string dir = value.get<std::string>();
    if (!dir.empty() && dir[0] != '/') dir = base + dir;
    out[*model] = dir;
  }
  return out;
}

std::map<Model, std::string> read_models_file(const std::string& path) {
  return models_from_json(io::read_json_file(path, "models"), path);
}

}  // namespace diffsearch::partition
