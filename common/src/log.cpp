#include "pv/log.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <stdexcept>

#include "pv/json.hpp"

namespace pv::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
std::mutex g_service_mutex;
std::string g_service = "pv";  // NOLINT(cert-err58-cpp)

constexpr std::string_view LevelName(Level level) {
  constexpr std::string_view kNames[] = {"debug", "info", "warn", "error"};  // by Level
  return kNames[static_cast<int>(level)];
}

}  // namespace

Level ParseLevel(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  throw std::invalid_argument(
      fmt::format("unknown log level '{}' (expected debug, info, warn, error)", name));
}

void SetLevel(Level level) {
  g_level.store(static_cast<int>(level), std::memory_order_relaxed);
}

void SetService(std::string_view service) {
  std::lock_guard lock(g_service_mutex);
  g_service = std::string(service);
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void Write(Level level, std::string_view event, std::initializer_list<Field> fields) {
  std::string line;
  line.reserve(256);
  line += "{\"ts\":\"";
  line += FormatTimestamp(std::chrono::system_clock::now());
  line += "\",\"level\":\"";
  line += LevelName(level);
  line += "\",\"service\":";
  {
    std::lock_guard lock(g_service_mutex);
    AppendJsonString(line, g_service);
  }
  line += ",\"event\":";
  AppendJsonString(line, event);
  for (const auto& field : fields) {
    line += ',';
    AppendJsonString(line, field.key);
    line += ':';
    std::visit(
        [&line](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string_view>) {
            AppendJsonString(line, v);
          } else if constexpr (std::is_same_v<T, bool>) {
            line += v ? "true" : "false";
          } else {
            line += fmt::format("{}", v);
          }
        },
        field.value);
  }
  line += "}\n";
  // One write per line: POSIX keeps writes to a pipe up to PIPE_BUF atomic, and files opened
  // O_APPEND get whole lines; longer lines may interleave but never lose bytes.
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) break;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace pv::log
