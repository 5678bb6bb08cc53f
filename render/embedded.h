// Templates embedded into the library that renders them (render/embed.cmake),
// so the executable needs no source tree at run time. Each consumer (codegen/,
// slurm/, report/) embeds its own folder templates/ and declares, in its own
// namespace and main header, the two functions the generated file defines:
//
//   const render::TemplateFiles& embedded_templates();
//   const std::string& embedded_template(const std::string& file_name);
#pragma once

#include <map>
#include <string>

namespace diffsearch::render {

// File name ("script.py.tmpl") -> contents.
using TemplateFiles = std::map<std::string, std::string>;

// The contents of `file_name` among `files` (embedded from the source folder
// `folder`); diffsearch::Error naming the folder and what it holds otherwise.
const std::string& template_text(const TemplateFiles& files, const std::string& file_name,
                                 const std::string& folder);

}  // namespace diffsearch::render
