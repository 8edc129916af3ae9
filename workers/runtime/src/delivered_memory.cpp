#include "pv/workers/delivered_memory.hpp"

#include <limits>

namespace pv::workers {

void DeliveredMemory::Add(std::int32_t partition, std::int64_t offset, const std::string& send_id,
                          Delivery delivery) {
  auto [it, fresh] = by_send_.try_emplace(send_id, Entry{std::move(delivery), partition, offset});
  if (!fresh) return;
  by_offset_[partition].emplace(offset, &it->first);
}

const DeliveredMemory::Delivery* DeliveredMemory::Find(const std::string& send_id) const {
  auto it = by_send_.find(send_id);
  return it == by_send_.end() ? nullptr : &it->second.delivery;
}

void DeliveredMemory::Committed(std::int32_t partition, std::int64_t next_offset) {
  auto p = by_offset_.find(partition);
  if (p == by_offset_.end()) return;
  auto& offsets = p->second;
  auto end = offsets.lower_bound(next_offset);
  for (auto it = offsets.begin(); it != end; ++it) {
    auto entry = by_send_.find(*it->second);
    // Only the entry this index points at: a send remembered at another (partition, offset) stays.
    if (entry != by_send_.end() && entry->second.partition == partition && entry->second.offset == it->first) {
      by_send_.erase(entry);
    }
  }
  offsets.erase(offsets.begin(), end);
  if (offsets.empty()) by_offset_.erase(p);
}

void DeliveredMemory::Forget(std::int32_t partition) {
  Committed(partition, std::numeric_limits<std::int64_t>::max());
}

std::vector<std::int32_t> DeliveredMemory::Partitions() const {
  std::vector<std::int32_t> out;
  out.reserve(by_offset_.size());
  for (const auto& [partition, offsets] : by_offset_) out.push_back(partition);
  return out;
}

}  // namespace pv::workers
