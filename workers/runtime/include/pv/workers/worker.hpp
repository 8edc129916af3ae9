// The channel worker runtime: consumes pv.send.<channel> as a member of the channel's consumer
// group, claims each send in Redis, delivers it through its campaign's provider with many sends in
// flight, and records the outcome (pv.events always; pv.delay.<tier> for a retry, pv.dlq.<channel>
// for a dead send). A record's offset is stored only after every record its outcome produced was
// acknowledged by the brokers, and only up to the highest contiguous finished offset of its
// partition: at-least-once, with Redis turning redeliveries into `deduped` events.
//
// One thread runs the whole pipeline (poll, claim, start, settle, record, store) as an event loop;
// it also turns the providers' transfer loop (WorkerOptions::transfer_loop, a driven CurlLoop),
// unless that runs on a thread of its own, and does not wait for Redis: an exchange of claims and
// settles is begun, and collected in a later turn when its replies are in. The producer's delivery reports come on its poll thread.
// Answers and reports only post to this loop's inbox. What each outcome produces is decided by
// OutcomePlanner (outcome.hpp), without I/O; a provider's circuit is a CircuitBreaker. Tests:
// tests/workers/worker_*_test.cpp, workers/test/{outcome,circuit_breaker}_test.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pv/delay_ladder.hpp"
#include "pv/kafka.hpp"
#include "pv/kafka_book.hpp"
#include "pv/metrics.hpp"
#include "pv/topics.hpp"
#include "pv/workers/backoff.hpp"
#include "pv/workers/circuit_breaker.hpp"
#include "pv/workers/dedupe_store.hpp"
#include "pv/workers/delivered_memory.hpp"
#include "pv/workers/outcome.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/worker_metrics.hpp"

namespace pv::workers {

class CurlLoop;

// The defaults of every setting (LoadWorkerOptions reads them from here; docs/configuration-workers.md
// "Settings" lists the same).
struct WorkerOptions {
  Channel channel = Channel::kEmail;
  std::string worker_id;  // in claims ("inflight:<id>") and logs; unique per process
  kafka::Settings kafka;
  std::string group_id;     // default pv-<email|sms|push>-worker
  int max_in_flight = 256;  // sends at providers at once
  // The providers' transfer loop when it is driven (CurlLoopOptions::driven): turned by Run's loop
  // every turn, whose sleep also waits on its descriptor. Null: it has a thread of its own.
  CurlLoop* transfer_loop = nullptr;
  // Records taken from Kafka and not finished; no more are taken above. 0: 8 × max_in_flight (records
  // wait for their outcome's acknowledgement after delivery too: room for several rounds).
  int max_buffered = 0;
  int claim_batch = 128;  // claims per Redis round trip
  // The producer's linger.ms: how long its outcome records (events, retries, dead letters) gather
  // before they are sent. They follow a delivery, never delay one; each partition's first record of
  // a gather wakes librdkafka's broker thread, so longer gathers mean fewer wake-ups per send
  // (docs/performance.md "Outcome records gathered longer"). kafka.producer_properties.linger.ms wins.
  int outcome_linger_ms = 20;
  // Sends delivered whose records' offsets are not yet committed, remembered so that a record read
  // again after Redis lost its `sent:` mark is not delivered twice (DeliveredMemory). 0: the larger
  // of 65,536 and 8 × max_buffered. At this many, consumption pauses until a commit frees room.
  int delivered_memory = 0;
  int max_attempts = 8;  // the attempt that fails transiently at this number goes dead
  BackoffPolicy backoff;
  int fallback_after_attempts = 2;  // attempts > this use the campaign's fallback provider
  int circuit_failures = 10;        // consecutive transient failures that open a provider's circuit
  std::chrono::milliseconds circuit_open{30000};        // while open, sends with a fallback use it
  std::chrono::milliseconds rate_limit_max_wait{2000};  // longer waits go to the ladder (deferred)
  std::chrono::milliseconds drain_timeout{30000};
  std::chrono::milliseconds revoke_timeout{10000};
  std::vector<ladder::Tier> tiers;  // the delay ladder's tiers (same as the dispatcher's)

  // max_buffered and delivered_memory with their 0 resolved (never fewer buffered than in flight).
  int Buffered() const {
    return max_buffered > 0 ? std::max(max_buffered, max_in_flight) : 8 * max_in_flight;
  }
  int DeliveredMemory() const {
    return delivered_memory > 0 ? delivered_memory : std::max(65536, 8 * Buffered());
  }
};

// The options of the worker's producer (its outcome records): client id, linger, report batching.
kafka::ProducerOptions OutcomeProducerOptions(const WorkerOptions& options);

class Worker {
 public:
  Worker(WorkerOptions options, std::unique_ptr<DedupeStore> store,
         std::map<std::string, std::unique_ptr<Provider>> providers, metrics::Registry& registry);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until Stop(), then drains: in-flight sends finish, outcomes are recorded, offsets stored
  // and committed. Returns 0 after a complete drain, 1 when the drain timed out.
  int Run();
  // From any thread (the signal thread).
  void Stop();
  // "" when ready; else why not (for /readyz). From any thread.
  std::string NotReadyReason() const;
  // The producer's fatal error once Run() stopped for it ("" before): Run() then returned 1.
  std::string FatalError() const;
  // Sum over assigned partitions of (high watermark - position). From any thread.
  double ConsumerLag() const;

 private:
  struct Job;
  struct Inbox;
  class AckGroup;
  enum class Stage { kClaim, kWait, kReady, kDelivering, kSettle, kRecord, kAcking };

  // Loop steps.
  void TakeMessages(int max);
  void NewJob(kafka::Message message);
  void MoveDueWaits();
  void ProbeStore(std::chrono::steady_clock::time_point now);  // asks an idle or down store
  std::chrono::milliseconds SleepTime() const;
  // Collects the Redis exchanges begun earlier whose replies are in, then begins the next: the
  // answered sends' settles and (with `claim`) claims ahead of free slots, a batch of each.
  void ClaimAndSettle(bool claim, bool force_settle);
  // Waits for every begun exchange and applies it (drain, revoke: before they look at the queues).
  void AwaitExchange(bool force_settle);
  struct Exchange;
  // Applies an exchange's result. False when the store failed: what it held is queued again.
  bool FinishExchange(Exchange e, const ExchangeResult& result, bool force_settle);
  // The next job of `queue` still in jobs_ (ids of finished ones are dropped); null when none.
  Job* PopLive(std::deque<std::uint64_t>& queue);
  void TakeClaims(std::vector<std::uint64_t>& ids, std::vector<ClaimRequest>& requests);
  // False when the store failed: the claims are queued again.
  bool FinishClaims(const std::vector<std::uint64_t>& ids, const std::optional<std::vector<ClaimResult>>& results);
  void TakeSettles(std::vector<std::uint64_t>& ids, std::vector<SettleRequest>& requests);
  // False when the store failed and `force` is not set: the settles are queued again.
  bool FinishSettles(const std::vector<std::uint64_t>& ids, bool settled, bool force);
  bool StartDeliveries();  // true when it started one
  // Moves the driven transfer loop (options_.transfer_loop) on: returns how long it may wait for its
  // next turn (1 s without one). Every loop that waits for answers must turn it: nothing else does.
  std::chrono::milliseconds TurnTransfers();
  // Waits up to `timeout` for the inbox, the transfer loop's sockets and timers, or the replies of
  // the begun Redis exchange.
  void Sleep(std::chrono::milliseconds timeout);
  void CollectInbox();
  void RecordOutcomes();
  void UpdatePause();
  void BeginDrain();
  void OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions);
  void OnCommitted(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets);
  void UpdateMemoryFull();
  bool CheckFatal(std::chrono::steady_clock::time_point now);

  // Outcomes (decided by planner_).
  Provider* ChooseProvider(Job& job);
  CircuitBreaker& Circuit(const std::string& provider);
  // pv_worker_sends_total and the provider latency of `provider`, through series_.
  metrics::Counter& SendsCounter(const std::string& provider, std::string_view status);
  metrics::Histogram& ProviderLatency(const std::string& provider);
  void Fail(Job& job, ErrorKind kind, const std::string& error,
            std::optional<std::chrono::milliseconds> retry_after);
  void Conclude(Job& job);  // to settling or recording, as job.outcome.settle says
  void RetryBecameDead(Job& job);
  void ToRecord(Job& job);
  // Drain (partitions null) and revoke: drop queued work not yet claimed (its offsets stay unstored, so
  // the next owner reads it) and release the claims of work not yet started.
  void ReleaseQueuedWork(const std::set<std::int32_t>* partitions);
  // Redis unreachable: pause consumption (UpdatePause) until the store answers again.
  void SetStoreDown(bool down);
  void Finish(Job& job);
  void Erase(std::uint64_t id);
  std::size_t Busy() const;  // jobs delivering or past delivery, not finished

  WorkerOptions options_;
  std::string channel_name_;  // "email" | "text" | "push"
  std::string send_topic_;
  std::string dlq_topic_;
  std::unique_ptr<DedupeStore> store_;
  std::map<std::string, std::unique_ptr<Provider>, std::less<>> providers_;  // found by a send's view
  OutcomePlanner planner_;
  WorkerMetrics metrics_;
  metrics::Gauge& in_flight_gauge_;
  metrics::Gauge& buffered_gauge_;
  metrics::Gauge& paused_gauge_;
  metrics::Histogram& send_latency_;

  std::shared_ptr<Inbox> inbox_;
  std::unique_ptr<kafka::Producer> producer_;
  std::size_t max_message_bytes_ = 0;  // the producer's message.max.bytes (read once: a config lookup)
  std::unique_ptr<kafka::Consumer> consumer_;
  // The partitions of send_topic_ assigned to us now; a job finishes an offset only of the assignment
  // it was begun under (after a revoke the same offset may be redelivered to us).
  kafka::PartitionBook book_;
  DeliveredMemory delivered_;
  bool memory_full_ = false;

  std::unordered_map<std::uint64_t, std::unique_ptr<Job>> jobs_;
  std::uint64_t next_job_id_ = 1;
  std::deque<std::uint64_t> claim_queue_;
  std::multimap<std::chrono::steady_clock::time_point, std::uint64_t> wait_queue_;
  std::deque<std::uint64_t> ready_queue_;
  std::deque<std::uint64_t> settle_queue_;
  std::deque<std::uint64_t> record_queue_;
  // The Redis exchanges begun and not yet collected, oldest first: their jobs (stages kSettle and
  // kClaim, in no queue). At most kMaxExchanges: enough for settles to go out as answers come in
  // while claims travel, on a Redis a few milliseconds away.
  struct Exchange {
    std::vector<std::uint64_t> settle_ids;
    std::vector<std::uint64_t> claim_ids;
    bool probe = false;  // ProbeStore's: whether the store answers
  };
  static constexpr std::size_t kMaxExchanges = 8;
  std::deque<Exchange> exchanges_;
  // The requests of the exchange being begun (the store copies what it keeps; the strings they view
  // are the jobs').
  std::vector<SettleRequest> settles_;
  std::vector<ClaimRequest> claims_;
  std::size_t delivering_ = 0;
  std::size_t unmarked_ = 0;  // delivered and not yet marked sent: they hold their slots too
  std::size_t acking_ = 0;
  bool kafka_more_ = false;  // the consumer queue may hold more messages than we took

  std::map<std::string, CircuitBreaker, std::less<>> circuits_;
  // The per-send series, looked up once: Family::With builds its key (a vector of strings) per call.
  struct ProviderSeries {
    metrics::Histogram* latency = nullptr;
    std::vector<std::pair<std::string, metrics::Counter*>> sends;  // by status
  };
  std::map<std::string, ProviderSeries> series_;

  bool paused_ = false;
  bool reapply_pause_ = false;
  bool store_down_ = false;
  // The next idle check of the store (at start: at once).
  std::chrono::steady_clock::time_point store_probe_at_{};
  std::chrono::steady_clock::time_point store_retry_at_{};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> draining_{false};
  std::atomic<bool> fatal_{false};
  std::string fatal_error_;  // written once by the loop before fatal_ is set
  std::chrono::steady_clock::time_point fatal_check_at_{};
  std::mt19937_64 rng_;
};

}  // namespace pv::workers
