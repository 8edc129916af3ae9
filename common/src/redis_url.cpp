#include "pv/redis_url.hpp"

#include <fmt/format.h>

#include "pv/config.hpp"
#include "pv/strings.hpp"

namespace pv {
bool ParseRedisUrl(std::string_view url, RedisUrl& out, std::string& error) {
  constexpr std::string_view kScheme = "redis://";
  if (error = RedisUrlSchemeError(url); !error.empty()) return false;
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl parsed;
  // The userinfo ends at the last '@', so a password may hold '@' and '/' (MaskUrlPassword agrees).
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    size_t colon = userinfo.find(':');
    parsed.password = std::string(colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1));
    rest = rest.substr(at + 1);
  }
  if (size_t slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!ParseNumber(db, parsed.db) || parsed.db < 0)) {
      error = fmt::format("redis URL '{}': database '{}' is not a number", MaskUrlPassword(url), db);
      return false;
    }
    rest = rest.substr(0, slash);
  }
  size_t bracket = rest.rfind(']');
  if (size_t colon = rest.rfind(':');
      colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    std::string_view port = rest.substr(colon + 1);
    if (!ParseNumber(port, parsed.port) || parsed.port <= 0 || parsed.port > 65535) {
      error = fmt::format("redis URL '{}': port '{}' is not a port number", MaskUrlPassword(url), port);
      return false;
    }
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) {
    error = fmt::format("redis URL '{}': no host", MaskUrlPassword(url));
    return false;
  }
  // hiredis wants an IPv6 address without its brackets.
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  parsed.host = std::string(rest);
  out = std::move(parsed);
  return true;
}

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
