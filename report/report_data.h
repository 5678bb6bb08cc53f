// What `diffsearch report` shows, computed from a results file and the
// answers distill gives for its tasks: per method space the measured
// settings on the speed/quality plane, their Pareto front and each task's
// answer; the answers; what the search spent per space and per worker over
// time; the failures; the run records. No markup here (report/render.h).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/result_store.h"
#include "partition/task.h"

namespace diffsearch::report {

// One measured setting of a space. Its numbers join the unit's ok rows over
// the prompts in order, as distill does: a frontier race's rounds [0,4),
// [4,8), ...; `full` when they cover every prompt (only such points can be
// answers), else the prefix measured so far.
struct PlanePoint {
  std::string unit_key;
  std::string setting;  // "DeepCache cache_branch_id=0, cache_interval=3"
  double speedup = 0;   // by the search's speed measure (wall or MACs)
  double loss = 0;      // by the search's quality measure (CLIP score loss unless --quality)
  int prompts = 0;      // prompts measured
  bool full = false;
  bool on_front = false;             // on the Pareto front of the full points
  std::vector<std::string> answers;  // keys of the tasks it answers (status ok)
  std::vector<std::string> nearest;  // keys of the infeasible tasks it is the nearest point of
};

// A task of a space, its goal and its answer.
struct TaskMark {
  std::string key;
  std::optional<double> speedup;  // target
  double max_loss = 0;
  std::optional<double> latency_s;
  std::string status;
  std::optional<std::size_t> point;  // the point its answer is
};

struct SpaceView {
  std::string key;     // "sd15/ddim/20/64px/deepcache"
  std::string anchor;  // an HTML id for links
  std::string model, sampler, methods, platform;  // "SD1.5", "DDIM", "deepcache+tome", ""
  int steps = 0;
  int resolution = 0;
  std::uint64_t size = 0;  // settings in the space (0: not in the plan)
  std::vector<PlanePoint> points;
  std::vector<TaskMark> tasks;
  std::size_t rows = 0;
  std::size_t failed_rows = 0;
  std::size_t full_points = 0;
  double gpu_seconds = 0;
};

struct AnswerView {
  std::string key;
  std::string sentence;
  std::string model, sampler, methods;  // methods: "DeepCache+ToMe", "basic"
  int steps = 0;
  std::string goal;  // "3.04x", "max", "0.5 s on NVIDIA H200", "-"
  double max_loss = 0;
  bool has_loss_bound = false;  // basic tasks have none
  std::string status;
  double speedup = 0;  // NaN when none
  double loss = 0;     // NaN when none
  std::string setting;
  std::string device;
  std::string space_anchor;  // "" for basic tasks
};

struct WorkerView {
  std::string name;  // "host rank 2"
  std::size_t rows = 0;
  std::size_t failed_rows = 0;
  double gpu_seconds = 0;
  double busy_s = 0;  // wall time inside evaluations (finished_at - started_at)
};

// Consecutive rows of one worker on one space, drawn as one bar.
struct Segment {
  std::size_t worker = 0;
  std::size_t space = 0;  // index into spaces; npos for baselines of basic tasks
  double start = 0, end = 0;
  std::size_t rows = 0;
  std::size_t failed_rows = 0;
};

struct FailureGroup {
  std::string error;
  std::size_t rows = 0;
  std::size_t units = 0;
  std::size_t units_recovered = 0;  // a later attempt of the unit was ok
  std::vector<std::string> spaces;   // sorted
  std::vector<std::string> workers;  // sorted
};

struct ReportData {
  std::string results_path;
  nlohmann::json config;
  std::string speed_measure;  // "wall" or "macs"
  std::string strategy;       // "frontier" or "exhaustive"
  std::string quality;        // "clip", "ssim" or "psnr": the loss the answers are chosen by
  int samples = 0;
  std::vector<SpaceView> spaces;  // plan order, then spaces only the rows name
  std::vector<AnswerView> answers;  // task order
  std::map<std::string, int> status_counts;
  std::vector<WorkerView> workers;
  std::vector<Segment> segments;
  double time_start = 0, time_end = 0;  // Unix seconds, over the rows
  std::vector<FailureGroup> failures;
  std::vector<nlohmann::json> runs;  // {"run_id", "attributes"}
  std::size_t rows = 0, failed_rows = 0;
  std::size_t points = 0;  // plotted, over every space
  double gpu_seconds = 0;
  std::optional<double> gpu_seconds_exhaustive;
};

// Everything the report shows for `tasks` (the answers are distill's).
ReportData gather_report(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks,
                         const std::string& results_path);

}  // namespace diffsearch::report
