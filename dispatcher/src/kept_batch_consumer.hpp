// The consumer loop the dispatcher's side consumers share (the feedback pipeline, the status feeder):
// records are taken in batches, and a batch is applied whole or kept whole. Private to the dispatcher
// library.
//
// A handler that applies a batch returns true: the next offset of each partition in it is stored
// (committed by the automatic commit). One that could not (Redis or the broker away) returns false:
// the batch is kept, the assignment is paused (the consumer is still polled, for group membership and
// rebalances, while the records wait in Kafka rather than in memory) and the same batch is handed over
// again after `retry_backoff`. Records of a partition revoked meanwhile are dropped from a kept batch:
// their offsets were not stored, so the partition's next owner reads them.
//
// Also here, for every consumer of the dispatcher: MakeConsumer (its commit interval) and, for batch
// handlers, PipelineOrKeep (Redis commands whose failure keeps the batch).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/redis_client.hpp"

namespace pv::dispatcher {

class KeptBatchConsumer {
 public:
  struct Options {
    std::string group_id;
    std::string client_id;
    std::vector<std::string> topics;
    size_t batch_size = 500;
    std::chrono::milliseconds retry_backoff{1000};
    // How long a batch may gather before it is applied short of batch_size (0: as soon as the
    // records already fetched are taken). While it gathers the thread sleeps in steps of at most
    // kGatherStep and then takes what arrived, instead of waking for every Fetch answer: fewer,
    // larger batches (Redis round trips) for records whose effect may be this late.
    std::chrono::milliseconds gather{0};
    // librdkafka properties this consumer sets unless the configuration's consumer properties do.
    std::map<std::string, std::string> consumer_defaults;
  };
  static constexpr std::chrono::milliseconds kGatherStep{10};
  struct Handlers {
    std::function<bool(std::span<const kafka::Message> batch)> apply;  // true: applied, whole
    std::function<void(bool stalled)> stalled;  // after each apply: false on success, true on failure
    std::function<void()> tick;                 // every turn of the loop (metrics); may be empty
  };

  KeptBatchConsumer(const kafka::Settings& settings, Options options);
  ~KeptBatchConsumer();

  // Consumes until `stop`, then leaves the group; a kept batch is dropped then (not committed), a
  // gathering one applied once.
  // Returns how many records were left unapplied.
  size_t Run(const std::atomic<bool>& stop, const Handlers& handlers);
  // After Run: whether leaving the group finished within its bound (false: offsets not committed are
  // read again by the next owner).
  bool closed() const { return closed_; }

  const kafka::Consumer& consumer() const { return *consumer_; }

 private:
  void SetPaused(bool on);
  void OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions);
  bool Take(kafka::Message m);
  // Takes what the consumer holds, up to batch_size.
  void TakeReady();
  void StoreOffsets();

  Options options_;
  std::unique_ptr<kafka::Consumer> consumer_;
  std::vector<kafka::Message> batch_;
  bool paused_ = false;
  bool closed_ = false;
};

// A consumer of the dispatcher's (the trigger pipeline, the delay scheduler, the side consumers): stored
// offsets are committed every second (librdkafka's default is 5 s), so that after a crash at most about
// a second of finished work is done again; rebalances go to `on_rebalance`. `defaults`: more librdkafka
// properties, which the configuration's consumer properties override.
std::unique_ptr<kafka::Consumer> MakeConsumer(const kafka::Settings& settings, std::string group_id,
                                              std::string client_id,
                                              kafka::Consumer::RebalanceListener on_rebalance,
                                              const std::map<std::string, std::string>& defaults = {});

// A consumer's Fetches asking for a batch: fetch.min.bytes = `min_bytes` within fetch.wait.max.ms =
// `wait_ms`, as defaults for MakeConsumer. None when the configuration's consumer properties set either
// (the two go together: an operator's fetch.wait.max.ms alone would otherwise become every Fetch's wait
// for `min_bytes`).
std::map<std::string, std::string> FetchBatchDefaults(const kafka::Settings& settings, int min_bytes, int wait_ms);

// `commands` on `redis` for a batch's handler: the replies, or nullopt (return false: the batch is kept)
// when Redis is away or any reply is an error (OOM under maxmemory, a read-only replica: the same batch
// later, not a skipped one; logged as `event`). No commands: no round trip, no replies.
std::optional<std::vector<RedisReply>> PipelineOrKeep(RedisClient& redis,
                                                      const std::vector<std::vector<std::string>>& commands,
                                                      std::string_view event);
std::optional<std::vector<RedisReply>> PipelineOrKeep(RedisClient& redis, const RedisCommands& commands,
                                                      std::string_view event);

}  // namespace pv::dispatcher
