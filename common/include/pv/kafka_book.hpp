// The bookkeeping of a consumer with many records in flight, for the dispatcher and the workers: how
// other threads hand finished work to the consuming thread (CompletionQueue), and the partitions that
// thread owns and the offsets it may store (PartitionBook). Tests: common/test/kafka_book_test.cpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
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
  // Consumes a pending wake-up without waiting (for an owner that polls fd() itself).
  void TakeWake() const;

 private:
  int fd_;
};

// Items other threads post for the consuming thread, one list per item type, each in posting order.
// A post costs a lock and a push_back; the eventfd is written only when the queue was empty, because
// a consumer that took everything and then sleeps is woken by the post that made it non-empty. The
// dispatcher waits on it alone (Wait); the worker sleeps on it (Sleep) together with librdkafka's
// queue (fd() given to Consumer::WakeOnRecords) and stops with Wake().
template <typename... Items>
class CompletionQueue : public WakeFd {
 public:
  // `wake` false: no wake-up is written, for a post from the consuming thread itself, which must then
  // look at the queue (Empty) before it sleeps again.
  template <typename T>
  void Post(T item, bool wake = true) {
    bool was_empty = false;
    {
      std::lock_guard lock(mutex_);
      was_empty = EmptyLocked();
      std::get<std::vector<T>>(items_).push_back(std::move(item));
    }
    if (was_empty && wake) Wake();
  }
  bool Empty() {
    std::lock_guard lock(mutex_);
    return EmptyLocked();
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
      Sleep(left);  // a wake-up for items already taken is consumed here, and waiting goes on
    }
  }

 private:
  bool EmptyLocked() const { return (std::get<std::vector<Items>>(items_).empty() && ...); }

  std::mutex mutex_;
  std::tuple<std::vector<Items>...> items_;
};

// The partitions a consumer owns and its records in flight, for work that finishes out of order.
// Consuming thread only. Per partition:
// - the generation of its assignment, so that work begun before a revoke (the same offsets may be
//   read again after a reassignment) never stores an offset of the next assignment;
// - its records in flight: the offset to store is the lowest still in flight, or one past the
//   highest begun when none is. Records are begun in offset order, so that is the end of the
//   contiguous finished prefix (gaps from compaction or transaction markers do not matter);
// - "outstanding": work handed to the producer and not yet reported, which a revoke may wait for.
class PartitionBook {
 public:
  // A new assignment of the partition: its generation (never 0, never given before).
  std::uint64_t Assign(std::string_view topic, std::int32_t partition) {
    return At(topic, partition).generation = ++next_generation_;
  }
  // Forgets the partition; its unfinished records are the next owner's.
  void Revoke(std::string_view topic, std::int32_t partition) {
    if (auto it = topics_.find(topic); it != topics_.end()) it->second.erase(partition);
  }
  // 0 when the partition is not assigned (its records must not be processed).
  std::uint64_t Generation(std::string_view topic, std::int32_t partition) const {
    const Partition* p = Find(topic, partition);
    return p == nullptr ? 0 : p->generation;
  }
  void Begin(std::string_view topic, std::int32_t partition, std::int64_t offset) {
    Partition& p = At(topic, partition);
    if (p.highest_begun < 0) p.stored = offset;  // where reading started: storing it is no advance
    p.in_flight.insert(offset);
    p.highest_begun = std::max(p.highest_begun, offset);
  }
  // The record is finished: the next offset to store, or -1 (no advance, a record not in flight, or
  // one of another generation than the partition's current one, or of generation 0: not assigned).
  std::int64_t Finish(std::string_view topic, std::int32_t partition, std::int64_t offset,
                      std::uint64_t generation);
  void AddOutstanding(std::string_view topic, std::int32_t partition) { ++At(topic, partition).outstanding; }
  void DoneOutstanding(std::string_view topic, std::int32_t partition) {
    if (Partition* p = Find(topic, partition); p != nullptr && p->outstanding > 0) --p->outstanding;
  }
  size_t Outstanding(std::string_view topic, std::int32_t partition) const {
    const Partition* p = Find(topic, partition);
    return p == nullptr ? 0 : p->outstanding;
  }
  size_t Outstanding() const {
    return Sum([](const Partition& p) { return p.outstanding; });
  }
  // Records begun and not finished, in every partition.
  size_t InFlight() const {
    return Sum([](const Partition& p) { return p.in_flight.size(); });
  }

 private:
  struct Partition {
    std::uint64_t generation = 0;  // 0: not assigned (state kept by Begin or AddOutstanding alone)
    size_t outstanding = 0;
    std::set<std::int64_t> in_flight;
    std::int64_t highest_begun = -1;
    std::int64_t stored = -1;  // the last next-offset Finish returned
  };
  Partition& At(std::string_view topic, std::int32_t partition) {
    auto it = topics_.find(topic);
    if (it == topics_.end()) it = topics_.try_emplace(std::string(topic)).first;
    return it->second[partition];
  }
  Partition* Find(std::string_view topic, std::int32_t partition) {
    auto it = topics_.find(topic);
    if (it == topics_.end()) return nullptr;
    auto p = it->second.find(partition);
    return p == it->second.end() ? nullptr : &p->second;
  }
  const Partition* Find(std::string_view topic, std::int32_t partition) const {
    return const_cast<PartitionBook*>(this)->Find(topic, partition);  // the same lookup, read only
  }
  template <typename F>
  size_t Sum(F of) const {
    size_t n = 0;
    for (const auto& [name, partitions] : topics_) {
      for (const auto& [id, p] : partitions) n += of(p);
    }
    return n;
  }

  std::uint64_t next_generation_ = 0;
  std::map<std::string, std::map<std::int32_t, Partition>, std::less<>> topics_;
};

}  // namespace pv::kafka
