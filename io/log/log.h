// Logging facade for all of diffsearch. Only log.cc sees spdlog: libtorch 2.x
// ships its own fmt, which breaks spdlog in any translation unit seeing both.
#pragma once

#include <string>

namespace diffsearch::log {

enum class Level { debug, info, warn, error };

// Prefix every line with this (for example "rank 2@node07"); empty by default.
void set_context(const std::string& context);
void set_level(Level level);
// Parses "debug", "info", "warn", "error"; throws diffsearch::Error otherwise.
Level parse_level(const std::string& text);
// The level set last (info by default) and a level's name, which
// parse_level reads back: child processes log at their parent's level.
Level level();
std::string level_name(Level level);

void debug(const std::string& message);
void info(const std::string& message);
void warn(const std::string& message);
void error(const std::string& message);

}  // namespace diffsearch::log
