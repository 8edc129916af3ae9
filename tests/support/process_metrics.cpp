#include "pv/testing/process_metrics.hpp"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "pv/testing/process.hpp"
#include "pv/testing/raw_http.hpp"

namespace pv::testing {

std::optional<double> SampleValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

double MetricValue(const std::string& exposition, const std::string& series, double absent) {
  return SampleValue(exposition, series).value_or(absent);
}

std::string CheckProcessMetrics(const std::string& exposition, pid_t pid) {
  std::string problems;
  auto problem = [&](const std::string& what) { problems += what + "\n"; };
  auto value = [&](const std::string& series) {
    auto v = SampleValue(exposition, series);
    if (!v) problem(series + ": missing");
    return v;
  };
  for (const char* type : {"# TYPE pv_build_info gauge", "# TYPE process_cpu_seconds_total counter",
                           "# TYPE process_resident_memory_bytes gauge",
                           "# TYPE process_virtual_memory_bytes gauge", "# TYPE process_open_fds gauge",
                           "# TYPE process_max_fds gauge", "# TYPE process_start_time_seconds gauge"}) {
    if (exposition.find(std::string(type) + "\n") == std::string::npos)
      problem(std::string(type) + ": missing");
  }

  // pv_build_info{version="0.1.0",commit="0123456789ab",allocator="jemalloc"} 1: this build's version,
  // some commit, and the allocator the build chose.
  std::string build_prefix = fmt::format("pv_build_info{{version=\"{}\",commit=\"", PV_EXPECTED_VERSION);
  size_t at = exposition.find(build_prefix);
  if (at == std::string::npos) {
    problem(fmt::format("no pv_build_info with version \"{}\"", PV_EXPECTED_VERSION));
  } else {
    size_t start = at + build_prefix.size();
    size_t end = exposition.find('"', start);
    std::string commit = exposition.substr(start, end - start);
    if (commit.empty()) problem("pv_build_info: empty commit");
    // allocator="jemalloc": the one this build links the services with (PV_MALLOC), found at run time.
    // A sanitized build's services are served by the sanitizer's runtime, inside the executable.
    std::string expected = PV_EXPECTED_ALLOCATOR;
    if (expected == "self") {
      std::error_code ec;
      expected = std::filesystem::read_symlink(fmt::format("/proc/{}/exe", pid), ec).filename().string();
    }
    const std::string allocator = fmt::format(",allocator=\"{}\"}} 1", expected);
    if (exposition.compare(end + 1, allocator.size(), allocator) != 0) {
      problem(fmt::format(
          "pv_build_info: allocator is not \"{}\" (the one this build links the services with)", expected));
    }
  }

  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (auto start = value("process_start_time_seconds")) {
    // Clock ticks (10 ms) and boot-time rounding (1 s) make the start time a little uncertain.
    if (*start < now - 60 || *start > now + 2) {
      problem(
          fmt::format("process_start_time_seconds {} is not within the last minute (now {})", *start, now));
    }
  }
  auto open_fds = value("process_open_fds");
  auto max_fds = value("process_max_fds");
  if (open_fds && *open_fds <= 0) problem(fmt::format("process_open_fds {}", *open_fds));
  if (open_fds && max_fds && *max_fds < *open_fds) {
    problem(fmt::format("process_max_fds {} < process_open_fds {}", *max_fds, *open_fds));
  }
  auto resident = value("process_resident_memory_bytes");
  auto virtual_bytes = value("process_virtual_memory_bytes");
  if (resident) {
    double vm_rss = static_cast<double>(RssKib(pid)) * 1024;
    if (*resident < vm_rss / 2 || *resident > vm_rss * 2) {
      problem(fmt::format("process_resident_memory_bytes {} is not near VmRSS {}", *resident, vm_rss));
    }
    if (virtual_bytes && *virtual_bytes < *resident) {
      problem(fmt::format("process_virtual_memory_bytes {} < resident {}", *virtual_bytes, *resident));
    }
  }
  if (auto cpu = value("process_cpu_seconds_total"); cpu && *cpu <= 0) {
    problem(fmt::format("process_cpu_seconds_total {}", *cpu));
  }
  return problems;
}

std::string CheckCpuSecondsGrow(const std::function<std::string()>& scrape) {
  auto first = SampleValue(scrape(), "process_cpu_seconds_total");
  if (!first) return "process_cpu_seconds_total: missing";
  double last = *first;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (int i = 0; i < 5000 && std::chrono::steady_clock::now() < deadline; ++i) {
    if (auto v = SampleValue(scrape(), "process_cpu_seconds_total")) last = *v;
    if (last > *first) return "";
  }
  return fmt::format("process_cpu_seconds_total stayed at {} (last {})", *first, last);
}

}  // namespace pv::testing
