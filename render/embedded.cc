// Looking up embedded templates by file name.
#include "render/embedded.h"

#include "io/error.h"

namespace diffsearch::render {

const std::string& template_text(const TemplateFiles& files, const std::string& file_name,
                                 const std::string& folder) {
  auto it = files.find(file_name);
  if (it == files.end()) {
    std::string names;
    for (const auto& [name, text] : files) names += (names.empty() ? "" : ", ") + name;
    throw Error("no embedded template named " + file_name + " (embedded from " + folder + ": " + names +
                "); templates live in " + folder + " and are embedded when the library is built");
  }
  return it->second;
}

}  // namespace diffsearch::render
