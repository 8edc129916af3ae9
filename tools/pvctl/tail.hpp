// pvctl tail: the record as a tail shows it, and which records it shows (--key, --send-id,
// --trigger-id), decided without a broker so the unit tests exercise exactly what the command runs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pv::pvctl {

struct TailRecord {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = -1;
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> value;  // nullopt: a null value (a tombstone)
};

// Empty fields match everything; the given ones must all match.
struct TailFilter {
  std::string key;  // --key: the record's key, exactly
  // --send-id / --trigger-id: a record matches when its header pv-send-id / pv-trigger-id (sends,
  // delayed and replayed records, triggers) or its JSON value's top-level "send_id" / "trigger_id"
  // (sends, events, dead letters, triggers) is the id: whichever the topic's records carry.
  std::string send_id;
  std::string trigger_id;

  bool Empty() const { return key.empty() && send_id.empty() && trigger_id.empty(); }
};

bool Matches(const TailFilter& filter, const TailRecord& record);

}  // namespace pv::pvctl
