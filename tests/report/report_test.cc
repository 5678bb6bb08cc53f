// The report's markup from hand-made data: every point, front and answer
// drawn, hostile text from a results file escaped everywhere, and a page that
// needs nothing from outside.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "report/charts.h"
#include "report/render.h"

namespace diffsearch::report {
namespace {

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t i = text.find(what); i != std::string::npos; i = text.find(what, i + 1)) ++n;
  return n;
}

PlanePoint point(const std::string& key, double speedup, double loss, bool full) {
  PlanePoint p;
  p.unit_key = key;
  p.setting = "DeepCache cache_interval=" + key;
  p.speedup = speedup;
  p.loss = loss;
  p.prompts = full ? 8 : 4;
  p.full = full;
  return p;
}

SpaceView space_with_points() {
  SpaceView s;
  s.key = "sd15/ddim/20/64px/deepcache";
  s.anchor = "space-sd15-ddim-20-64px-deepcache";
  s.methods = "deepcache";
  s.size = 10;
  s.points = {point("2", 1.8, 0.004, true), point("3", 2.5, 0.012, true), point("4", 2.4, 0.03, true),
              point("5", 3.3, 0.05, false), point("9", 6.0, 0.9, true)};  // the last far off the chart
  s.points[0].on_front = s.points[1].on_front = s.points[4].on_front = true;
  s.points[1].answers = {"sd15/ddim/20/deepcache/x2.0/loss0.02"};
  s.points[4].nearest = {"sd15/ddim/20/deepcache/x5.0/loss0.02"};
  TaskMark t;
  t.key = "sd15/ddim/20/deepcache/x2.0/loss0.02";
  t.speedup = 2.0;
  t.max_loss = 0.02;
  t.status = "ok";
  t.point = 1;
  s.tasks.push_back(t);
  t.key = "sd15/ddim/20/deepcache/x5.0/loss0.02";
  t.speedup = 5.0;
  t.status = "infeasible";
  t.point = 4;
  s.tasks.push_back(t);
  s.full_points = 4;
  return s;
}

TEST(ReportCharts, PlaneDrawsEveryPointTheFrontAnswersBoundAndTargets) {
  const auto svg = plane_svg(space_with_points(), "macs");
  EXPECT_EQ(occurrences(svg, "<circle class=\"pt "), 3u) << svg;  // full measurements
  EXPECT_EQ(occurrences(svg, "class=\"pt partial\" data-n=\"1\""), 1u);  // the prefix one, in the dots' path
  EXPECT_EQ(occurrences(svg, "class=\"pt front off\""), 1u);  // loss 0.9: a triangle on the edge
  EXPECT_EQ(occurrences(svg, "class=\"ans\""), 1u);
  EXPECT_EQ(occurrences(svg, "class=\"ans nearest\""), 1u);
  EXPECT_EQ(occurrences(svg, "class=\"front\""), 1u);
  EXPECT_EQ(occurrences(svg, "class=\"bound\""), 1u);
  EXPECT_EQ(occurrences(svg, "class=\"target\""), 2u);
  EXPECT_NE(svg.find(">2.0x</text>"), std::string::npos);
  EXPECT_NE(svg.find("loss bound 0.0200"), std::string::npos);
  EXPECT_NE(svg.find("speedup (MAC ratio)"), std::string::npos);
  EXPECT_NE(svg.find("CLIP score loss"), std::string::npos);
  // The front is a staircase through its three points, in speedup order.
  EXPECT_NE(svg.find("<path class=\"front\" d=\"M"), std::string::npos);
  const std::size_t d_at = svg.find("class=\"front\" d=\"") + 17;
  const std::string d = svg.substr(d_at, svg.find('"', d_at) - d_at);
  EXPECT_EQ(occurrences(d, "H"), 2u) << d;
  EXPECT_EQ(occurrences(d, "V"), 2u) << d;
  // Nothing but finite coordinates.
  EXPECT_FALSE(std::regex_search(svg, std::regex("[\"=,MVHl -](nan|inf)"))) << svg;
}

TEST(ReportCharts, EmptySpaceSaysSo) {
  SpaceView s;
  s.key = "sd15/ddim/20/64px/tome";
  const auto svg = plane_svg(s, "wall");
  EXPECT_EQ(occurrences(svg, "class=\"pt "), 0u);
  EXPECT_NE(svg.find("nothing measured in this space yet"), std::string::npos);
  EXPECT_NE(svg.find("wall clock"), std::string::npos);
}

ReportData hostile_data() {
  const std::string evil = "<script>alert('x')</script>&\"";
  ReportData d;
  d.results_path = "/tmp/" + evil + ".h5";
  d.config = {{"tasks", {evil}}};
  d.speed_measure = "wall";
  d.strategy = "frontier";
  d.samples = 8;
  d.spaces.push_back(space_with_points());
  d.spaces[0].rows = 7;
  d.spaces[0].points[0].setting = evil;
  AnswerView a;
  a.key = "sd15/ddim/20/deepcache/x2.0/loss0.02";
  a.sentence = evil;
  a.model = "SD1.5";
  a.sampler = "DDIM";
  a.steps = 20;
  a.methods = "DeepCache";
  a.goal = "2.0x";
  a.has_loss_bound = true;
  a.max_loss = 0.02;
  a.status = "ok";
  a.speedup = 2.5;
  a.loss = 0.012;
  a.setting = evil;
  a.device = evil;
  a.space_anchor = d.spaces[0].anchor;
  d.answers = {a, a};
  d.answers[1].status = "not_measured";
  d.answers[1].speedup = d.answers[1].loss = std::nan("");
  d.status_counts = {{"ok", 1}, {"not_measured", 1}};
  d.workers.push_back({evil + " rank 1", 7, 1, 12.5, 39});
  d.segments.push_back({0, 0, 100, 120, 5, 0});
  d.segments.push_back({0, 0, 121, 140, 2, 1});
  d.time_start = 100;
  d.time_end = 140;
  FailureGroup f;
  f.error = evil + "\nTraceback line two";
  f.rows = 1;
  f.units = 1;
  f.spaces = {d.spaces[0].key};
  f.workers = {evil};
  d.failures.push_back(f);
  d.runs.push_back({{"run_id", evil},
                    {"attributes",
                     {{"command_line", "diffsearch search --tasks " + evil},
                      {"devices", {evil}},
                      {"versions", "diffsearch 0.1.0"},
                      {"started_at", 1.7e9}}}});
  d.rows = 7;
  d.failed_rows = 1;
  d.points = 5;
  d.gpu_seconds = 12.5;
  return d;
}

TEST(ReportPage, EscapesEverythingFromTheFileAndFetchesNothing) {
  const auto html = render_report(hostile_data());
  // The one script is the page's own.
  EXPECT_EQ(occurrences(html, "<script>"), 1u);
  EXPECT_EQ(occurrences(html, "</script>"), 1u);
  EXPECT_EQ(html.find("alert('x')"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), std::string::npos);
  // Self-contained: no address of anything outside, and a policy that forbids fetching.
  for (const char* outside : {"http://", "https://", "//cdn", " src=", "<link", "@import", "url("}) {
    EXPECT_EQ(html.find(outside), std::string::npos) << outside;
  }
  EXPECT_NE(html.find("Content-Security-Policy\" content=\"default-src 'none'"), std::string::npos);
  // Every answer a row, every point drawn, the timeline and the failure there.
  EXPECT_EQ(occurrences(html, "<tr class=\"answer\""), 2u);
  EXPECT_EQ(occurrences(html, "class=\"pt "), 5u);  // 4 full, one path of 1 prefix-only
  EXPECT_EQ(occurrences(html, "<rect class=\"seg"), 2u);
  EXPECT_EQ(occurrences(html, "<rect class=\"seg failed\""), 1u);
  EXPECT_NE(html.find("Traceback line two"), std::string::npos);
  EXPECT_NE(html.find("data-status=\"not_measured\""), std::string::npos);
  EXPECT_NE(html.find("data-v=\"NaN\""), std::string::npos);
  // Pure ASCII whatever the input.
  for (unsigned char c : html) ASSERT_LT(c, 0x80);
}

}  // namespace
}  // namespace diffsearch::report
