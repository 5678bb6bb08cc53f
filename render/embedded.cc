// Looking up the embedded templates by file name.
#include "codegen/templates.h"

#include "io/error.h"

namespace diffsearch::codegen {

const std::string& embedded_template(const std::string& file_name) {
  const auto& all = embedded_templates();
  auto it = all.find(file_name);
  if (it == all.end()) {
    std::string names;
    for (const auto& [name, text] : all) names += (names.empty() ? "" : ", ") + name;
    throw Error("no embedded template named " + file_name + " (embedded: " + names +
                "); templates live in codegen/templates/ and are embedded when the library is built");
  }
  return it->second;
}

}  // namespace diffsearch::codegen
