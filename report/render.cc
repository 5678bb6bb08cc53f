// Filling the report template: text from the results file through the html
// filter, numbers and the charts' SVG (report/charts.h) as code.
#include "report/render.h"

#include <cmath>
#include <ctime>
#include <set>

#include "render/template.h"
#include "io/version.h"
#include "report/charts.h"

namespace diffsearch::report {
namespace {

using render::TemplateContext;

// Above this many spaces the planes start folded (each opens on a click):
// the browser then lays out only what is opened.
constexpr std::size_t kOpenSpaces = 24;

std::string count(std::size_t n) { return std::to_string(n); }

std::string value(double v) { return std::isfinite(v) ? fixed(v, 6) : "NaN"; }

std::string seconds_text(double s) {
  if (!std::isfinite(s)) return "-";
  if (s >= 7200) return fixed(s / 3600, 1) + " GPU-hours";
  if (s >= 120) return fixed(s / 60, 1) + " GPU-minutes";
  return fixed(s, 1) + " GPU-seconds";
}

std::string utc(double unix_s) {
  if (!(unix_s > 0)) return "-";
  const std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string attr_text(const nlohmann::json& attrs, const char* name) {
  if (!attrs.contains(name) || attrs[name].is_null()) return "-";
  return attrs[name].is_string() ? attrs[name].get<std::string>() : attrs[name].dump();
}

std::string list_text(const std::vector<std::string>& items, std::size_t shown) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < shown; ++i) out += (out.empty() ? "" : ", ") + items[i];
  if (items.size() > shown) out += " and " + std::to_string(items.size() - shown) + " more";
  return out;
}

std::vector<TemplateContext> answer_rows(const ReportData& d) {
  std::vector<TemplateContext> out;
  for (const auto& a : d.answers) {
    TemplateContext c;
    c.text("key", a.key)
        .text("sentence", a.sentence)
        .text("model", a.model)
        .text("sampler", a.sampler)
        .code("steps", std::to_string(a.steps))
        .text("methods", a.methods)
        .text("goal", a.goal)
        .code("bound", a.has_loss_bound ? fixed(a.max_loss, 4) : "-")
        .code("bound_v", a.has_loss_bound ? value(a.max_loss) : "NaN")
        .text("status", a.status)
        .code("speedup", std::isfinite(a.speedup) ? fixed(a.speedup, 2) + "x" : "-")
        .code("speedup_v", value(a.speedup))
        .code("loss", fixed(a.loss, 4))
        .code("loss_v", value(a.loss))
        .text("setting", a.setting.empty() ? "-" : a.setting)
        .text("device", a.device.empty() ? "-" : a.device)
        .text("space_anchor", a.space_anchor)
        .flag("has_space", !a.space_anchor.empty());
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> space_cards(const ReportData& d) {
  std::vector<TemplateContext> out;
  for (const auto& s : d.spaces) {
    if (s.tasks.empty() && s.rows == 0) continue;  // planned, never measured, no task: nothing to show
    TemplateContext c;
    std::vector<TemplateContext> tasks;
    for (const auto& t : s.tasks) {
      TemplateContext tc;
      std::string answer = "-";
      if (t.point) {
        const auto& p = s.points[*t.point];
        answer = p.setting + ": " + fixed(p.speedup, 2) + "x, loss " + fixed(p.loss, 4);
      }
      tc.text("key", t.key)
          .text("goal", t.speedup ? fixed(*t.speedup, 2) + "x" : t.latency_s ? fixed(*t.latency_s, 3) + " s" : "max")
          .code("bound", fixed(t.max_loss, 4))
          .text("status", t.status)
          .text("answer", answer);
      tasks.push_back(std::move(tc));
    }
    std::size_t front = 0;
    for (const auto& p : s.points) front += p.on_front;
    c.text("anchor", s.anchor)
        .text("key", s.key)
        .text("methods", s.methods)
        .code("open", d.spaces.size() <= kOpenSpaces ? " open" : "")
        .code("points", count(s.points.size()))
        .code("full", count(s.full_points))
        .code("front", count(front))
        .code("size", s.size ? count(s.size) : "?")
        .code("rows", count(s.rows))
        .code("failed", count(s.failed_rows))
        .code("seconds", seconds_text(s.gpu_seconds))
        .code("svg", plane_svg(s, d.speed_measure, d.quality))
        .flag("no_tasks", s.tasks.empty())
        .list("tasks", std::move(tasks));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> spending_rows(const ReportData& d) {
  std::vector<TemplateContext> out;
  double most = 0;
  for (const auto& s : d.spaces) most = std::max(most, s.gpu_seconds);
  for (const auto& s : d.spaces) {
    if (s.rows == 0) continue;
    TemplateContext c;
    c.text("key", s.key)
        .text("anchor", s.anchor)
        .code("color", methods_color(s.methods))
        .code("rows", count(s.rows))
        .code("failed", count(s.failed_rows))
        .code("points", count(s.points.size()))
        .code("full", count(s.full_points))
        .code("size", s.size ? count(s.size) : "?")
        .code("measured_pct", s.size ? fixed(100.0 * static_cast<double>(s.points.size()) / static_cast<double>(s.size), 1) : "-")
        .code("seconds", fixed(s.gpu_seconds, 1))
        .code("share_pct", fixed(d.gpu_seconds > 0 ? 100 * s.gpu_seconds / d.gpu_seconds : 0, 1))
        .code("bar_pct", fixed(most > 0 ? 100 * s.gpu_seconds / most : 0, 1));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> worker_rows(const ReportData& d) {
  std::vector<TemplateContext> out;
  for (const auto& w : d.workers) {
    const double span = d.time_end - d.time_start;
    TemplateContext c;
    c.text("name", w.name)
        .code("rows", count(w.rows))
        .code("failed", count(w.failed_rows))
        .code("seconds", fixed(w.gpu_seconds, 1))
        .code("busy_pct", span > 0 ? fixed(100 * w.busy_s / span, 1) : "-");
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> failure_rows(const ReportData& d) {
  std::vector<TemplateContext> out;
  for (const auto& f : d.failures) {
    TemplateContext c;
    c.text("error", f.error)
        .code("rows", count(f.rows))
        .code("units", count(f.units))
        .code("recovered", count(f.units_recovered))
        .code("still_failed", count(f.units - f.units_recovered))
        .text("workers", list_text(f.workers, 6))
        .text("spaces", list_text(f.spaces, 4));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> run_records(const ReportData& d) {
  std::vector<TemplateContext> out;
  for (const auto& run : d.runs) {
    const auto attrs = run.value("attributes", nlohmann::json::object());
    std::vector<TemplateContext> devices;
    if (attrs.contains("devices") && attrs["devices"].is_array()) {
      for (const auto& dev : attrs["devices"]) {
        TemplateContext dc;
        dc.text("name", dev.is_string() ? dev.get<std::string>() : dev.dump());
        devices.push_back(std::move(dc));
      }
    }
    const double started = attrs.contains("started_at") && attrs["started_at"].is_number() ? attrs["started_at"].get<double>() : 0;
    TemplateContext c;
    c.text("run_id", run.value("run_id", std::string("?")))
        .text("started", utc(started))
        .text("command_line", attr_text(attrs, "command_line"))
        .text("versions", attr_text(attrs, "versions"))
        .text("processes", attr_text(attrs, "processes"))
        .text("hosts", attr_text(attrs, "hosts"))
        .text("evaluator", attr_text(attrs, "evaluator"))
        .text("strategy", attr_text(attrs, "strategy"))
        .text("units_total", attr_text(attrs, "units_total"))
        .text("gpu_seconds", attrs.contains("gpu_seconds") && attrs["gpu_seconds"].is_number()
                                 ? seconds_text(attrs["gpu_seconds"].get<double>())
                                 : "- (the run did not finish)")
        .text("attributes_json", attrs.dump(2))
        .list("devices", std::move(devices));
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<TemplateContext> legend(const ReportData& d) {
  std::set<std::string> seen;
  for (const auto& s : d.segments) seen.insert(s.space < d.spaces.size() ? d.spaces[s.space].methods : "");
  std::vector<TemplateContext> out;
  for (const auto& m : seen) {
    TemplateContext c;
    c.text("name", m.empty() ? "baselines (basic tasks)" : m).code("color", methods_color(m));
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace

std::string render_report(const ReportData& d) {
  std::vector<TemplateContext> statuses;
  for (const auto& [status, n] : d.status_counts) {
    TemplateContext c;
    c.text("status", status).code("n", std::to_string(n));
    statuses.push_back(std::move(c));
  }
  std::string spent = seconds_text(d.gpu_seconds);
  if (d.gpu_seconds_exhaustive && *d.gpu_seconds_exhaustive > 0 && d.gpu_seconds > 0) {
    spent += " (measuring every setting: " + seconds_text(*d.gpu_seconds_exhaustive) + ", " +
             fixed(*d.gpu_seconds_exhaustive / d.gpu_seconds, 1) + "x more)";
  }
  TemplateContext c;
  c.text("results_path", d.results_path)
      .text("generator", io::version_text())
      .code("tasks", count(d.answers.size()))
      .list("statuses", std::move(statuses))
      .code("rows", count(d.rows))
      .code("failed_rows", count(d.failed_rows))
      .code("points", count(d.points))
      .code("spaces", count(d.spaces.size()))
      .code("workers", count(d.workers.size()))
      .text("spent", spent)
      .text("strategy", d.strategy)
      .text("loss_name", loss_name(d.quality))
      .flag("clip", d.quality == "clip")
      .text("speed_measure", d.speed_measure == "macs" ? "MAC ratio (deterministic)" : "wall clock")
      .code("samples", std::to_string(d.samples))
      .text("time_range", d.time_end > d.time_start ? utc(d.time_start) + " to " + utc(d.time_end) + " (" +
                                                          fixed((d.time_end - d.time_start) / 60, 1) + " minutes)"
                                                    : std::string("-"))
      .list("answers", answer_rows(d))
      .list("space_cards", space_cards(d))
      .flag("folded", d.spaces.size() > kOpenSpaces)
      .code("timeline", timeline_svg(d))
      .list("legend", legend(d))
      .list("spending", spending_rows(d))
      .list("worker_rows", worker_rows(d))
      .list("failures", failure_rows(d))
      .list("runs", run_records(d))
      .text("config_json", d.config.dump(2));
  return render::Template("report.html.tmpl", embedded_template("report.html.tmpl")).render(c);
}

}  // namespace diffsearch::report
