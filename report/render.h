// The report as one self-contained HTML page (report/templates/report.html.tmpl):
// styles, charts and the table's script inline, nothing fetched.
#pragma once

#include <string>

#include "report/report_data.h"
#include "render/embedded.h"

namespace diffsearch::report {

std::string render_report(const ReportData& data);

// report/templates/ (the HTML page), embedded when the library is built (render/embed.cmake),
// so the executable renders them from any working directory; embedded_template
// throws diffsearch::Error naming what there is when none has `file_name`.
const render::TemplateFiles& embedded_templates();
const std::string& embedded_template(const std::string& file_name);

}  // namespace diffsearch::report
