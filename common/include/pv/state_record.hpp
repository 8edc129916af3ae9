// A record of a compacted state topic (pv.keys, pv.campaigns; topic_feed.cpp): the newest state of what
// its key names, or a tombstone, whose version travels in a header. Values: keys.hpp, campaign_records.hpp.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

struct rd_kafka_message_s;  // librdkafka's rd_kafka_message_t, kept out of this header

namespace pv {

// What a consumer read, without librdkafka's types.
struct StateRecordView {
  std::string_view record_key;                        // the id of the key or campaign
  std::optional<std::string_view> value;              // nullopt: a tombstone
  std::optional<std::string_view> updated_at_header;  // the topic's version header, if present
  std::int64_t timestamp_ms = -1;                     // the record's timestamp; -1: none
};

// A tombstone's version: its header's number of milliseconds (false, with `error`, when it is not
// one), else the record's timestamp (a tombstone written by something other than pvctl).
bool TombstoneVersion(const StateRecordView& record, std::string_view header, std::int64_t& out,
                      std::string& error);

// Calls `parse` with the view of `message` (its header named `header`) and returns its answer.
bool ParseStateMessage(const rd_kafka_message_s* message, const char* header,
                       const std::function<bool(const StateRecordView&)>& parse);

}  // namespace pv
