// Records in flight between a consumed input and its acknowledged outputs, shared by the trigger
// pipeline and the delay scheduler. Private to the dispatcher library.
//
// Each consumed record that produces outputs gets a Pending: it counts the delivery reports of its
// outputs on the producer's poll thread and, on the last one, hands itself to the CompletionQueue.
// The consuming thread drains the queue, marks the input finished in its PartitionBook and stores the
// offset the book allows. Nothing else is shared between the threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/log.hpp"
#include "pv/metrics.hpp"

namespace pv::dispatcher::internal {

class CompletionQueue;

struct Pending final : kafka::DeliveryHandler {
  Pending(CompletionQueue* q, std::string t, std::int32_t p, std::int64_t o, std::uint64_t g)
      : queue(q), topic(std::move(t)), partition(p), offset(o), generation(g) {}

  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override;
  // A record of this Pending could not be enqueued at all: counts as a failed delivery.
  void Abandon(rd_kafka_resp_err_t err) { OnDelivery(err, -1, -1); }

  CompletionQueue* queue;
  std::string topic;
  std::int32_t partition;
  std::int64_t offset;
  std::uint64_t generation;
  std::atomic<int> remaining{0};
  std::atomic<int> first_error{RD_KAFKA_RESP_ERR_NO_ERROR};
  kafka::Message message;  // the input, kept so a failed delivery can be retried
};

// Adapts ladder::Schedule, which reports to a DeliveryGroup, to a Pending.
class ForwardGroup final : public kafka::DeliveryGroup {
 public:
  explicit ForwardGroup(Pending* pending) : DeliveryGroup(1), pending_(pending) {}
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override {
    pending_->OnDelivery(err, partition, offset);
  }

 private:
  Pending* pending_;
};

class CompletionQueue {
 public:
  CompletionQueue() = default;
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;
  ~CompletionQueue() {
    for (Pending* p : items_) delete p;  // NOLINT(cppcoreguidelines-owning-memory): reported, never taken
  }

  void Push(Pending* p) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(p);
    }
    cv_.notify_one();
  }
  // Takes everything completed so far (ownership passes to the caller).
  std::vector<Pending*> Take() {
    std::vector<Pending*> out;
    std::lock_guard lock(mutex_);
    out.swap(items_);
    return out;
  }
  // Waits until something completed or `timeout` passed.
  void Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, timeout, [this] { return !items_.empty(); });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Pending*> items_;
};

inline void Pending::OnDelivery(rd_kafka_resp_err_t err, std::int32_t /*partition*/,
                                std::int64_t /*offset*/) {
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    int expected = RD_KAFKA_RESP_ERR_NO_ERROR;
    first_error.compare_exchange_strong(expected, err);
  }
  if (remaining.fetch_sub(1) == 1) queue->Push(this);
}

// Offsets of the partitions a consumer owns: which inputs are in flight, which are finished, and the
// generation of each assignment, so that a report that arrives after a partition was revoked (and
// perhaps assigned again) is not mistaken for one of the new assignment. Consumer thread only.
class PartitionBook {
 public:
  using Key = std::pair<std::string, std::int32_t>;

  std::uint64_t Assign(const std::string& topic, std::int32_t partition) {
    auto gen = ++next_generation_;
    generations_[{topic, partition}] = gen;
    return gen;
  }
  void Revoke(const std::string& topic, std::int32_t partition) {
    generations_.erase({topic, partition});
    trackers_[topic].Forget(partition);
    outstanding_.erase({topic, partition});
  }
  // 0 when the partition is not assigned (the record must not be processed).
  std::uint64_t Generation(const std::string& topic, std::int32_t partition) const {
    auto it = generations_.find({topic, partition});
    return it == generations_.end() ? 0 : it->second;
  }
  void Begin(const std::string& topic, std::int32_t partition, std::int64_t offset) {
    trackers_[topic].Begin(partition, offset);
  }
  // Returns the next offset to store, or -1.
  std::int64_t Finish(const std::string& topic, std::int32_t partition, std::int64_t offset,
                      std::uint64_t gen) {
    if (Generation(topic, partition) != gen) return -1;
    return trackers_[topic].Finish(partition, offset);
  }
  // Pendings whose outputs were handed to the producer and not yet all reported.
  void AddOutstanding(const std::string& topic, std::int32_t partition) {
    ++outstanding_[{topic, partition}];
  }
  void DoneOutstanding(const std::string& topic, std::int32_t partition) {
    auto it = outstanding_.find({topic, partition});
    if (it != outstanding_.end() && --it->second == 0) outstanding_.erase(it);
  }
  size_t Outstanding(const std::string& topic, std::int32_t partition) const {
    auto it = outstanding_.find({topic, partition});
    return it == outstanding_.end() ? 0 : it->second;
  }
  size_t Outstanding() const {
    size_t n = 0;
    for (const auto& [k, v] : outstanding_) n += v;
    return n;
  }
  size_t InFlight() const {
    size_t n = 0;
    for (const auto& [t, tracker] : trackers_) n += tracker.InFlight();
    return n;
  }

 private:
  std::uint64_t next_generation_ = 0;
  std::map<Key, std::uint64_t> generations_;
  std::map<std::string, kafka::OffsetTracker> trackers_;
  std::map<Key, size_t> outstanding_;
};

enum class Settled {
  kDone,   // acknowledged (offset stored if the book allows), or failed in a way that ends here
  kRetry,  // failed, partition still ours, input kept: the caller queues p.message again
};

// What draining one completed Pending means, the same for the trigger pipeline and the delay
// scheduler: outstanding bookkeeping, the offset on success, and on failure the fatal-producer check
// (`fatal` is set and the process will exit) or a retry of the input.
inline Settled Settle(Pending& p, PartitionBook& book, kafka::Consumer& consumer, rd_kafka_t* producer,
                      bool& fatal, metrics::Counter& failures, std::string_view failed_event) {
  bool current = book.Generation(p.topic, p.partition) == p.generation;
  if (current) book.DoneOutstanding(p.topic, p.partition);
  auto err = static_cast<rd_kafka_resp_err_t>(p.first_error.load());
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::int64_t next = book.Finish(p.topic, p.partition, p.offset, p.generation);
    if (next >= 0) consumer.StoreOffset(p.topic, p.partition, next);
    return Settled::kDone;
  }
  failures.Inc();
  char reason[512];
  if (rd_kafka_fatal_error(producer, reason, sizeof(reason)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (!fatal) log::Error("producer_fatal_error", {{"error", reason}, {"action", "exit"}});
    fatal = true;
    return Settled::kDone;
  }
  log::Warn(failed_event, {{"error", rd_kafka_err2str(err)},
                           {"partition", p.partition},
                           {"offset", p.offset},
                           {"action", "retry"}});
  return current && p.message ? Settled::kRetry : Settled::kDone;
}

}  // namespace pv::dispatcher::internal
