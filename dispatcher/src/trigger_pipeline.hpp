// The consumer of pv.triggers. Private to the dispatcher library; see dispatcher.hpp for the contract.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog_source.hpp"
#include "dispatcher_metrics.hpp"
#include "in_flight.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/dispatcher/dispatcher.hpp"
#include "pv/dispatcher/processor.hpp"
#include "pv/dispatcher/suppression.hpp"
#include "pv/kafka.hpp"

namespace pv::dispatcher {

class TriggerPipeline {
 public:
  TriggerPipeline(const DispatcherOptions& options, const kafka::Settings& settings,
                  kafka::Producer& producer, DispatcherMetrics& metrics, CatalogSource& catalogs,
                  std::atomic<bool>& stop);
  ~TriggerPipeline();

  // Consumes until `stop`; then finishes in-flight work and leaves the group. Returns 0, or 1 after a
  // fatal error (the idempotent producer cannot go on).
  int Run();

  // Empty when ready, else why not (for /readyz).
  std::string Readiness() const;

 private:
  // One consumed trigger waiting to be processed (or processed again after a failed delivery).
  struct Item {
    kafka::Message message;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point not_before{};
    // Set when an output of this trigger can never be written: it goes to its dead-letter topic
    // instead, with this reason (pv-error-code, pv-error).
    std::string dead_letter_code;
    std::string dead_letter_error;
    // Attempts so far at writing this trigger's dead letter (bounded: dispatcher.dead_letter_attempts).
    int dead_letter_tries = 0;
    bool omit_value = false;  // the broker refused the dead letter for size: without the trigger then
  };

  void OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions);
  void Take(kafka::Message message);
  bool ProcessBatch();  // false: suppression store unreachable, batch kept
  void Produce(Item& item, Outcome& outcome);
  void DrainCompletions();
  void WaitOutstanding(const std::vector<std::pair<std::string, std::int32_t>>& partitions,
                       std::chrono::steady_clock::time_point deadline);
  void SetPaused(const char* reason, bool on);
  void ApplyPause();
  bool ReloadForUnknownCampaign();
  void ProbeRedis();

  const DispatcherOptions& options_;
  kafka::Producer& producer_;
  DispatcherMetrics& metrics_;
  // queued, deferred or suppressed by channel (Channel indexes it): looked up in the families at the
  // first use only, since Produce counts every trigger (a family lookup builds a label vector).
  std::array<std::array<metrics::Counter*, 3>, 3> outcome_counters_{};
  metrics::Counter& OutcomeCounter(Action action, Channel channel);
  // pv_dispatcher_produced_total by kind (send, event, delay, dlq), likewise looked up once.
  std::array<metrics::Counter*, 4> produced_counters_{};
  metrics::Counter& ProducedCounter(int kind);
  std::vector<kafka::Header> headers_;  // Produce's, reused
  std::atomic<bool>& stop_;
  std::vector<ladder::Tier> tiers_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::unique_ptr<SuppressionStore> suppression_;
  TriggerProcessor processor_;
  CatalogSource& catalogs_;
  std::shared_ptr<CompiledCatalog> catalog_;  // catalogs_'s current one, taken between batches
  std::chrono::steady_clock::time_point last_catalog_retry_{};

  internal::PendingQueue completions_;
  kafka::PartitionBook book_;
  std::vector<Item> batch_;  // consumed, not yet processed
  // ProcessBatch's parse pool: a trigger of ~400 bytes takes ~800 bytes of it, so a batch of
  // dispatcher.batch_size's default 1,000 fits the buffer; beyond it the pool takes chunks of the
  // heap, given back when the batch is done.
  static constexpr size_t kParseBufferBytes = 1 << 20;
  std::unique_ptr<char[]> parse_buffer_;
  std::unique_ptr<rapidjson::MemoryPoolAllocator<>> parse_pool_;
  std::deque<Item> retries_;  // failed deliveries, processed again after retry_backoff
  std::chrono::steady_clock::time_point redis_retry_at_{};
  bool paused_redis_ = false;
  bool paused_backpressure_ = false;
  bool pause_applied_ = false;
  bool repause_ = false;
  std::optional<std::chrono::steady_clock::time_point> full_since_;
  bool fatal_ = false;
  std::atomic<bool> redis_ok_{true};

  metrics::Counter* consumed_;
  metrics::Gauge* in_flight_gauge_;
  metrics::Histogram* render_seconds_;
};

}  // namespace pv::dispatcher
