// The status feeder (group status.group_id, pv-status) in the dispatcher process: consumes pv.events
// and writes each event as a status entry of its trigger in the status Redis (status.redis_url, else
// the marks Redis; pv/status_store.hpp), which ingest's GET /api/client/triggers/:triggerId and
// `pvctl status` read. Private to the dispatcher library; docs/architecture.md "Trigger statuses".
//
// One batch at a time: parse every event, one pipelined round trip of plain commands, one write per
// hash (a send's) of the batch (each idempotent: an entry's field is a digest of its event, so an
// event read twice is shown once; a second round trip only for hashes past status.max_statuses),
// then the offsets stored. When Redis does not answer, the batch is kept, the partitions are paused and the
// batch is tried again after dispatcher.retry_backoff: nothing is skipped and nothing is committed that Redis
// did not acknowledge. Triggers never wait for it: this is a consumer of its own, beside them.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "dispatcher_metrics.hpp"
#include "kept_batch_consumer.hpp"
#include "pv/dispatcher/dispatcher.hpp"
#include "pv/kafka.hpp"
#include "pv/metrics.hpp"
#include "pv/redis_client.hpp"
#include "pv/status_store.hpp"

namespace pv::dispatcher {

class StatusFeeder {
 public:
  StatusFeeder(const DispatcherOptions& options, const kafka::Settings& settings, DispatcherMetrics& metrics,
               metrics::Registry& registry, std::atomic<bool>& stop);
  ~StatusFeeder();

  // Consumes until `stop`; returns 0 (a stuck batch is retried until then, never dropped).
  int Run();

 private:
  bool Apply(std::span<const kafka::Message> batch);  // false: Redis failed; the batch is kept

  const DispatcherOptions& options_;
  DispatcherMetrics& metrics_;
  std::atomic<bool>& stop_;
  std::unique_ptr<KeptBatchConsumer> consumer_;
  std::unique_ptr<RedisClient> redis_;
  // Reused by every batch (no allocation per event for the commands).
  std::vector<StatusUpdate> updates_;
  std::vector<size_t> order_;         // the batch's updates by hash (stable)
  std::vector<size_t> group_begins_;  // where each hash's begin in order_, then its end
  std::vector<const StatusUpdate*> by_hash_;  // the batch's updates in order_
  std::vector<size_t> counts_;  // commands per hash in writes_
  RedisCommands writes_;

  metrics::Family<metrics::Counter>& events_;  // {result}: applied, duplicate, over_limit, invalid
  metrics::Counter& errors_;                   // batches Redis did not take
  metrics::Counter& ttl_writes_;               // TTLs set in the second round trip
  metrics::Gauge& stalled_;
};

}  // namespace pv::dispatcher
