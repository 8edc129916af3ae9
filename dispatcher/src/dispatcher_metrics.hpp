// The dispatcher's Prometheus series (docs/dispatcher.md "Metrics"). Private to the library.
#pragma once

#include <string>

#include "pv/kafka.hpp"
#include "pv/metrics.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {

struct DispatcherMetrics {
  explicit DispatcherMetrics(metrics::Registry& r) : registry(r) {}

  metrics::Registry& registry;
  metrics::Family<metrics::Counter>& consumed =
      registry.AddCounter("pv_dispatcher_consumed_total", "Records consumed, by topic", {"topic"});
  metrics::Family<metrics::Counter>& produced = registry.AddCounter(
      "pv_dispatcher_produced_total",
      "Records handed to the producer, by kind (send, event, delay, dlq, release)", {"kind"});
  metrics::Family<metrics::Counter>& queued =
      registry.AddCounter("pv_dispatcher_queued_total", "Sends produced to pv.send.<channel>", {"channel"});
  metrics::Family<metrics::Counter>& deferred =
      registry.AddCounter("pv_dispatcher_deferred_total", "Triggers deferred to a send window", {"channel"});
  metrics::Family<metrics::Counter>& suppressed =
      registry.AddCounter("pv_dispatcher_suppressed_total", "Sends suppressed", {"channel"});
  metrics::Family<metrics::Counter>& failed =
      registry.AddCounter("pv_dispatcher_failed_total", "Triggers failed permanently (DLQ), by error code",
                          {"channel", "error_code"});
  metrics::Family<metrics::Counter>& dropped =
      registry.AddCounter("pv_dispatcher_dropped_total", "Records that were not triggers at all", {});
  metrics::Family<metrics::Histogram>& render_seconds = registry.AddHistogram(
      "pv_dispatcher_render_seconds", "Time to render one trigger's templates", {},
      {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05});
  metrics::Family<metrics::Counter>& missing_variables =
      registry.AddCounter("pv_dispatcher_missing_variables_total",
                          "Template variables that rendered as nothing, by campaign", {"campaign"});
  metrics::Family<metrics::Gauge>& consumer_lag = registry.AddGauge(
      "pv_dispatcher_consumer_lag", "Records behind the partition's end, per consumed partition",
      {"group", "topic", "partition"});
  metrics::Family<metrics::Gauge>& in_flight =
      registry.AddGauge("pv_dispatcher_in_flight", "Consumed records not yet finished", {"pipeline"});
  metrics::Family<metrics::Gauge>& paused = registry.AddGauge(
      "pv_dispatcher_paused", "1 while trigger consumption is paused, by reason", {"reason"});
  metrics::Family<metrics::Gauge>& redis_up =
      registry.AddGauge("pv_dispatcher_redis_up", "1 when the suppression store answers", {});
  metrics::Family<metrics::Counter>& delivery_failures = registry.AddCounter(
      "pv_dispatcher_delivery_failures_total",
      "Inputs with an output the broker did not acknowledge (retried, dead-lettered or skipped)",
      {"pipeline"});
  metrics::Family<metrics::Counter>& skipped =
      registry.AddCounter("pv_dispatcher_skipped_total",
                          "Records given up for good: a dead letter that could not be written after "
                          "dispatcher.dead_letter_attempts, or an event the broker refuses; by the produce "
                          "error's reason (too_large, unauthorized, unknown_topic, invalid_record)",
                          {"pipeline", "reason"});
  metrics::Family<metrics::Counter>& delay_dead_lettered =
      registry.AddCounter("pv_dispatcher_delay_dead_lettered_total",
                          "Delay-ladder records sent to a dead-letter topic because their target can never "
                          "take them, by error code",
                          {"error_code"});
  metrics::Family<metrics::Counter>& catalog_reloads =
      registry.AddCounter("pv_dispatcher_catalog_reloads_total", "Catalog reloads by result", {"result"});
  metrics::Family<metrics::Gauge>& catalog_campaigns =
      registry.AddGauge("pv_dispatcher_catalog_campaigns",
                        "Campaigns in the catalog: catalog_dir merged with the campaigns topic", {});
  metrics::Family<metrics::Counter>& campaign_records = registry.AddCounter(
      "pv_dispatcher_campaign_records_total",
      "Records read from the campaigns topic, by result (applied, older, invalid, over_limit)", {"result"});
  metrics::Family<metrics::Counter>& delay_released =
      registry.AddCounter("pv_dispatcher_delay_released_total",
                          "Delay-ladder records re-published to their target, by tier", {"tier"});
  metrics::Family<metrics::Counter>& delay_hops =
      registry.AddCounter("pv_dispatcher_delay_hops_total",
                          "Delay-ladder records moved to another tier, by the tier they left", {"tier"});
  metrics::Family<metrics::Counter>& delay_invalid =
      registry.AddCounter("pv_dispatcher_delay_invalid_total",
                          "Delay-ladder records without a pv-target header (skipped)", {"tier"});
  metrics::Family<metrics::Gauge>& delay_held =
      registry.AddGauge("pv_dispatcher_delay_held", "Delay-ladder records held until due", {});
  metrics::Family<metrics::Histogram>& delay_lateness =
      registry.AddHistogram("pv_dispatcher_delay_lateness_seconds",
                            "Release time minus due time of records re-published to their target", {},
                            {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10});
};

// Sets pv_dispatcher_consumer_lag for every partition assigned to `rk` (high watermark minus the
// consumer's position, both from librdkafka's cache: no broker round trip).
void UpdateConsumerLag(const kafka::Consumer& consumer, const std::string& group, DispatcherMetrics& m);

}  // namespace pv::dispatcher
