// The shared pieces of a search run (coordinator/run_support.h).
#include "coordinator/run_support.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "coordinator/search.h"
#include "io/error.h"
#include "io/log/log.h"
#include "io/hash.h"

namespace diffsearch::coordinator {
namespace {

}  // namespace

double now_s() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::string make_run_id() {
  const auto t = static_cast<long long>(now_s() * 1000);
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(io::fnv1a(host_name() + std::to_string(getpid()))));
  return "run-" + std::to_string(t) + "-" + std::string(hex).substr(0, 6);
}

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[64];
  if (s < 10) std::snprintf(buf, sizeof(buf), "%.1fs", s);
  else if (s < 120) std::snprintf(buf, sizeof(buf), "%.0fs", s);
  else if (s < 7200) std::snprintf(buf, sizeof(buf), "%.0fm%02.0fs", std::floor(s / 60), std::fmod(s, 60));
  else std::snprintf(buf, sizeof(buf), "%.0fh%02.0fm", std::floor(s / 3600), std::fmod(s / 60, 60));
  return buf;
}

std::string describe_device(const std::string& host, const std::string& device, const std::string& gpu,
                            const std::string& timing) {
  std::string what = gpu != device ? gpu : "";
  if (!timing.empty()) what += (what.empty() ? "" : ", ") + timing;
  return host + " " + device + (what.empty() ? "" : " (" + what + ")");
}

bool report_unservable(const std::map<std::string, std::size_t>& dropped, const std::set<std::string>& gpus) {
  std::string have;
  for (const auto& g : gpus) have += (have.empty() ? "" : ", ") + ("\"" + g + "\"");
  for (const auto& [platform, count] : dropped) {
    log::error(std::to_string(count) + " units of platform tasks need a GPU named \"" + platform +
               "\", but the workers have " + have +
               ": they stay unmeasured; run the same search with --resume on such GPUs to measure them");
  }
  return !dropped.empty();
}

nlohmann::json run_record(const SearchOptions& options, const SearchPlan& plan, int processes,
                          const std::set<std::string>& hosts, const std::set<std::string>& devices,
                          double started_at) {
  nlohmann::json attrs = options.run_attributes.is_object() ? options.run_attributes : nlohmann::json::object();
  attrs["processes"] = processes;
  attrs["hosts"] = nlohmann::json(std::vector<std::string>(hosts.begin(), hosts.end())).dump();
  attrs["devices"] = nlohmann::json(std::vector<std::string>(devices.begin(), devices.end())).dump();
  attrs["started_at"] = started_at;
  // What an exhaustive run of this shard measures: the plan's units of the
  // shard's baselines.
  uint64_t units = 0;
  for (std::size_t b : plan.basic_baselines) units += plan.in_shard[b];
  for (std::size_t s = 0; s < plan.task_spaces; ++s) {
    if (plan.in_shard[plan.plan.spaces[s].baseline]) units += plan.plan.spaces[s].size;
  }
  attrs["units_total"] = units;
  attrs["tasks"] = plan.plan.tasks.size();
  attrs["evaluator"] = options.evaluator;
  attrs["strategy"] = options.strategy;
  attrs["max_attempts"] = options.max_attempts;
  if (options.shard.count > 1) attrs["shard"] = std::to_string(options.shard.index) + "/" + std::to_string(options.shard.count);
  return attrs;
}

int finish_code(const Scheduler& s, bool interrupted) {
  if (interrupted && !s.finished()) return exit_code::interrupted_resume;
  if (s.unservable() > 0) return exit_code::failed;
  if (s.failed() > 0) log::warn(std::to_string(s.failed()) + " units failed after every retry (recorded as failed)");
  if (!s.failures_by_kind().empty()) {
    std::string kinds;
    for (const auto& [kind, n] : s.failures_by_kind()) kinds += (kinds.empty() ? "" : ", ") + kind + " " + std::to_string(n);
    log::info("failed attempts by kind: " + kinds + " (retried as their kind says; docs/search.md)");
  }
  return exit_code::ok;
}

Progress::Progress(const Scheduler& s, double interval) : s_(s), interval_(interval), start_(now_s()), last_(start_) {
  start_done_ = s.done();
}

void Progress::maybe_report(bool force) {
  const double t = now_s();
  if (!force && t - last_ < interval_) return;
  last_ = t;
  const double elapsed = std::max(1e-9, t - start_);
  const double rate = static_cast<double>(s_.done() - start_done_) / elapsed;
  const auto [spaces_done, spaces] = s_.strategy().spaces_done();
  char buf[320];
  // The strategy releases items as rounds end, so the total grows: spaces
  // done is the measure of how far the search is.
  std::snprintf(buf, sizeof(buf),
                "progress: %zu/%zu spaces (%.1f%%), %zu/%zu items released so far, %.2f items/s, failed %zu "
                "(failed attempts %zu)",
                spaces_done, spaces, spaces ? 100.0 * spaces_done / spaces : 100.0, s_.done(), s_.total(), rate,
                s_.failed(), s_.failed_attempts());
  std::string line = buf;
  if (isatty(STDERR_FILENO)) {
    // A bar for people watching a terminal; log files get the plain line.
    const std::size_t width = 24;
    const std::size_t filled = spaces ? width * spaces_done / spaces : width;
    line = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] " + line;
  }
  log::info(line);
}

}  // namespace diffsearch::coordinator
