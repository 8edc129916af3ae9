// The families every pv binary serves on /metrics besides its own (pv::metrics::RenderProcessMetrics:
// pv_build_info and Prometheus' process_*), checked the same way in each binary's process test.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

namespace pv::testing {

// The value of the sample `series` (name with its labels, as written) in Prometheus text.
std::optional<double> SampleValue(const std::string& exposition, const std::string& series);
// SampleValue, or `absent` when the series is not there.
double MetricValue(const std::string& exposition, const std::string& series, double absent = -1);

// Empty when `exposition`, scraped from the process `pid`, has every family with a sane value:
// pv_build_info{version=<this build's PV_VERSION>,commit=<non-empty>} 1, a start time within the last
// minute, open fds > 0 and <= max fds, resident memory within a factor of 2 of /proc/<pid>/status's
// VmRSS and below the virtual size, CPU seconds > 0, each family with its TYPE. Else what is wrong.
std::string CheckProcessMetrics(const std::string& exposition, pid_t pid);

// Scrapes (`scrape` returns the /metrics body) until process_cpu_seconds_total has grown past its first
// value, within 10 s: the counter moves while the process works (each scrape is work). Empty when it
// grew, else what was seen.
std::string CheckCpuSecondsGrow(const std::function<std::string()>& scrape);

}  // namespace pv::testing
