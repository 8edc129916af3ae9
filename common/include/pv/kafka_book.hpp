// The bookkeeping of a consumer with many records in flight, shared by the dispatcher's pipelines and
// the channel workers: the CompletionQueue through which other threads (the producer's delivery
// reports, providers' answers) hand finished work to the consuming thread, and the PartitionBook in
// which that thread keeps the partitions it owns and the offsets it may store. Tests:
// common/test/kafka_book_test.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "pv/kafka.hpp"

namespace pv::kafka {

// An eventfd: any thread wakes the one thread that sleeps on it. Being a descriptor, it can also be
// handed to Consumer::WakeOnRecords (records arriving wake the same sleep) or polled with others.
class WakeFd {
 public:
  WakeFd();  // throws std::system_error when no eventfd can be made
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  int fd() const { return fd_; }
  void Wake() const;
  // Sleeps until woken or `timeout` passed; true when woken (the wake-up is consumed).
  bool Sleep(std::chrono::milliseconds timeout) const;

 private:
  int fd_;
};

// Items other threads post for the consuming thread, one list per item type, each in posting order.
// A post costs a lock and a push_back; the eventfd is written only when the queue was empty, because
// a consumer that took everything and then sleeps is woken by the post that made it non-empty. The
// dispatcher waits on it alone (Wait); the worker sleeps on it together with librdkafka's queue
// (fd() given to Consumer::WakeOnRecords) and stops with Wake().
template <typename... Items>
class CompletionQueue {
 public:
  template <typename T>
  void Post(T item) {
    bool was_empty = false;
    {
      std::lock_guard lock(mutex_);
      was_empty = EmptyLocked();
      std::get<std::vector<T>>(items_).push_back(std::move(item));
    }
    if (was_empty) wake_.Wake();
  }
  // Takes everything posted so far into `out` (one vector per item type, replaced).
  void Take(std::vector<Items>&... out) {
    (out.clear(), ...);
    std::lock_guard lock(mutex_);
    (out.swap(std::get<std::vector<Items>>(items_)), ...);
  }
  // Waits until something is queued or `timeout` passed.
  void Wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Empty()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      wake_.Sleep(left);  // a wake-up for items already taken is consumed here, and waiting goes on
    }
  }
  // Sleeps until woken (a post to the empty queue, Wake(), any other writer of fd()) or `timeout`.
  void Sleep(std::chrono::milliseconds timeout) const { wake_.Sleep(timeout); }
  void Wake() const { wake_.Wake(); }
  int fd() const { return wake_.fd(); }

 private:
  bool Empty() {
    std::lock_guard lock(mutex_);
    return EmptyLocked();
  }
  bool EmptyLocked() const { return (std::get<std::vector<Items>>(items_).empty() && ...); }

  WakeFd wake_;
  std::mutex mutex_;
  std::tuple<std::vector<Items>...> items_;
};

// The partitions a consumer owns and its records in flight, for work that finishes out of order:
// - a generation per assignment, so that work begun before a partition was revoked (and perhaps
//   assigned again, when the same offsets are read again) never stores an offset of the new
//   assignment;
// - an OffsetTracker per topic: the offset stored is the end of the contiguous finished prefix;
// - "outstanding" counts of work handed to the producer, which a revoke may wait for.
// Consuming thread only.
class PartitionBook {
 public:
  // A new assignment of the partition: its generation (never 0, never given before).
  std::uint64_t Assign(std::string_view topic, std::int32_t partition);
  // Forgets the partition's generation, records in flight and outstanding count; its unfinished
  // records are the next owner's.
  void Revoke(std::string_view topic, std::int32_t partition);
  // 0 when the partition is not assigned (its records must not be processed).
  std::uint64_t Generation(std::string_view topic, std::int32_t partition) const;
  void Begin(std::string_view topic, std::int32_t partition, std::int64_t offset);
  // The record is finished: the next offset to store, or -1 (no advance, or a record of another
  // generation than the partition's current one).
  std::int64_t Finish(std::string_view topic, std::int32_t partition, std::int64_t offset,
                      std::uint64_t generation);
  void AddOutstanding(std::string_view topic, std::int32_t partition);
  void DoneOutstanding(std::string_view topic, std::int32_t partition);
  size_t Outstanding(std::string_view topic, std::int32_t partition) const;
  size_t Outstanding() const;
  size_t InFlight() const;  // records begun and not finished, every partition

 private:
  struct Topic {
    std::map<std::int32_t, std::uint64_t> generations;
    std::map<std::int32_t, size_t> outstanding;
    OffsetTracker tracker;
  };
  Topic& At(std::string_view topic);
  const Topic* Find(std::string_view topic) const;

  std::uint64_t next_generation_ = 0;
  std::map<std::string, Topic, std::less<>> topics_;
};

}  // namespace pv::kafka
