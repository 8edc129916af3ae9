// What this binary is: the version and commit that `--version` prints and every /metrics reports as
// pv_build_info{version,commit,allocator} 1. The version and commit are set when CMake configures the
// build (cmake/PvVersion.cmake): nothing else in the code names a version. The allocator is found
// when the process runs.
#pragma once

#include <string_view>

namespace pv::build {

// The project version (CMakeLists.txt project(VERSION)), or the git tag's: "0.2.0", "0.2.0+3.g0123456789ab".
std::string_view Version();
// The commit built: 12 hex digits, or "unknown" for a build without git.
std::string_view Commit();
// The allocator that serves this process's malloc, as found at run time (the library that defines the
// `malloc` symbols resolve to): "jemalloc", "mimalloc", "tcmalloc", "glibc", or that file's name
// when it is none of these (a sanitizer's runtime, linked into the executable). The services are linked
// with the one CMake's PV_MALLOC chose; other binaries use glibc's.
std::string_view Allocator();

}  // namespace pv::build
