#include "pv/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
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

}  // namespace pv::metrics
