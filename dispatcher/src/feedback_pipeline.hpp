// The consumer of pv.receipts and pv.dlq.push (group pv-feedback) in the dispatcher process: applies
// feedback.hpp's decisions. Private to the dispatcher library; docs/dispatcher.md "Delivery feedback".
//
// One batch at a time, in order, nothing of the next batch begun before the last one ended:
//   1. parse; one pipelined round trip to the marks Redis (redis.url): has this receipt been applied
//      (pv:receipt:<receipt_id>), and which send is this Twilio message (pv:msg:twilio:<sid>);
//   2. suppressions and lifts, one pipelined round trip to the suppression Redis (idempotent);
//   3. the events to pv.events, waiting for the broker's acknowledgement of every one;
//   4. the receipts' marks (SET NX PX feedback.receipt_ttl), then the offsets stored.
// A failure in 1–4 (Redis or the broker away) keeps the batch, pauses the partitions and tries again
// after retry_backoff, so nothing is skipped; a crash between 3 and 4 applies those receipts again
// when they are read again (at least once: an event may be repeated, a suppression is not).
#pragma once

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "kept_batch_consumer.hpp"
#include "pv/dispatcher/dispatcher.hpp"
#include "pv/dispatcher/feedback.hpp"
#include "pv/kafka.hpp"
#include "pv/metrics.hpp"
#include "pv/redis_client.hpp"

namespace pv::dispatcher {

struct FeedbackItem;  // one record of a batch and what it does

class FeedbackPipeline {
 public:
  FeedbackPipeline(const DispatcherOptions& options, const kafka::Settings& settings,
                   kafka::Producer& producer, metrics::Registry& registry, std::atomic<bool>& stop);
  ~FeedbackPipeline();

  // Consumes until `stop`; returns 0 (a stuck batch is retried until then, never dropped).
  int Run();

 private:
  bool Apply(std::span<const kafka::Message> batch);           // false: Redis or the broker failed; kept
  bool ProduceEvents(const std::vector<FeedbackItem>& items);  // step 3
  void Count(const std::vector<FeedbackItem>& items, const std::vector<size_t>& change_of,
             const std::vector<RedisReply>& changed);  // the metrics and logs of what was done

  const DispatcherOptions& options_;
  kafka::Producer& producer_;
  std::atomic<bool>& stop_;
  std::unique_ptr<KeptBatchConsumer> consumer_;
  std::unique_ptr<RedisClient> marks_;
  std::unique_ptr<RedisClient> suppression_;

  metrics::Family<metrics::Counter>& receipts_;      // {provider_type, result}
  metrics::Family<metrics::Counter>& events_;        // {channel, provider, status}
  metrics::Family<metrics::Counter>& suppressions_;  // {channel, reason}
  metrics::Family<metrics::Counter>& lifts_;         // {channel}
  metrics::Gauge& stalled_;
};

}  // namespace pv::dispatcher
