// The templates of codegen/templates/, embedded into the library when it is
// built (codegen/templates.cmake), so the executable renders them from any
// working directory without the source tree.
#pragma once

#include <map>
#include <string>

namespace diffsearch::codegen {

// File name ("script.py.tmpl") -> contents. Defined in the generated
// embedded_templates.cc.
const std::map<std::string, std::string>& embedded_templates();

// One template's contents; diffsearch::Error when none has that name.
const std::string& embedded_template(const std::string& file_name);

}  // namespace diffsearch::codegen
