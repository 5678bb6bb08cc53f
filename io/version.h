#pragma once
// The program's version, from CMakeLists.txt's project(VERSION) and nowhere
// else: --version, and the "versions" every run and merge records.
#include <string>

namespace diffsearch::io {

// "diffsearch 0.1.0".
std::string version_text();

}  // namespace diffsearch::io
