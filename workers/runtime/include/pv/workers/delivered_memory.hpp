// The sends this worker delivered whose records may be read again: their offsets are stored but not
// yet known to be committed. Redis's `sent:` marks are what turns a redelivered record into a
// `deduped` outcome; this memory does the same when Redis lost those marks (restarted empty,
// failed over) and the group then hands us records from the last committed offset again (a lost
// assignment after a broker outage, a rebalance whose commit failed). Measured before it existed:
// a broker outage then a Redis restart under load delivered 250 of 10,399 sends twice.
//
// An entry lives from the provider's success until a commit covers its record's offset, so its
// size follows the commit interval, not the traffic's history; at `capacity` the worker stops
// taking records (Full()) until a commit frees room, rather than forget a delivery. What it cannot
// cover: a worker killed (its memory goes with it) while Redis loses the same marks.
// Not thread-safe: the worker's loop owns it. Tests: workers/test/delivered_memory_test.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pv::workers {

class DeliveredMemory {
 public:
  struct Delivery {
    std::string provider;
    std::string provider_message_id;
  };

  explicit DeliveredMemory(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The send of the record at (partition, offset) was delivered. A send remembered already keeps
  // its first entry (its earliest offset is the one a commit must pass).
  void Add(std::int32_t partition, std::int64_t offset, std::string_view send_id, std::string_view provider,
           std::string_view provider_message_id);
  // The delivery of `send_id`, if this worker made it and its record may still be read again.
  const Delivery* Find(std::string_view send_id) const;
  // The group committed `next_offset` for `partition`: records below it are never read again.
  void Committed(std::int32_t partition, std::int64_t next_offset);

  // Forgets what only a re-read of `partition` would need (a partition now owned by another worker,
  // whose commits we will not see).
  void Forget(std::int32_t partition);
  // The partitions with a delivery remembered.
  std::vector<std::int32_t> Partitions() const;

  bool Full() const { return by_send_.size() >= capacity_; }
  std::size_t size() const { return by_send_.size(); }
  std::size_t capacity() const { return capacity_; }
  // Released entries kept for reuse (tests).
  std::size_t spare() const { return spare_.size(); }

  // A released entry whose strings hold more than this is freed, not kept: the ids come from
  // records and providers' answers (a SendGrid x-message-id may be up to 64 KiB), and a kept
  // string keeps its capacity.
  static constexpr std::size_t kMaxSpareBytes = 512;

 private:
  struct Entry {
    Delivery delivery;
    std::int32_t partition;
    std::int64_t offset;
  };
  std::size_t capacity_;
  // Looked up by a view (a send's fields point into its record) without making a string of it.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using BySend = std::unordered_map<std::string, Entry, Hash, std::equal_to<>>;
  BySend by_send_;
  // The nodes a commit released, reused by the next deliveries with their strings' capacity: a
  // delivery then allocates nothing (a node and three strings were allocated, and freed, per send:
  // docs/performance.md "The worker's delivered memory reuses its nodes"). At most `capacity`
  // of them, each of at most kMaxSpareBytes of strings.
  std::vector<BySend::node_type> spare_;
  // partition -> (offset, send_id) in the order the sends were delivered: what a commit of that
  // partition releases (one pass over the vector; a multimap cost a node, an allocation and a free per
  // delivery). The send_id is by_send_'s key (a node's key stays where it is until
  // the node is erased, and only the one entry here made for it erases it): no second copy.
  std::map<std::int32_t, std::vector<std::pair<std::int64_t, const std::string*>>> by_offset_;
};

}  // namespace pv::workers
