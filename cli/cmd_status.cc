// `diffsearch status`: how far a search is, from its journal (readable while
// the search writes) or its HDF5 file: units, spaces answered, failures,
// GPU-seconds spent against exhaustive's, failures by kind (io/failure.h),
// per-worker throughput.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "cli/command.h"
#include "io/error.h"
#include "io/result_store.h"

namespace diffsearch::cli {
namespace {

struct StatusArgs {
  std::string results;
  bool json = false;
};

int run_status(const StatusArgs& a) {
  const auto contents = io::read_results(a.results);
  std::set<std::string> ok_units, seen_units;
  std::map<std::string, std::string> last_error, last_kind;
  std::map<std::string, std::size_t> attempts_by_kind;  // failed rows, by error_kind
  struct Worker {
    std::size_t rows = 0;
    double first = INFINITY, last = 0, busy_s = 0;
  };
  std::map<std::string, Worker> workers;
  for (const auto& r : contents.rows) {
    seen_units.insert(r.unit_key);
    if (r.status == "ok") ok_units.insert(r.unit_key);
    else {
      last_error[r.unit_key] = r.error;
      last_kind[r.unit_key] = r.error_kind;
      ++attempts_by_kind[r.error_kind];
    }
    auto& w = workers[r.host + " rank " + std::to_string(r.rank) + " " + r.device];
    w.rows++;
    w.first = std::min(w.first, r.started_at);
    w.last = std::max(w.last, r.finished_at);
    if (std::isfinite(r.finished_at - r.started_at)) w.busy_s += r.finished_at - r.started_at;
  }
  long long total = -1;
  if (!contents.runs.empty()) {
    const auto& attrs = contents.runs.back()["attributes"];
    if (attrs.contains("units_total") && attrs["units_total"].is_number_integer()) total = attrs["units_total"].get<long long>();
  }
  // What the strategy spent, and what exhaustive would have on the same
  // plan (rank 0 writes the estimate into the run record as a run ends).
  const auto& strategy_field = contents.config.contains("strategy") ? contents.config["strategy"] : nlohmann::json();
  if (!strategy_field.is_null() && !strategy_field.is_string()) {
    throw InputError(a.results + ": the recorded configuration's field 'strategy' is " +
                     std::string(strategy_field.type_name()) +
                     ", not a strategy's name (the file is damaged: rerun the search that wrote it)");
  }
  const std::string strategy = strategy_field.is_string() ? strategy_field.get<std::string>() : "exhaustive";
  double gpu_seconds = 0;
  for (const auto& r : contents.rows) {
    if (std::isfinite(r.gpu_seconds)) gpu_seconds += r.gpu_seconds;
  }
  nlohmann::json exhaustive = nullptr, spaces_done = nullptr, spaces = nullptr;
  for (const auto& run : contents.runs) {
    const auto& attrs = run["attributes"];
    if (attrs.contains("gpu_seconds_exhaustive") && attrs["gpu_seconds_exhaustive"].is_number()) {
      exhaustive = attrs["gpu_seconds_exhaustive"];
    }
    if (attrs.contains("spaces") && attrs["spaces"].is_number_integer()) {
      spaces_done = attrs.value("spaces_done", nlohmann::json(nullptr));
      spaces = attrs["spaces"];
    }
  }
  std::size_t failed_units = 0;
  std::map<std::string, std::size_t> units_by_kind;  // units with failed attempts only, by the last one's kind
  for (const auto& [unit, err] : last_error) {
    if (ok_units.count(unit)) continue;
    ++failed_units;
    ++units_by_kind[last_kind[unit]];
  }
  // The loss the search raced (clip unless the configuration says).
  const auto& quality_field = contents.config.contains("quality") ? contents.config["quality"] : nlohmann::json();
  const std::string quality = quality_field.is_string() ? quality_field.get<std::string>() : std::string("clip");
  if (a.json) {
    nlohmann::json j = {{"rows", contents.rows.size()}, {"units_ok", ok_units.size()},
                        {"units_failed", failed_units}, {"units_total", total}, {"runs", contents.runs.size()},
                        {"strategy", strategy}, {"gpu_seconds", gpu_seconds},
                        {"gpu_seconds_exhaustive", exhaustive}, {"spaces_done", spaces_done}, {"spaces", spaces},
                        {"failed_attempts_by_kind", attempts_by_kind}, {"units_failed_by_kind", units_by_kind},
                        {"quality", quality}};
    std::printf("%s\n", j.dump().c_str());
    return exit_code::ok;
  }
  std::printf("%s: %zu rows, %zu runs%s\n", a.results.c_str(), contents.rows.size(), contents.runs.size(),
              contents.from_journal ? " (from the journal)" : "");
  if (total >= 0 && strategy == "frontier") {
    // A frontier search measures a sliver of the plan by design: how far it
    // is shows in the spaces answered (below), not in this count.
    std::printf("units: %zu measured (in full or on a prompt prefix) of the plan's %lld, %zu with failed attempts only\n",
                ok_units.size(), total, failed_units);
  } else if (total >= 0) {
    std::printf("units: %zu/%lld ok (%.1f%%), %zu with failed attempts only\n", ok_units.size(), total,
                total ? 100.0 * ok_units.size() / total : 100.0, failed_units);
  } else {
    std::printf("units: %zu ok, %zu with failed attempts only\n", ok_units.size(), failed_units);
  }
  if (exhaustive.is_number() && gpu_seconds > 0) {
    std::printf("strategy: %s, %.4g GPU-seconds spent; exhaustive would spend %.4g on the same plan (%.1fx more)\n",
                strategy.c_str(), gpu_seconds, exhaustive.get<double>(), exhaustive.get<double>() / gpu_seconds);
  } else {
    std::printf("strategy: %s, %.4g GPU-seconds spent\n", strategy.c_str(), gpu_seconds);
  }
  std::printf("quality: %s loss\n", quality.c_str());
  if (spaces.is_number_integer() && spaces_done.is_number_integer()) {
    std::printf("spaces: %lld/%lld answered as of the last run's end\n", spaces_done.get<long long>(),
                spaces.get<long long>());
  }
  if (!attempts_by_kind.empty()) {
    auto join = [](const std::map<std::string, std::size_t>& counts) {
      std::string text;
      for (const auto& [kind, n] : counts) text += (text.empty() ? "" : ", ") + kind + " " + std::to_string(n);
      return text.empty() ? std::string("none") : text;
    };
    std::printf("failed attempts by kind: %s; units failed: %s\n", join(attempts_by_kind).c_str(),
                join(units_by_kind).c_str());
  }
  std::size_t shown = 0;
  for (const auto& [unit, err] : last_error) {
    if (ok_units.count(unit)) continue;
    if (shown++ == 10) {
      std::printf("  ... %zu more\n", failed_units - 10);
      break;
    }
    std::printf("  failed: %s [%s]: %s\n", unit.c_str(), last_kind[unit].c_str(), err.c_str());
  }
  std::printf("workers:\n");
  for (const auto& [name, w] : workers) {
    const double span = w.last - w.first;
    std::printf("  %-40s %6zu rows, %.2f units/s (%.0f%% busy)\n", name.c_str(), w.rows,
                span > 0 ? w.rows / span : 0.0, span > 0 ? 100.0 * w.busy_s / span : 0.0);
  }
  return exit_code::ok;
}

Runner setup_status(CLI::App& sub) {
  auto a = std::make_shared<StatusArgs>();
  sub.add_option("results", a->results, "Results file (may be in use by a running search)")->required()
      ->type_name("FILE");
  sub.add_flag("--json", a->json, "One JSON object instead of text");
  sub.footer("Example:\n  diffsearch status results.h5");
  return [a]() { return run_status(*a); };
}

DIFFSEARCH_COMMAND("status", "Progress, failures and worker throughput of a search", setup_status);

}  // namespace
}  // namespace diffsearch::cli
