#include "pv/redis_url.hpp"

#include <fmt/format.h>

#include "pv/config.hpp"

namespace pv {

std::string RedisUrlSchemeError(std::string_view url) {
  if (url.substr(0, 8) == "redis://") return "";
  if (url.substr(0, 9) == "rediss://") {
    return fmt::format(
        "'{}': TLS to Redis (rediss://) is not supported; run a TLS tunnel (stunnel) beside this process and "
        "use redis://127.0.0.1:<its port> (docs/operations.md \"Redis over TLS\")",
        MaskUrlPassword(url));
  }
  return fmt::format("'{}' is not a redis:// URL", MaskUrlPassword(url));
}

}  // namespace pv
