// What this binary is: the version and commit that `--version` prints and every /metrics reports as
// pv_build_info{version,commit} 1. Both are set when CMake configures the build (cmake/PvVersion.cmake):
// nothing else in the code names a version.
#pragma once

#include <string_view>

namespace pv::build {

// The project version (CMakeLists.txt project(VERSION)), or the git tag's: "0.2.0", "0.2.0+3.g0123456789ab".
std::string_view Version();
// The commit built: 12 hex digits, or "unknown" for a build without git.
std::string_view Commit();

}  // namespace pv::build
