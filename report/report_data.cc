// Gathering the report's contents from the rows, the plan the results file's
// configuration implies, and distill's answers.
#include "report/report_data.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "codegen/codegen.h"
#include "coordinator/distill.h"
#include "coordinator/quality.h"
#include "coordinator/search.h"
#include "io/error.h"
#include "partition/plan.h"
#include "partition/search_space.h"

namespace diffsearch::report {
namespace {

constexpr std::size_t npos = static_cast<std::size_t>(-1);

double number(const nlohmann::json& j, const char* field) {
  return j.contains(field) && j[field].is_number() ? j[field].get<double>() : std::nan("");
}

std::string setting_text(const std::string& setting_json) {
  if (setting_json.empty()) return "none";
  try {
    return codegen::setting_text(
        partition::setting_from_json(nlohmann::json::parse(setting_json), "a results row's setting"));
  } catch (const std::exception&) {
    return setting_json;  // another version's spelling: shown as recorded
  }
}

std::string methods_text(const std::vector<partition::Method>& methods) {
  if (methods.empty()) return "basic";
  std::string out;
  for (auto m : methods) out += (out.empty() ? "" : "+") + partition::method_name(m);
  return out;
}

std::string anchor_of(const std::string& key) {
  std::string out = "space-";
  for (char c : key) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '-';
  return out;
}

// A unit's ok rows joined over the prompts in order, as distill joins a
// frontier race's rounds (coordinator/distill.cc, full_fidelity): the first
// ok row of each range, ranges continuing the prefix from prompt 0.
struct Joined {
  bool any = false;
  double speedup = 0, loss = 0;
  int prompts = 0;
};

Joined join_rows(const std::vector<std::size_t>& ok, const std::vector<io::EvaluationRow>& rows, bool macs,
                 coordinator::Quality quality) {
  std::map<int64_t, std::size_t> by_begin;
  for (std::size_t i : ok) by_begin.emplace(rows[i].prompt_begin, i);
  std::vector<std::size_t> used;
  int64_t at = 0;
  for (const auto& [begin, i] : by_begin) {
    if (begin != at) continue;
    used.push_back(i);
    at = rows[i].prompt_end;
  }
  // No range from prompt 0 (not written by any strategy): the first row, so
  // that every measured setting is still shown.
  if (used.empty()) used.push_back(by_begin.begin()->second);
  Joined j;
  j.any = true;
  if (used.size() == 1) {
    const auto& r = rows[used[0]];
    j.speedup = macs ? r.speedup_macs : r.speedup;
    j.loss = coordinator::row_loss(quality, r);
    j.prompts = static_cast<int>(r.prompt_end - r.prompt_begin);
    return j;
  }
  double time_base = 0, time_acc = 0, macs_base = 0, macs_acc = 0, clip_base = 0, clip_acc = 0, n_all = 0;
  for (std::size_t i : used) {
    const auto& r = rows[i];
    const double n = static_cast<double>(r.prompt_end - r.prompt_begin);
    time_base += r.time_base_s;
    time_acc += r.time_acc_s;
    macs_base += static_cast<double>(r.macs_base);
    macs_acc += static_cast<double>(r.macs_acc);
    clip_base += r.clip_base * n;
    clip_acc += r.clip_acc * n;
    n_all += n;
  }
  j.prompts = static_cast<int>(n_all);
  j.speedup = macs ? (macs_acc > 0 ? macs_base / macs_acc : 1.0) : (time_acc > 0 ? time_base / time_acc : 1.0);
  j.loss = coordinator::quality_loss(clip_base / n_all, clip_acc / n_all);
  if (quality != coordinator::Quality::Clip) {
    // Other measures from the per-prompt scores, as distill joins them.
    double base = 0, acc = 0;
    for (std::size_t i : used) {
      for (const auto& p : rows[i].prompts) {
        const auto q = coordinator::quality_scores(quality, p);
        base += q.base;
        acc += q.acc;
      }
    }
    j.loss = coordinator::quality_loss(base, acc);
  }
  return j;
}

void mark_front(std::vector<PlanePoint>& points) {
  for (auto& a : points) {
    if (!a.full) continue;
    a.on_front = true;
    for (const auto& b : points) {
      if (!b.full) continue;
      if (b.speedup >= a.speedup && b.loss <= a.loss && (b.speedup > a.speedup || b.loss < a.loss)) {
        a.on_front = false;
        break;
      }
    }
  }
}

std::string goal_text(const partition::Task& t) {
  if (t.speedup) return partition::format_number(*t.speedup) + "x";
  if (t.latency_s) return partition::format_number(*t.latency_s) + " s on " + t.platform.value_or("?");
  return t.methods.empty() ? "-" : "max";
}

}  // namespace

ReportData gather_report(const io::ResultsContents& contents, const std::vector<partition::Task>& tasks,
                         const std::string& results_path) {
  ReportData d;
  d.results_path = results_path;
  d.config = contents.config;
  const auto recorded = coordinator::recorded_search(contents, tasks);
  const auto& options = recorded.options;
  d.speed_measure = options.speed_measure;
  const bool macs = d.speed_measure == "macs";
  d.strategy = options.strategy;
  d.quality = coordinator::quality_name(options.quality);
  d.samples = options.samples;
  d.runs = contents.runs;
  const auto& rows = contents.rows;
  d.rows = rows.size();

  // The spaces: the plan's (tasks' spaces, and the ones the frontier
  // strategy adds for combinations), then any other the rows name.
  const auto& search_plan = recorded.plan;
  const auto& plan = search_plan.plan;
  std::map<std::string, std::size_t> space_index;
  for (const auto& s : plan.spaces) {
    SpaceView v;
    v.key = s.key();
    v.model = partition::model_name(s.model);
    v.sampler = partition::sampler_name(s.sampler);
    v.steps = s.steps;
    v.resolution = s.resolution;
    v.platform = s.platform.value_or("");
    v.methods = partition::methods_key(s.methods);
    v.size = s.size;
    space_index.emplace(v.key, d.spaces.size());
    d.spaces.push_back(std::move(v));
  }
  for (const auto& r : rows) {
    if (r.methods.empty() || space_index.count(r.space_key)) continue;
    SpaceView v;
    v.key = r.space_key;
    v.model = r.model;
    v.sampler = r.sampler;
    v.steps = static_cast<int>(r.steps);
    v.resolution = static_cast<int>(r.resolution);
    v.methods = r.methods;
    space_index.emplace(v.key, d.spaces.size());
    d.spaces.push_back(std::move(v));
  }
  for (auto& s : d.spaces) s.anchor = anchor_of(s.key);

  // Rows per unit, and what each space and worker spent.
  std::map<std::string, std::vector<std::size_t>> ok_rows;  // unit key -> rows (method spaces)
  std::set<std::string> ok_units;                           // every unit with an ok row
  std::map<std::string, std::size_t> unit_space;
  std::map<std::string, std::size_t> worker_index;
  std::vector<double> all_seconds;
  d.time_start = INFINITY;
  d.time_end = -INFINITY;
  std::vector<std::size_t> row_worker(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string worker = (r.host.empty() ? std::string("?") : r.host) + " rank " + std::to_string(r.rank);
    auto [w, added] = worker_index.emplace(worker, d.workers.size());
    if (added) d.workers.push_back({worker});
    row_worker[i] = w->second;
    auto& wv = d.workers[w->second];
    wv.rows++;
    const bool failed = r.status != "ok";
    if (failed) {
      wv.failed_rows++;
      d.failed_rows++;
    } else {
      ok_units.insert(r.unit_key);
    }
    if (std::isfinite(r.gpu_seconds)) {
      wv.gpu_seconds += r.gpu_seconds;
      all_seconds.push_back(r.gpu_seconds);
    }
    if (std::isfinite(r.started_at) && std::isfinite(r.finished_at) && r.started_at > 0 &&
        r.finished_at >= r.started_at) {
      wv.busy_s += r.finished_at - r.started_at;
      d.time_start = std::min(d.time_start, r.started_at);
      d.time_end = std::max(d.time_end, r.finished_at);
    }
    auto s = space_index.find(r.space_key);
    if (r.methods.empty() || s == space_index.end()) continue;  // a basic task's baseline
    auto& sv = d.spaces[s->second];
    sv.rows++;
    if (failed) sv.failed_rows++;
    if (std::isfinite(r.gpu_seconds)) sv.gpu_seconds += r.gpu_seconds;
    unit_space[r.unit_key] = s->second;
    if (!failed) ok_rows[r.unit_key].push_back(i);
  }
  if (!(d.time_start <= d.time_end)) d.time_start = d.time_end = 0;
  std::sort(all_seconds.begin(), all_seconds.end());  // a deterministic sum
  for (double s : all_seconds) d.gpu_seconds += s;
  for (const auto& run : contents.runs) {
    const auto& attrs = run.value("attributes", nlohmann::json::object());
    if (attrs.contains("gpu_seconds_exhaustive") && attrs["gpu_seconds_exhaustive"].is_number()) {
      d.gpu_seconds_exhaustive = attrs["gpu_seconds_exhaustive"].get<double>();  // the latest run's
    }
  }

  // Points: every unit with an ok row, in unit key order.
  std::map<std::string, std::pair<std::size_t, std::size_t>> point_of;  // unit key -> (space, point)
  for (const auto& [unit, ok] : ok_rows) {
    const Joined j = join_rows(ok, rows, macs, options.quality);
    if (!std::isfinite(j.speedup) || !std::isfinite(j.loss)) continue;
    auto& sv = d.spaces[unit_space[unit]];
    PlanePoint p;
    p.unit_key = unit;
    p.setting = setting_text(rows[ok.front()].setting);
    p.speedup = j.speedup;
    p.loss = j.loss;
    p.prompts = j.prompts;
    p.full = j.prompts >= d.samples;
    point_of[unit] = {unit_space[unit], sv.points.size()};
    sv.points.push_back(std::move(p));
  }
  for (auto& sv : d.spaces) {
    mark_front(sv.points);
    for (const auto& p : sv.points) sv.full_points += p.full;
    d.points += sv.points.size();
  }

  // The answers, as distill gives them, marked on their spaces.
  const auto answers = coordinator::distill(contents, tasks);
  for (std::size_t t = 0; t < plan.tasks.size(); ++t) {
    const auto& task = plan.tasks[t];
    const std::string key = partition::task_key(task);
    const auto& a = answers.contains(key) ? answers[key] : nlohmann::json::object();
    AnswerView v;
    v.key = key;
    v.sentence = partition::format_task(task);
    v.model = partition::model_name(task.model);
    v.sampler = partition::sampler_name(task.sampler);
    v.steps = task.steps;
    v.methods = methods_text(task.methods);
    v.goal = goal_text(task);
    v.has_loss_bound = !task.methods.empty();
    v.max_loss = task.max_score_loss;
    v.status = a.value("status", std::string("not_measured"));
    v.speedup = number(a, "speedup");
    v.loss = a.contains("loss") ? number(a, "loss") : number(a, "score_loss");
    v.device = a.contains("device") && a["device"].is_string() ? a["device"].get<std::string>() : "";
    std::optional<std::string> unit;
    if (a.contains("rows") && a["rows"].is_array() && !a["rows"].empty() && a["rows"][0].is_number_integer()) {
      const auto row = a["rows"][0].get<int64_t>();
      if (row >= 0 && static_cast<std::size_t>(row) < rows.size()) {
        unit = rows[row].unit_key;
        v.setting = setting_text(rows[row].setting);
      }
    }
    d.status_counts[v.status]++;
    const std::size_t space = plan.task_space[t];
    if (space != partition::kNoSpace) {
      auto& sv = d.spaces[space_index.at(plan.spaces[space].key())];
      v.space_anchor = sv.anchor;
      TaskMark m;
      m.key = key;
      m.speedup = task.speedup;
      m.max_loss = task.max_score_loss;
      m.latency_s = task.latency_s;
      m.status = v.status;
      if (unit && (v.status == "ok" || v.status == "infeasible")) {
        auto it = point_of.find(*unit);
        if (it != point_of.end() && it->second.first == space_index.at(sv.key)) {
          m.point = it->second.second;
          auto& p = sv.points[*m.point];
          (v.status == "ok" ? p.answers : p.nearest).push_back(key);
        }
      }
      sv.tasks.push_back(std::move(m));
    }
    d.answers.push_back(std::move(v));
  }

  // The timeline: per worker, its rows in time order, consecutive rows of one
  // space joined into one bar (a worker keeps to one baseline group, so a
  // long search still draws few bars).
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (std::isfinite(r.started_at) && std::isfinite(r.finished_at) && r.started_at > 0 && r.finished_at >= r.started_at) {
      order.push_back(i);
    }
  }
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (row_worker[a] != row_worker[b]) return row_worker[a] < row_worker[b];
    return rows[a].started_at < rows[b].started_at || (rows[a].started_at == rows[b].started_at && a < b);
  });
  const double join_gap = std::max(1.0, (d.time_end - d.time_start) / 500.0);
  for (std::size_t i : order) {
    const auto& r = rows[i];
    auto s = space_index.find(r.space_key);
    const std::size_t space = r.methods.empty() || s == space_index.end() ? npos : s->second;
    Segment* last = d.segments.empty() ? nullptr : &d.segments.back();
    if (last && last->worker == row_worker[i] && last->space == space && r.started_at - last->end <= join_gap) {
      last->end = std::max(last->end, r.finished_at);
      last->rows++;
      last->failed_rows += r.status != "ok";
    } else {
      d.segments.push_back({row_worker[i], space, r.started_at, r.finished_at, 1, r.status != "ok" ? 1u : 0u});
    }
  }

  // Failures, grouped by their error text.
  std::map<std::string, FailureGroup> groups;
  std::map<std::string, std::set<std::string>> group_units;
  std::map<std::string, std::set<std::string>> group_spaces, group_workers;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (r.status == "ok") continue;
    const std::string error = r.error.empty() ? "(no error text recorded)" : r.error;
    auto& g = groups[error];
    g.error = error;
    g.rows++;
    group_units[error].insert(r.unit_key);
    group_spaces[error].insert(r.space_key);
    group_workers[error].insert(d.workers[row_worker[i]].name);
  }
  for (auto& [error, g] : groups) {
    g.units = group_units[error].size();
    for (const auto& u : group_units[error]) g.units_recovered += ok_units.count(u);
    g.spaces.assign(group_spaces[error].begin(), group_spaces[error].end());
    g.workers.assign(group_workers[error].begin(), group_workers[error].end());
    d.failures.push_back(std::move(g));
  }
  std::sort(d.failures.begin(), d.failures.end(), [](const FailureGroup& a, const FailureGroup& b) {
    return a.rows > b.rows || (a.rows == b.rows && a.error < b.error);
  });
  return d;
}

}  // namespace diffsearch::report
