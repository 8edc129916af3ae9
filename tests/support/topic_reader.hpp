// Reads a topic from the beginning of every partition without joining a consumer group (no
// rebalance wait), for tests that check what a component published.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace pv::testing {

struct Record {
  std::string topic;
  int partition = -1;
  long long offset = -1;
  long long timestamp_ms = -1;
  std::string key;
  std::string value;
  bool tombstone = false;  // a null value (Kafka's deletion on a compacted topic), not an empty one
  std::map<std::string, std::string> headers;
};

class TopicReader {
 public:
  TopicReader(const std::string& bootstrap, const std::string& topic);
  ~TopicReader();
  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;

  // Polls until `done(all records read so far)` holds or `timeout` passes; returns what was read
  // (every record since the reader was created, across calls).
  const std::vector<Record>& ReadUntil(const std::function<bool(const std::vector<Record>&)>& done,
                                       std::chrono::milliseconds timeout);
  // Reads for `duration` (to show that nothing more arrives).
  const std::vector<Record>& ReadFor(std::chrono::milliseconds duration);

 private:
  void* rk_ = nullptr;  // rd_kafka_t*, kept out of the header
  std::vector<Record> records_;
};

}  // namespace pv::testing
