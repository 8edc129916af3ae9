// pv::testing: reads topics from the beginning of every partition without joining a consumer group
// (no rebalance wait), for tests that check what a component published.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pv::testing {

struct Record {
  std::string topic;
  std::int32_t partition = -1;
  std::int64_t offset = -1;
  std::string key;
  std::string value;
  bool tombstone = false;  // a null value (Kafka's deletion on a compacted topic), not an empty one
  std::map<std::string, std::string> headers;
  std::chrono::system_clock::time_point timestamp;  // the record's (producer) timestamp
  std::chrono::system_clock::time_point read_at;    // when this reader received it
};

class TopicReader {
 public:
  // Waits (bounded) for each topic's metadata, then reads all its partitions from the beginning.
  // Throws when a topic has no partitions.
  TopicReader(const std::string& bootstrap, const std::vector<std::string>& topics);
  ~TopicReader();
  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;

  // Polls until `done(all records read so far)` holds or `timeout` passes; returns what was read
  // (every record since the reader was created, across calls).
  const std::vector<Record>& ReadUntil(const std::function<bool(const std::vector<Record>&)>& done,
                                       std::chrono::milliseconds timeout);
  // Reads for `duration` (to show that nothing more arrives).
  const std::vector<Record>& ReadFor(std::chrono::milliseconds duration);
  // The records read so far from `topic`.
  std::vector<Record> Of(const std::string& topic) const;

 private:
  void* rk_ = nullptr;  // rd_kafka_t*, kept out of the header
  std::vector<Record> records_;
};

}  // namespace pv::testing
