// The dispatcher service: consumes pv.triggers (group pv-dispatcher), turns each trigger into a send
// (processor.hpp) and produces it; runs the delay-ladder scheduler (delay_scheduler.hpp, group
// pv-dispatcher-delay); serves /healthz, /readyz and /metrics. docs/dispatcher.md describes the whole,
// docs/configuration-dispatcher.md every setting.
//
// Delivery guarantee: at least once. An input offset is stored only after every record produced for
// it was acknowledged by the broker, and only up to the highest contiguous finished offset per
// partition (kafka::PartitionBook). Many records are in flight at once (dispatcher.max_in_flight).
// A redelivered trigger yields the same send_id, which the workers deduplicate.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pv/config.hpp"
#include "pv/dispatcher/feedback.hpp"
#include "pv/dispatcher/renderer.hpp"
#include "pv/kafka.hpp"
#include "pv/metrics.hpp"
#include "pv/status_store.hpp"

namespace pv {
class AdminServer;
}

namespace pv::dispatcher {

struct DispatcherOptions {
  std::string catalog_dir = "catalog";                 // catalog_dir
  std::string group_id = "pv-dispatcher";              // dispatcher.group_id
  std::string delay_group_id = "pv-dispatcher-delay";  // dispatcher.delay.group_id
  bool delay_enabled = true;                           // dispatcher.delay.enabled
  std::vector<std::string> delay_tiers;                // dispatcher.delay_tiers (default 5s,30s,2m,10m,1h)
  int max_in_flight = 20000;                           // dispatcher.max_in_flight
  int batch_size = 1000;                               // dispatcher.batch_size
  std::chrono::milliseconds revoke_timeout{5000};      // dispatcher.revoke_timeout
  std::chrono::milliseconds shutdown_timeout{10000};   // dispatcher.shutdown_timeout
  std::chrono::milliseconds retry_backoff{1000};       // dispatcher.retry_backoff
  int dead_letter_attempts = 3;                        // dispatcher.dead_letter_attempts
  std::chrono::milliseconds lag_interval{5000};        // dispatcher.lag_interval
  std::chrono::milliseconds catalog_retry_interval{5000};         // dispatcher.catalog_retry_interval
  std::string campaigns_topic = "pv.campaigns";                   // campaigns_topic ("": catalog_dir only)
  std::chrono::milliseconds campaigns_start_timeout{10000};       // campaigns_start_timeout_ms
  MissingVariables missing_variables = MissingVariables::kEmpty;  // dispatcher.render.missing_variables
  std::string redis_url;                                          // SuppressionRedisUrl (empty: off)
  std::chrono::milliseconds redis_timeout{1000};                  // dispatcher.redis_timeout
  std::string admin_host = "0.0.0.0";                             // dispatcher.admin_host
  int admin_port = 9091;                                          // dispatcher.admin_port (0: any free port)
  int linger_ms = 5;                                              // producer linger.ms default
  // The trigger consumer's Fetches (dispatcher.fetch_min_bytes, dispatcher.fetch_wait_ms): each waits
  // up to fetch_wait_ms for fetch_min_bytes of triggers, so that under load its librdkafka thread and
  // the pipeline wake once per that many triggers, not once per Produce that reached pv.triggers (at
  // half the sustainable rate, half the dispatcher's CPU per trigger; docs/performance.md "Fetches
  // that wait for a batch"). A trigger may wait that long more; an idle dispatcher fetches every
  // fetch_wait_ms. librdkafka's defaults are 1 and 500 (any record ends the wait). Not used when the
  // configuration's consumer properties set fetch.min.bytes or fetch.wait.max.ms (FetchBatchDefaults).
  int fetch_min_bytes = 64 * 1024;
  int fetch_wait_ms = 5;
  // Delivery feedback (feedback.hpp): pv.receipts and dead pushes → events and suppressions.
  bool feedback_enabled = true;                   // feedback.enabled (also needs redis_url)
  std::string feedback_group_id = "pv-feedback";  // feedback.group_id
  std::string feedback_redis_url;                 // redis.url: message ids, receipt marks (empty: redis_url)
  int feedback_batch_size = 500;                  // feedback.batch_size
  std::chrono::milliseconds receipt_ttl{7LL * 24 * 3600 * 1000};  // feedback.receipt_ttl_ms (dedupe window)
  SuppressionReasons suppress;  // feedback.suppress.<reason> (each default true)
  // Trigger statuses (status_feeder.hpp): pv.events → the status store that ingest's status route reads.
  StatusOptions status;          // status.* (status.enabled: the feeder runs)
  std::string status_redis_url;  // status.redis_url, else redis.url (the marks Redis), else redis_url

  // Reads the settings above; throws ConfigError naming a bad one.
  static DispatcherOptions FromConfig(const Config& config);
};

class TriggerPipeline;
class DelayScheduler;
class CatalogSource;
class FeedbackPipeline;
class StatusFeeder;
struct DispatcherMetrics;

class Dispatcher {
 public:
  // Loads and compiles the catalog (throws CatalogError), creates the Kafka clients (KafkaError) and
  // starts following the campaigns topic.
  Dispatcher(DispatcherOptions options, kafka::Settings kafka_settings);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Starts the admin endpoints; returns the bound port.
  int StartAdmin();
  // Waits (up to campaigns_start_timeout, or Stop) until the campaigns topic was read, so that no
  // trigger of a campaign that lives only there is dead-lettered as unknown at start. Then consumes
  // until Stop(); then finishes what is in flight (up to shutdown_timeout), stores the offsets of
  // what finished, leaves the groups. Returns 0, or 1 after a fatal Kafka error.
  int Run();
  // Thread-safe (signal thread).
  void Stop();
  // Reloads catalog_dir (SIGHUP) and merges it with the campaigns topic again; a bad catalog_dir is
  // refused and the old one kept. Thread-safe; the consumer thread switches between batches.
  bool Reload();

 private:
  std::string Readiness();
  void WarmUpProducer();

  DispatcherOptions options_;
  kafka::Settings kafka_settings_;
  metrics::Registry registry_;
  std::unique_ptr<DispatcherMetrics> metrics_;
  std::unique_ptr<CatalogSource> catalogs_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<TriggerPipeline> pipeline_;
  std::unique_ptr<DelayScheduler> scheduler_;
  std::unique_ptr<FeedbackPipeline> feedback_;
  std::unique_ptr<StatusFeeder> status_;
  std::unique_ptr<AdminServer> admin_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> campaigns_read_{false};  // Run waited for the campaigns topic (readiness)
};

}  // namespace pv::dispatcher
