#include "io/version.h"

namespace diffsearch::io {

// DIFFSEARCH_VERSION is defined for this file alone (CMakeLists.txt), so a
// new version recompiles one file.
std::string version_text() { return std::string("diffsearch ") + DIFFSEARCH_VERSION; }

}  // namespace diffsearch::io
