#include "pv/workers/delivered_memory.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace pv::workers {

void DeliveredMemory::Add(std::int32_t partition, std::int64_t offset, std::string_view send_id,
                          std::string_view provider, std::string_view provider_message_id) {
  if (by_send_.find(send_id) != by_send_.end()) return;
  BySend::iterator it;
  if (spare_.empty()) {
    it = by_send_.try_emplace(std::string(send_id), Entry{{std::string(provider), std::string(provider_message_id)},
                                                          partition, offset})
             .first;
  } else {
    BySend::node_type node = std::move(spare_.back());
    spare_.pop_back();
    node.key().assign(send_id);
    Entry& entry = node.mapped();
    entry.delivery.provider.assign(provider);
    entry.delivery.provider_message_id.assign(provider_message_id);
    entry.partition = partition;
    entry.offset = offset;
    it = by_send_.insert(std::move(node)).position;
  }
  by_offset_[partition].emplace_back(offset, &it->first);
}

const DeliveredMemory::Delivery* DeliveredMemory::Find(std::string_view send_id) const {
  auto it = by_send_.find(send_id);
  return it == by_send_.end() ? nullptr : &it->second.delivery;
}

void DeliveredMemory::Committed(std::int32_t partition, std::int64_t next_offset) {
  auto p = by_offset_.find(partition);
  if (p == by_offset_.end()) return;
  auto& offsets = p->second;
  // One pass over the partition's deliveries since its last commit (usually all of them go): the
  // predicate runs once per element, and a released element is never read again.
  auto kept = std::remove_if(offsets.begin(), offsets.end(),
                             [&](const std::pair<std::int64_t, const std::string*>& o) {
                               if (o.first >= next_offset) return false;
                               auto entry = by_send_.find(*o.second);
                               // Only the entry this index points at: a send remembered at another
                               // (partition, offset) stays.
                               if (entry != by_send_.end() && entry->second.partition == partition &&
                                   entry->second.offset == o.first) {
                                 BySend::node_type node = by_send_.extract(entry);
                                 const Delivery& d = node.mapped().delivery;
                                 if (spare_.size() < capacity_ &&
                                     node.key().capacity() + d.provider.capacity() +
                                             d.provider_message_id.capacity() <=
                                         kMaxSpareBytes) {
                                   spare_.push_back(std::move(node));
                                 }
                               }
                               return true;
                             });
  // The vector keeps its capacity for the next interval's deliveries.
  offsets.erase(kept, offsets.end());
}

void DeliveredMemory::Forget(std::int32_t partition) {
  Committed(partition, std::numeric_limits<std::int64_t>::max());
}

std::vector<std::int32_t> DeliveredMemory::Partitions() const {
  std::vector<std::int32_t> out;
  out.reserve(by_offset_.size());
  for (const auto& [partition, offsets] : by_offset_) {
    if (!offsets.empty()) out.push_back(partition);
  }
  return out;
}

}  // namespace pv::workers
