// pv::testing: Kafka clients of the tests themselves: producers that wait for the broker's
// acknowledgements, and the committed offset of a group. (TopicReader reads; topic_reader.hpp.)
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "pv/kafka.hpp"

namespace pv::testing {

// Produces records and waits (30 s at most) for every acknowledgement; throws on failure.
void ProduceAll(const std::string& bootstrap, const std::string& topic,
                const std::vector<std::pair<std::string, std::string>>& key_values);

// The offset `group` committed for topic/partition (-1 when none), asked of the group coordinator.
std::int64_t CommittedOffset(const std::string& bootstrap, const std::string& group, const std::string& topic,
                             std::int32_t partition);

// Produces triggers to pv.triggers (ingest's record shape: key the external id, header pv-trigger-id)
// and waits for the broker's acknowledgements.
class TriggerWriter {
 public:
  explicit TriggerWriter(const std::string& bootstrap);
  // `user_json` and `event_json` are JSON objects; returns the trigger id.
  std::string Write(const std::string& campaign_id, const std::string& external_id,
                    const std::string& user_json, const std::string& event_json,
                    const std::string& trigger_id = "");
  // Waits for every acknowledgement so far; false on a timeout or error.
  bool Flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  std::unique_ptr<kafka::Producer> producer_;
  std::vector<std::shared_ptr<kafka::DeliveryGroup>> groups_;
};

}  // namespace pv::testing
