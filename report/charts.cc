// Scales, ticks and the two SVG charts of the report.
#include "report/charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "render/escape.h"
#include "partition/task.h"

namespace diffsearch::report {
namespace {

using render::html_text;

std::string num(double v) {  // coordinates: short, locale-free
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

struct Scale {
  double d0, d1, r0, r1;
  double operator()(double v) const { return r0 + (v - d0) / (d1 - d0) * (r1 - r0); }
};

// About `count` round tick values (1, 2 or 5 times a power of ten) in [lo, hi].
std::vector<double> ticks(double lo, double hi, int count) {
  std::vector<double> out;
  const double span = hi - lo;
  if (!(span > 0)) return {lo};
  const double raw = span / count;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double step = raw / mag >= 5 ? 5 * mag : raw / mag >= 2 ? 2 * mag : mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

std::string tick_label(double v, double step) {
  const int decimals = step >= 1 ? 0 : std::min(4, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fixed(v, decimals);
}

}  // namespace

std::string fixed(double value, int decimals) {
  if (!std::isfinite(value)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string methods_color(const std::string& methods) {
  static const std::map<std::string, std::string> colors = {
      {"deepcache", "#1f77b4"},      {"tgate", "#2ca02c"},       {"tome", "#ff7f0e"},
      {"deepcache+tome", "#9467bd"}, {"deepcache+tgate", "#17becf"}, {"tgate+tome", "#bcbd22"},
      {"deepcache+tgate+tome", "#8c564b"}, {"", "#9e9e9e"}};
  auto it = colors.find(methods);
  return it == colors.end() ? "#e377c2" : it->second;
}

std::string loss_name(const std::string& quality) {
  if (quality == "ssim") return "SSIM loss (1 - SSIM)";
  if (quality == "psnr") return "PSNR loss (MSE / 255^2)";
  return "CLIP score loss";
}

std::string plane_svg(const SpaceView& space, const std::string& speed_measure, const std::string& quality) {
  constexpr double W = 520, H = 340, L = 58, R = 14, T = 32, B = 44;
  std::set<double> bounds, targets;
  for (const auto& t : space.tasks) {
    bounds.insert(t.max_loss);
    if (t.speedup) targets.insert(*t.speedup);
  }
  // The y range shows the losses that matter for the bounds; settings far
  // beyond them sit on the edge as triangles (their titles say where).
  const double cap = bounds.empty() ? INFINITY : 4 * *bounds.rbegin();
  double x0 = 1, x1 = 1, y0 = 0, y1 = bounds.empty() ? 0.01 : *bounds.rbegin() * 1.5;
  for (const auto& p : space.points) {
    x0 = std::min(x0, p.speedup);
    x1 = std::max(x1, p.speedup);
    if (std::fabs(p.loss) <= cap) {
      y0 = std::min(y0, p.loss);
      y1 = std::max(y1, p.loss);
    }
  }
  for (double t : targets) x1 = std::max(x1, t), x0 = std::min(x0, t);
  const bool clipped_high = std::any_of(space.points.begin(), space.points.end(), [&](const PlanePoint& p) { return p.loss > cap; });
  const bool clipped_low = std::any_of(space.points.begin(), space.points.end(), [&](const PlanePoint& p) { return p.loss < -cap; });
  if (clipped_high) y1 = std::max(y1, cap);
  if (clipped_low) y0 = std::min(y0, -cap);
  const double xpad = std::max(0.05, (x1 - x0) * 0.05), ypad = std::max(1e-4, (y1 - y0) * 0.06);
  x0 -= xpad, x1 += xpad, y0 -= ypad, y1 += ypad;
  const Scale sx{x0, x1, L, W - R}, sy{y0, y1, H - B, T};

  std::string o = "<svg class=\"plane\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" width=\"" + num(W) +
                  "\" height=\"" + num(H) + "\" role=\"img\" aria-label=\"speed/quality plane of " +
                  html_text(space.key) + "\">";
  // Grid and axes.
  const auto xt = ticks(x0, x1, 6), yt = ticks(y0, y1, 5);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1, ystep = yt.size() > 1 ? yt[1] - yt[0] : 0.01;
  o += "<g class=\"grid\">";
  for (double v : xt) {
    o += "<line x1=\"" + num(sx(v)) + "\" y1=\"" + num(T) + "\" x2=\"" + num(sx(v)) + "\" y2=\"" + num(H - B) + "\"/>";
  }
  for (double v : yt) {
    o += "<line x1=\"" + num(L) + "\" y1=\"" + num(sy(v)) + "\" x2=\"" + num(W - R) + "\" y2=\"" + num(sy(v)) + "\"/>";
  }
  o += "</g><g class=\"axis\">";
  o += "<line x1=\"" + num(L) + "\" y1=\"" + num(H - B) + "\" x2=\"" + num(W - R) + "\" y2=\"" + num(H - B) + "\"/>";
  o += "<line x1=\"" + num(L) + "\" y1=\"" + num(T) + "\" x2=\"" + num(L) + "\" y2=\"" + num(H - B) + "\"/>";
  for (double v : xt) {
    o += "<text x=\"" + num(sx(v)) + "\" y=\"" + num(H - B + 14) + "\" text-anchor=\"middle\">" + tick_label(v, xstep) + "</text>";
  }
  for (double v : yt) {
    o += "<text x=\"" + num(L - 5) + "\" y=\"" + num(sy(v) + 3) + "\" text-anchor=\"end\">" + tick_label(v, ystep) + "</text>";
  }
  o += "<text class=\"label\" x=\"" + num((L + W - R) / 2) + "\" y=\"" + num(H - 8) + "\" text-anchor=\"middle\">speedup (" +
       std::string(speed_measure == "macs" ? "MAC ratio" : "wall clock") + "), higher is faster</text>";
  o += "<text class=\"label\" transform=\"translate(14," + num((T + H - B) / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">" + loss_name(quality) + ", lower is better</text>";
  o += "</g>";
  // The loss bounds (the feasible band under the tightest one shaded) and the targets.
  if (!bounds.empty()) {
    const double b = *bounds.begin();
    o += "<rect class=\"feasible\" x=\"" + num(L) + "\" y=\"" + num(sy(b)) + "\" width=\"" + num(W - R - L) +
         "\" height=\"" + num(std::max(0.0, sy(y0) - sy(b))) + "\"><title>loss within " + fixed(b, 4) + "</title></rect>";
  }
  for (double b : bounds) {
    o += "<line class=\"bound\" x1=\"" + num(L) + "\" y1=\"" + num(sy(b)) + "\" x2=\"" + num(W - R) + "\" y2=\"" +
         num(sy(b)) + "\"><title>loss bound " + html_text(fixed(b, 4)) + "</title></line>";
    o += "<text class=\"bound-label\" x=\"" + num(W - R - 3) + "\" y=\"" + num(sy(b) - 4) +
         "\" text-anchor=\"end\">loss bound " + fixed(b, 4) + "</text>";
  }
  int k = 0;
  for (double t : targets) {
    o += "<line class=\"target\" x1=\"" + num(sx(t)) + "\" y1=\"" + num(T) + "\" x2=\"" + num(sx(t)) + "\" y2=\"" +
         num(H - B) + "\"><title>speedup target " + fixed(t, 2) + "x</title></line>";
    o += "<text class=\"target-label\" x=\"" + num(sx(t)) + "\" y=\"" + num(T - 4 - (k++ % 2) * 11) +
         "\" text-anchor=\"middle\">" + html_text(partition::format_number(t)) + "x</text>";
  }
  // The front: a staircase through the full points no other full point
  // beats on both axes (the least loss reachable at each speedup).
  std::vector<const PlanePoint*> front;
  for (const auto& p : space.points) {
    if (p.on_front) front.push_back(&p);
  }
  std::sort(front.begin(), front.end(), [](const PlanePoint* a, const PlanePoint* b) { return a->speedup < b->speedup; });
  if (front.size() > 1) {
    auto clamp_y = [&](double v) { return sy(std::max(y0, std::min(y1, v))); };
    std::string d = "M" + num(sx(front[0]->speedup)) + "," + num(clamp_y(front[0]->loss));
    for (std::size_t i = 1; i < front.size(); ++i) {
      d += "V" + num(clamp_y(front[i]->loss)) + "H" + num(sx(front[i]->speedup));
    }
    o += "<path class=\"front\" d=\"" + d + "\"><title>Pareto front: " + std::to_string(front.size()) +
         " settings</title></path>";
  }
  // Settings the race stopped on a prompt prefix: often most of a frontier
  // search's, and never answers, so all of a space's are one path of dots
  // (one per pixel; data-n counts the settings) under the full ones.
  std::set<std::pair<long, long>> dots;
  std::size_t partial = 0;
  for (const auto& p : space.points) {
    if (p.full) continue;
    ++partial;
    const double y = p.loss > cap ? sy(y1) + 5 : p.loss < -cap ? sy(y0) - 5 : sy(p.loss);
    dots.insert({std::lround(sx(p.speedup)), std::lround(y)});
  }
  if (partial > 0) {
    std::string d;
    for (const auto& [x, y] : dots) d += "M" + std::to_string(x) + " " + std::to_string(y) + "h0";
    o += "<path class=\"pt partial\" data-n=\"" + std::to_string(partial) + "\" d=\"" + d + "\"><title>" +
         std::to_string(partial) + (partial == 1 ? " setting" : " settings") +
         " measured on a prompt prefix only: the race stopped them there (their numbers are the prefix's)</title></path>";
  }
  // Settings measured on every prompt, each with its numbers on hover.
  for (const auto& p : space.points) {
    if (!p.full) continue;
    const double x = sx(p.speedup);
    std::string title = html_text(p.setting) + "&#10;speedup " + fixed(p.speedup, 3) + "x, loss " + fixed(p.loss, 4) +
                        "&#10;" + std::to_string(p.prompts) + " prompts" + (p.on_front ? ", on the front" : "");
    for (const auto& a : p.answers) title += "&#10;answers " + html_text(a);
    for (const auto& a : p.nearest) title += "&#10;nearest point of " + html_text(a);
    const std::string cls = std::string("pt ") + (p.on_front ? "front" : "full");
    if (p.loss > cap || p.loss < -cap) {
      const double y = p.loss > cap ? sy(y1) + 5 : sy(y0) - 5, dy = p.loss > cap ? 6 : -6;
      o += "<path class=\"" + cls + " off\" d=\"M" + num(x) + "," + num(y - dy / 2) + "l4," + num(dy) + "h-8z\"><title>" +
           title + " (off the chart)</title></path>";
    } else {
      o += "<circle class=\"" + cls + "\" cx=\"" + num(x) + "\" cy=\"" + num(sy(p.loss)) + "\" r=\"3.5\"><title>" +
           title + "</title></circle>";
    }
  }
  // Answers: a green ring around each answering point, a dashed orange one
  // (wider, so both show) around an infeasible task's nearest point.
  for (const auto& p : space.points) {
    const double y = p.loss > cap ? sy(y1) + 5 : p.loss < -cap ? sy(y0) - 5 : sy(p.loss);
    for (const auto* keys : {&p.answers, &p.nearest}) {
      if (keys->empty()) continue;
      const bool ok = keys == &p.answers;
      std::string title = std::to_string(keys->size()) + (keys->size() == 1 ? " task" : " tasks") +
                          (ok ? " answered:" : " without a feasible setting, this the nearest:");
      for (const auto& k : *keys) title += "&#10;" + html_text(k);
      o += "<circle class=\"ans" + std::string(ok ? "" : " nearest") + "\" cx=\"" + num(sx(p.speedup)) + "\" cy=\"" +
           num(y) + "\" r=\"" + (ok ? "7" : "10") + "\"><title>" + title + "</title></circle>";
    }
  }
  if (space.points.empty()) {
    o += "<text class=\"empty\" x=\"" + num((L + W - R) / 2) + "\" y=\"" + num((T + H - B) / 2) +
         "\" text-anchor=\"middle\">nothing measured in this space yet</text>";
  }
  return o + "</svg>";
}

std::string timeline_svg(const ReportData& d) {
  if (d.segments.empty() || !(d.time_end > d.time_start)) {
    return "<p class=\"note\">The rows record no start and end times, so there is no timeline.</p>";
  }
  constexpr double W = 1000, Label = 170, R = 14, Lane = 20, T = 8, B = 34;
  const double H = T + Lane * static_cast<double>(d.workers.size()) + B;
  const double span = d.time_end - d.time_start;
  const bool minutes = span > 600;
  const double unit = minutes ? 60 : 1;
  const Scale sx{0, span / unit, Label, W - R};
  std::string o = "<svg class=\"timeline\" viewBox=\"0 0 " + num(W) + " " + num(H) + "\" width=\"" + num(W) +
                  "\" height=\"" + num(H) + "\" role=\"img\" aria-label=\"timeline of the workers\">";
  const auto xt = ticks(0, span / unit, 10);
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  o += "<g class=\"grid\">";
  for (double v : xt) {
    o += "<line x1=\"" + num(sx(v)) + "\" y1=\"" + num(T) + "\" x2=\"" + num(sx(v)) + "\" y2=\"" + num(H - B) + "\"/>";
  }
  o += "</g><g class=\"axis\">";
  for (double v : xt) {
    o += "<text x=\"" + num(sx(v)) + "\" y=\"" + num(H - B + 14) + "\" text-anchor=\"middle\">" + tick_label(v, xstep) + "</text>";
  }
  o += "<text class=\"label\" x=\"" + num((Label + W - R) / 2) + "\" y=\"" + num(H - 4) + "\" text-anchor=\"middle\">" +
       (minutes ? "minutes" : "seconds") + " since the first row started</text>";
  for (std::size_t w = 0; w < d.workers.size(); ++w) {
    o += "<text x=\"" + num(Label - 6) + "\" y=\"" + num(T + Lane * static_cast<double>(w) + Lane * 0.65) +
         "\" text-anchor=\"end\">" + html_text(d.workers[w].name) + "</text>";
  }
  o += "</g>";
  for (const auto& s : d.segments) {
    const std::string methods = s.space < d.spaces.size() ? d.spaces[s.space].methods : "";
    const std::string name = s.space < d.spaces.size() ? d.spaces[s.space].key : "baselines of basic tasks";
    const double x = sx((s.start - d.time_start) / unit), x2 = sx((s.end - d.time_start) / unit);
    const double y = T + Lane * static_cast<double>(s.worker) + 3;
    o += "<rect class=\"seg" + std::string(s.failed_rows ? " failed" : "") + "\" x=\"" + num(x) + "\" y=\"" + num(y) +
         "\" width=\"" + num(std::max(1.0, x2 - x)) + "\" height=\"" + num(Lane - 6) + "\" fill=\"" + methods_color(methods) +
         "\"><title>" + html_text(name) + "&#10;" + std::to_string(s.rows) + (s.rows == 1 ? " row" : " rows") +
         (s.failed_rows ? ", " + std::to_string(s.failed_rows) + " failed" : std::string()) + ", " +
         fixed(s.start - d.time_start, 1) + " s to " + fixed(s.end - d.time_start, 1) + " s</title></rect>";
  }
  return o + "</svg>";
}

}  // namespace diffsearch::report
