// `diffsearch report` on a real results file written by the real binary (a
// frontier search over a category-4 slice on the synthetic landscape, with
// two workers under mpirun, and failures injected in a second file): the page
// is self-contained, and, where Debian's chromium is installed, opens
// headless, renders a screenshot, and counts from its own DOM as many plotted
// points and answer rows as the file has, within a second.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "io/result_store.h"
#include "tests/support/test_support.h"

namespace {

namespace fs = std::filesystem;
using diffsearch::testing::CommandResult;

const char* kSpace = R"({"deepcache": {"cache_interval": [2, 3, 4, 5], "cache_branch_id": [0, 1, 2]},
                         "tome": {"ratio": [0.2, 0.4, 0.6]},
                         "tgate": {"gate_step_fraction": [0.3, 0.5, 0.7], "sp_interval": [1, 2], "warm_up": [0]}})";

class ReportE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    diffsearch::testing::allow_mpirun_here();
  }
  void SetUp() override {
    dir_ = diffsearch::testing::fresh_test_dir("report_e2e");
    std::ofstream(dir_ / "space.json") << kSpace;
  }
  void TearDown() override { fs::remove_all(dir_); }

  CommandResult shell(const std::string& command) const {
    return diffsearch::testing::run_command("cd '" + dir_.string() + "' && " + command + " 2>&1");
  }
  CommandResult diffsearch(const std::string& args) const { return shell(std::string("'") + DIFFSEARCH_BIN + "' " + args); }
  std::string read(const std::string& name) const { return diffsearch::testing::read_text_file(dir_ / name); }
  // Settings with an ok row (the plotted points), and tasks, as the file has them.
  std::size_t measured_settings(const std::string& results) const {
    const auto contents = diffsearch::io::read_results((dir_ / results).string());
    std::set<std::string> units;
    for (const auto& r : contents.rows) {
      if (r.status == "ok" && !r.methods.empty()) units.insert(r.unit_key);
    }
    return units.size();
  }
  std::size_t tasks_of(const std::string& results) const {
    return diffsearch::io::read_results((dir_ / results).string()).config["tasks"].size();
  }

  fs::path dir_;
};

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t i = text.find(what); i != std::string::npos; i = text.find(what, i + 1)) ++n;
  return n;
}

// Settings drawn: a circle or triangle per full measurement, and the
// prompt-prefix ones counted by their path's data-n.
std::size_t plotted(const std::string& html) {
  std::size_t n = occurrences(html, "class=\"pt front") + occurrences(html, "class=\"pt full");
  const std::regex partial("class=\"pt partial\" data-n=\"([0-9]+)\"");
  for (auto it = std::sregex_iterator(html.begin(), html.end(), partial); it != std::sregex_iterator(); ++it) {
    n += std::stoul((*it)[1]);
  }
  return n;
}

std::string attribute(const std::string& dom, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(dom, m, std::regex(name + "=\"([^\"]*)\""))) return "";
  return m[1];
}

std::string chromium() {
  for (const char* candidate : {"/usr/bin/chromium", "/usr/bin/chromium-browser"}) {
    if (fs::exists(candidate)) return candidate;
  }
  return "";
}

TEST_F(ReportE2e, ThePageOfASearchShowsEveryMeasuredSettingAndAnswerAndOpensInChromium) {
  // A category-4 slice (SD1.5, DDIM, 20 steps: 42 tasks over six method
  // combinations) and a basic task, searched by 1 coordinator + 2 workers.
  // Each unit takes 20 ms of wall time, so that a worker that starts late
  // on a loaded machine still finds work (the timeline must show both).
  auto r = diffsearch("grid --category 4 | grep 'SD1.5 pipeline using the DDIM sampler with 20 steps' > tasks.txt && "
                      "echo 'Generate a SD1.5 pipeline using the DDIM sampler with 20 steps' >> tasks.txt");
  ASSERT_EQ(r.code, 0) << r.out;
  r = shell(std::string("mpirun --oversubscribe -np 3 '") + DIFFSEARCH_BIN +
            "' search --tasks tasks.txt --space space.json --out r.h5 --num-samples 8 --race-prompts 2,4 "
            "--batch-size 2 --speed-measure macs --evaluator synthetic:seed=1,sleep_ms=20 --progress-interval 1000");
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("report r.h5 -o report.html");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("report: report.html (43 tasks"), std::string::npos) << r.out;
  const std::string html = read("report.html");
  const std::size_t points = measured_settings("r.h5");
  ASSERT_GT(points, 50u);
  ASSERT_EQ(tasks_of("r.h5"), 43u);

  // Self-contained, and every setting and answer in the markup.
  for (const char* outside : {"http://", "https://", " src=", "<link", "@import", "url("}) {
    EXPECT_EQ(html.find(outside), std::string::npos) << outside;
  }
  EXPECT_EQ(plotted(html), points);
  EXPECT_EQ(occurrences(html, "<tr class=\"answer\""), 43u);
  EXPECT_EQ(occurrences(html, "<details class=\"space\""), 6u);  // the slice's six method combinations
  EXPECT_NE(html.find("<svg class=\"timeline\""), std::string::npos);
  EXPECT_NE(html.find("rank 1"), std::string::npos);
  EXPECT_NE(html.find("rank 2"), std::string::npos);
  EXPECT_NE(html.find("No row failed."), std::string::npos);
  EXPECT_NE(html.find("search --tasks tasks.txt --space space.json --out r.h5"), std::string::npos);  // the run record

  // The same tasks given explicitly answer the same.
  r = diffsearch("report r.h5 --tasks tasks.txt -o again.html");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read("again.html"), html);

  const std::string browser = chromium();
  if (browser.empty()) {
    GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs Debian's): the page was checked as text, "
                    "not opened in a browser";
  }
  // The page's script counts what the browser parsed into its own DOM. The
  // load time is the best of up to three loads: a loaded machine (parallel
  // builds, other tests) adds its own delays to any one.
  const std::string flags = " --headless --no-sandbox --disable-gpu --no-first-run --disable-extensions "
                            "--user-data-dir=" + (dir_ / "profile").string();
  const std::string url = "file://" + (dir_ / "report.html").string();
  double best_ms = 1e9;
  std::string dom;
  for (int attempt = 0; attempt < 3 && best_ms >= 1000; ++attempt) {
    r = shell("'" + browser + "'" + flags + " --dump-dom '" + url + "' > dom.html 2> chromium.log; echo rc=$?");
    dom = read("dom.html");
    ASSERT_NE(dom.find("id=\"page-stats\""), std::string::npos) << r.out << read("chromium.log");
    const std::string load_ms = attribute(dom, "data-load-ms");
    ASSERT_FALSE(load_ms.empty()) << "the page's load event did not run";
    best_ms = std::min(best_ms, std::stod(load_ms));
  }
  EXPECT_EQ(attribute(dom, "data-points"), std::to_string(points)) << read("chromium.log");
  EXPECT_EQ(attribute(dom, "data-answer-rows"), "43");
  EXPECT_GT(std::stoi(attribute(dom, "data-answer-marks")), 0);
  EXPECT_NE(dom.find("43 of 43 tasks shown"), std::string::npos);  // the filters ran
  std::printf("report load: %.1f ms (script %s ms) for %zu points, %zu bytes\n", best_ms,
              attribute(dom, "data-script-ms").c_str(), points, html.size());
  EXPECT_LT(best_ms, 1000.0);

  // A screenshot: a PNG of the window's size.
  r = shell("'" + browser + "'" + flags + " --hide-scrollbars --window-size=1400,2400 --screenshot=" +
            (dir_ / "report.png").string() + " '" + url + "' > /dev/null 2> chromium.log; echo rc=$?");
  const std::string png = read("report.png");
  ASSERT_GT(png.size(), 20000u) << r.out << read("chromium.log");
  ASSERT_EQ(png.substr(1, 3), "PNG");
  auto be32 = [&](std::size_t at) {
    return (static_cast<unsigned char>(png[at]) << 24) | (static_cast<unsigned char>(png[at + 1]) << 16) |
           (static_cast<unsigned char>(png[at + 2]) << 8) | static_cast<unsigned char>(png[at + 3]);
  };
  EXPECT_EQ(be32(16), 1400);
  EXPECT_EQ(be32(20), 2400);
  if (const char* keep = std::getenv("DIFFSEARCH_KEEP_REPORT")) {
    fs::copy_file(dir_ / "report.png", fs::path(keep) / "report.png", fs::copy_options::overwrite_existing);
    fs::copy_file(dir_ / "report.html", fs::path(keep) / "report.html", fs::copy_options::overwrite_existing);
  }
}

TEST_F(ReportE2e, FailuresAreGroupedByCauseWithWhatRecovered) {
  std::ofstream(dir_ / "tasks.txt")
      << "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by DeepCache with 2.0x speedup "
         "and precision loss not exceeding 0.02\n"
         "Generate a SD1.5 pipeline using the DDIM sampler with 20 steps, accelerated by ToMe\n";
  // Worker 1 fails every other evaluation; each unit is retried on worker 2.
  // (Evaluations take 100 ms so that both workers get units.)
  auto r = shell(std::string("mpirun --oversubscribe -np 3 '") + DIFFSEARCH_BIN +
                 "' search --tasks tasks.txt --space space.json --out f.h5 --num-samples 2 --speed-measure macs "
                 "--strategy exhaustive --evaluator fake:fail_rank=1,fail_every=2,sleep_ms=100 --isolate off "
                 "--progress-interval 1000");
  ASSERT_EQ(r.code, 0) << r.out;
  r = diffsearch("report f.h5 -o f.html");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string html = read("f.html");
  const auto contents = diffsearch::io::read_results((dir_ / "f.h5").string());
  std::size_t failed = 0;
  for (const auto& row : contents.rows) failed += row.status != "ok";
  ASSERT_GT(failed, 0u);
  EXPECT_EQ(html.find("No row failed."), std::string::npos);
  EXPECT_NE(html.find("rows, " + std::to_string(failed) + " failed"), std::string::npos);
  // One cause, its rows counted, every unit recovered on the other worker.
  const std::size_t at = html.find("<section id=\"failures\">");
  ASSERT_NE(at, std::string::npos);
  const std::string section = html.substr(at, html.find("</section>", at) - at);
  EXPECT_EQ(occurrences(section, "<tr><td><pre>"), 1u) << section;
  EXPECT_NE(section.find("<td class=\"num\">" + std::to_string(failed) + "</td>"), std::string::npos) << section;
  EXPECT_NE(section.find("rank 1"), std::string::npos);
  EXPECT_EQ(section.find("rank 2"), std::string::npos);
  EXPECT_EQ(occurrences(html, "<tr class=\"answer\""), 2u);
  EXPECT_GT(occurrences(html, "<rect class=\"seg failed\""), 0u);  // on the timeline too

  // Bad input: named, exit 2.
  r = diffsearch("report nope.h5 -o x.html");
  EXPECT_EQ(r.code, 2) << r.out;
  r = diffsearch("report tasks.txt -o x.html");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("tasks.txt"), std::string::npos) << r.out;
  r = diffsearch("report f.h5 -o /nonexistent/dir/x.html");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/dir/x.html: cannot write"), std::string::npos) << r.out;
}

}  // namespace
