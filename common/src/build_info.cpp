#include "pv/build_info.hpp"

#include <dlfcn.h>

#include <string>

#include "pv_build_version.hpp"  // generated from build_version.hpp.in

namespace pv::build {

std::string_view Version() {
  return generated::kVersion;
}

std::string_view Commit() {
  return generated::kCommit;
}

std::string_view Allocator() {
  static const std::string name = [] {
    // The definition a call to malloc reaches: the first in the process's symbol lookup order.
    void* found = ::dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info{};
    if (found == nullptr || ::dladdr(found, &info) == 0 || info.dli_fname == nullptr)
      return std::string("unknown");
    const std::string_view file = info.dli_fname;
    for (const char* known : {"jemalloc", "mimalloc", "tcmalloc"}) {
      if (file.find(known) != std::string_view::npos) return std::string(known);
    }
    if (file.find("/libc.so") != std::string_view::npos || file.starts_with("libc.so"))
      return std::string("glibc");
    const auto slash = file.rfind('/');
    return std::string(slash == std::string_view::npos ? file : file.substr(slash + 1));
  }();
  return name;
}

}  // namespace pv::build
