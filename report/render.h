// The report as one self-contained HTML page (report/templates/report.html.tmpl):
// styles, charts and the table's script inline, nothing fetched.
#pragma once

#include <string>

#include "report/report_data.h"

namespace diffsearch::report {

std::string render_report(const ReportData& data);

}  // namespace diffsearch::report
