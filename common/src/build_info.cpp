#include "pv/build_info.hpp"

#include "pv_build_version.hpp"  // generated from build_version.hpp.in

namespace pv::build {

std::string_view Version() {
  return generated::kVersion;
}

std::string_view Commit() {
  return generated::kCommit;
}

}  // namespace pv::build
