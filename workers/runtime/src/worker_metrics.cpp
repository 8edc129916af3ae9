#include "pv/workers/worker_metrics.hpp"

namespace pv::workers {

WorkerMetrics::WorkerMetrics(metrics::Registry& r)
    : sends(r.AddCounter("pv_worker_sends_total", "Sends by final or intermediate outcome",
                         {"channel", "provider", "status"})),
      provider_errors(r.AddCounter("pv_worker_provider_errors_total",
                                   "Failed deliveries by error kind and class",
                                   {"channel", "provider", "kind", "class"})),
      provider_latency(r.AddHistogram("pv_worker_provider_latency_seconds",
                                      "Time from handing a send to the provider to its answer",
                                      {"channel", "provider"}, metrics::LatencyBuckets())),
      rate_limited(r.AddCounter("pv_worker_rate_limited_total", "Claims refused by a provider rate limit",
                                {"channel", "provider"})),
      in_flight(
          r.AddGauge("pv_worker_in_flight", "Sends handed to providers and not yet answered", {"channel"})),
      buffered(
          r.AddGauge("pv_worker_buffered", "Records taken from Kafka and not yet finished", {"channel"})),
      paused(r.AddGauge("pv_worker_paused", "1 while consumption is paused (Redis unreachable, draining)",
                        {"channel"})),
      redis_errors(r.AddCounter("pv_worker_redis_unreachable_total",
                                "Redis calls that could not reach the server", {"channel"})),
      outcome_skipped(r.AddCounter("pv_worker_outcome_skipped_total",
                                   "Outcome records the broker refused for good, even as a dead letter (the "
                                   "send's offset moved on without them), by reason",
                                   {"channel", "reason"})),
      send_latency(
          r.AddHistogram("pv_send_latency_seconds",
                         "Time from a trigger's receipt at ingest to the provider's acceptance of its send",
                         {"channel"}, SendLatencyBuckets())) {}

std::vector<double> SendLatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
}

}  // namespace pv::workers
