#include "pv/metrics.hpp"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <sstream>

#include "pv/build_info.hpp"

namespace pv::metrics {
namespace {

std::string EscapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// HELP text may hold anything but a raw line feed, so '\\' and line feeds are escaped.
std::string EscapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values,
                   const std::string& extra = {}) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    out += fmt::format("{}{}=\"{}\"", out.empty() ? "" : ",", names[i], EscapeLabel(values[i]));
  }
  if (!extra.empty()) out += (out.empty() ? "" : ",") + extra;
  return out.empty() ? "" : "{" + out + "}";
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  std::sort(bounds_.begin(), bounds_.end());
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::Observe(double value) {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  buckets_[static_cast<size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::CumulativeCounts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60};
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  counters_.push_back(std::make_unique<Family<Counter>>(name, help, std::move(labels),
                                                        [] { return std::make_unique<Counter>(); }));
  return *counters_.back();
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  std::lock_guard lock(mutex_);
  gauges_.push_back(std::make_unique<Family<Gauge>>(name, help, std::move(labels),
                                                    [] { return std::make_unique<Gauge>(); }));
  return *gauges_.back();
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> labels, const std::vector<double>& bounds) {
  std::lock_guard lock(mutex_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      name, help, std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); }));
  return *histograms_.back();
}

void Registry::AddCallbackGauge(const std::string& name, const std::string& help,
                                std::function<double()> fn) {
  std::lock_guard lock(mutex_);
  callbacks_.push_back({name, help, std::move(fn)});
}

std::string Registry::Render() const {
  std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& family : counters_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n", family->name(), EscapeHelp(family->help()),
                       family->name());
    family->ForEach([&](const auto& labels, const Counter& c) {
      out +=
          fmt::format("{}{} {}\n", family->name(), Labels(family->label_names(), labels), Number(c.Value()));
    });
  }
  for (const auto& family : gauges_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n", family->name(), EscapeHelp(family->help()),
                       family->name());
    family->ForEach([&](const auto& labels, const Gauge& g) {
      out +=
          fmt::format("{}{} {}\n", family->name(), Labels(family->label_names(), labels), Number(g.Value()));
    });
  }
  for (const auto& cb : callbacks_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} gauge\n{} {}\n", cb.name, EscapeHelp(cb.help), cb.name,
                       cb.name, Number(cb.fn()));
  }
  for (const auto& family : histograms_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", family->name(), EscapeHelp(family->help()),
                       family->name());
    family->ForEach([&](const auto& labels, const Histogram& h) {
      auto counts = h.CumulativeCounts();
      const auto& bounds = h.bounds();
      for (size_t i = 0; i < bounds.size(); ++i) {
        out += fmt::format("{}_bucket{} {}\n", family->name(),
                           Labels(family->label_names(), labels, fmt::format("le=\"{}\"", Number(bounds[i]))),
                           counts[i]);
      }
      out += fmt::format("{}_bucket{} {}\n", family->name(),
                         Labels(family->label_names(), labels, "le=\"+Inf\""), counts.back());
      out += fmt::format("{}_sum{} {}\n", family->name(), Labels(family->label_names(), labels), h.Sum());
      out += fmt::format("{}_count{} {}\n", family->name(), Labels(family->label_names(), labels), h.Count());
    });
  }
  return out;
}

namespace {

// A small /proc file, read whole (their size in stat(2) is 0, so they are read until the end).
std::optional<std::string> ReadProcFile(const char* path) {
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return std::nullopt;
  std::string text;
  char buffer[4096];
  size_t n = 0;
  // /proc/self/stat is one line of a few hundred bytes, /proc/stat a few KiB per hundred CPUs.
  while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0 && text.size() < 1024 * 1024)
    text.append(buffer, n);
  std::fclose(f);
  return text;
}

struct SelfStat {
  double start_ticks = 0;     // field 22, starttime: clock ticks after boot
  double virtual_bytes = 0;   // field 23, vsize
  double resident_pages = 0;  // field 24, rss
};

// /proc/self/stat (proc(5)): "pid (comm) state ppid ...". comm may hold blanks and ')', so the fields
// are counted from the last ')'.
std::optional<SelfStat> ReadSelfStat() {
  auto text = ReadProcFile("/proc/self/stat");
  if (!text) return std::nullopt;
  size_t paren = text->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream in(text->substr(paren + 1));
  std::vector<std::string> fields;  // fields[0] is field 3 (state)
  std::string field;
  while (fields.size() < 22 && in >> field) fields.push_back(field);
  if (fields.size() < 22) return std::nullopt;
  auto number = [&](int n) { return std::strtod(fields[static_cast<size_t>(n - 3)].c_str(), nullptr); };
  return SelfStat{number(22), number(23), number(24)};
}

// When the process started, in Unix seconds: boot time (btime in /proc/stat) + starttime. It never
// changes, so it is read once.
std::optional<double> StartTimeSeconds() {
  static const std::optional<double> start = []() -> std::optional<double> {
    auto stat = ReadSelfStat();
    auto text = ReadProcFile("/proc/stat");
    long ticks = ::sysconf(_SC_CLK_TCK);
    if (!stat || !text || ticks <= 0) return std::nullopt;
    size_t at = text->find("\nbtime ");
    if (at == std::string::npos) return std::nullopt;
    double boot = std::strtod(text->c_str() + at + 7, nullptr);
    if (boot <= 0) return std::nullopt;
    return boot + stat->start_ticks / static_cast<double>(ticks);
  }();
  return start;
}

std::optional<double> OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  int own = ::dirfd(dir);
  double count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;          // "." and ".."
    if (std::atoi(entry->d_name) == own) continue;  // the listing's own descriptor
    ++count;
  }
  ::closedir(dir);
  return count;
}

void AppendSample(std::string& out, std::string_view name, std::string_view type, std::string_view help,
                  double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, Number(value));
}

}  // namespace

std::string RenderProcessMetrics() {
  std::string out = fmt::format(
      "# HELP pv_build_info The version and commit of this binary, and the allocator serving its malloc; "
      "always 1.\n# TYPE pv_build_info gauge\n"
      "pv_build_info{{version=\"{}\",commit=\"{}\",allocator=\"{}\"}} 1\n",
      EscapeLabel(std::string(build::Version())), EscapeLabel(std::string(build::Commit())),
      EscapeLabel(std::string(build::Allocator())));
  // getrusage rather than stat's utime and stime: microseconds instead of clock ticks (10 ms).
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) {
    auto seconds = [](const timeval& tv) {
      return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
    };
    AppendSample(out, "process_cpu_seconds_total", "counter",
                 "Total user and system CPU time spent in seconds.",
                 seconds(usage.ru_utime) + seconds(usage.ru_stime));
  }
  if (auto stat = ReadSelfStat()) {
    AppendSample(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                 stat->virtual_bytes);
    AppendSample(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                 stat->resident_pages * static_cast<double>(::sysconf(_SC_PAGESIZE)));
  }
  if (auto fds = OpenFds()) {
    AppendSample(out, "process_open_fds", "gauge", "Number of open file descriptors.", *fds);
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    AppendSample(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                 static_cast<double>(limit.rlim_cur));
  }
  if (auto start = StartTimeSeconds()) {
    AppendSample(out, "process_start_time_seconds", "gauge",
                 "Start time of the process since unix epoch in seconds.", *start);
  }
  return out;
}

}  // namespace pv::metrics
