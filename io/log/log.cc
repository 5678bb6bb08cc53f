// spdlog behind the facade in log.h: lines go to stderr, prefixed with the
// rank/host context of a distributed run.
#include "io/log/log.h"

#include <mutex>
#include "io/error.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace diffsearch::log {
namespace {

std::mutex g_mutex;
std::string g_context;

spdlog::logger& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = spdlog::stderr_logger_mt("diffsearch");
    l->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return *instance;
}

std::string with_context(const std::string& message) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_context.empty()) return message;
  return "[" + g_context + "] " + message;
}

}  // namespace

void set_context(const std::string& context) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_context = context;
}

static Level g_level = Level::info;  // what set_level last set

Level level() { return g_level; }

std::string level_name(Level level) {
  switch (level) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "info";
}

void set_level(Level level) {
  g_level = level;
  switch (level) {
    case Level::debug: logger().set_level(spdlog::level::debug); break;
    case Level::info: logger().set_level(spdlog::level::info); break;
    case Level::warn: logger().set_level(spdlog::level::warn); break;
    case Level::error: logger().set_level(spdlog::level::err); break;
  }
}

Level parse_level(const std::string& text) {
  if (text == "debug") return Level::debug;
  if (text == "info") return Level::info;
  if (text == "warn") return Level::warn;
  if (text == "error") return Level::error;
  throw InputError("unknown log level '" + text +
                              "': expected debug, info, warn or error");
}

void debug(const std::string& message) { logger().debug(with_context(message)); }
void info(const std::string& message) { logger().info(with_context(message)); }
void warn(const std::string& message) { logger().warn(with_context(message)); }
void error(const std::string& message) { logger().error(with_context(message)); }

}  // namespace diffsearch::log
