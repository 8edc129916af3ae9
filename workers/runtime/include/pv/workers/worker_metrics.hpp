// The metrics a worker serves on /metrics (see docs/configuration-workers.md for the list).
#pragma once

#include <string>
#include <vector>

#include "pv/metrics.hpp"

namespace pv::workers {

struct WorkerMetrics {
  explicit WorkerMetrics(metrics::Registry& registry);

  metrics::Family<metrics::Counter>& sends;               // {channel, provider, status}
  metrics::Family<metrics::Counter>& provider_errors;     // {channel, provider, kind, class}
  metrics::Family<metrics::Histogram>& provider_latency;  // {channel, provider} seconds
  metrics::Family<metrics::Counter>& rate_limited;        // {channel, provider}
  metrics::Family<metrics::Gauge>& in_flight;             // {channel}: sends at providers
  metrics::Family<metrics::Gauge>& buffered;              // {channel}: records taken, not finished
  metrics::Family<metrics::Gauge>& paused;                // {channel}: 1 while consumption is paused
  metrics::Family<metrics::Counter>& redis_errors;        // {channel}: calls that could not reach Redis
  metrics::Family<metrics::Counter>& outcome_skipped;     // {channel, reason}: outcomes given up for good
  // {channel}: from the trigger's receipt at ingest (the send's received_at) to the provider's acceptance.
  metrics::Family<metrics::Histogram>& send_latency;
};

// pv_send_latency_seconds's buckets: 5 ms to 1 h, since a send deferred to a window or retried on the
// delay ladder is counted too.
std::vector<double> SendLatencyBuckets();

}  // namespace pv::workers
