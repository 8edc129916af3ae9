// Prometheus metrics: counters, gauges and histograms with labels, rendered in the text
// exposition format (version 0.0.4) for GET /metrics.
//
// Hot paths should look a labelled series up once (With(...) returns a stable reference) and keep
// it; each update is then one relaxed atomic operation.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

namespace pv::metrics {

class Counter {
 public:
  void Inc(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by) { value_.fetch_add(by, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, then the +Inf count; and the sum.
  std::vector<std::uint64_t> CumulativeCounts() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }
  std::uint64_t Count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // one per bound plus +Inf
  std::atomic<double> sum_{0.0};
  std::atomic<std::uint64_t> count_{0};
};

// Seconds-scale default buckets from 0.5 ms to 60 s: fine below a second (ingest's acknowledgements,
// an HTTP provider's answer), then up to past the slowest provider timeout (SMTP's 30 s default), so a
// send that waited for its timeout lands in a bucket of its own rather than in +Inf.
std::vector<double> LatencyBuckets();

// The families every pv binary serves besides its own (AdminServer appends them to each /metrics):
//   pv_build_info{version,commit} 1   pv::build::Version() and Commit() (cmake/PvVersion.cmake)
//   process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
//   process_open_fds, process_max_fds, process_start_time_seconds
// The process_* families have the names and meanings of Prometheus' client libraries, read at each
// call from /proc/self (stat, fd), getrusage and getrlimit: a few system calls and a directory listing
// of the open descriptors. A family whose source cannot be read is left out rather than shown as 0.
std::string RenderProcessMetrics();

template <typename Metric>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::function<std::unique_ptr<Metric>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        make_(std::move(make)) {}

  // The series for these label values (in the order of the label names); created on first use.
  Metric& With(const std::vector<std::string>& label_values) {
    {
      std::shared_lock lock(mutex_);
      auto it = series_.find(label_values);
      if (it != series_.end()) return *it->second;
    }
    std::unique_lock lock(mutex_);
    auto& slot = series_[label_values];
    if (!slot) slot = make_();
    return *slot;
  }
  Metric& Get() { return With({}); }

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    std::shared_lock lock(mutex_);
    for (const auto& [labels, metric] : series_) fn(labels, *metric);
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::function<std::unique_ptr<Metric>()> make_;
  mutable std::shared_mutex mutex_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_;
};

class Registry {
 public:
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels, const std::vector<double>& bounds);
  // A gauge computed at scrape time (e.g. a queue length read from a library).
  void AddCallbackGauge(const std::string& name, const std::string& help, std::function<double()> fn);

  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  struct CallbackGauge {
    std::string name;
    std::string help;
    std::function<double()> fn;
  };
  std::vector<CallbackGauge> callbacks_;
};

}  // namespace pv::metrics
