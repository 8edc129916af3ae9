// Follows a compacted topic (pv.keys, pv.campaigns) from the beginning of every partition, on a
// thread of its own and without joining a consumer group: every replica needs every record, so the
// partitions are assigned by hand and nothing is committed. Used by ingest's key feed and by the
// campaign feed of ingest and the dispatcher (campaign_feed.hpp).
//
// A topic that does not exist is not an error: the feed tells its owner (on_waiting) and looks for
// it again every second, reading it from the beginning once it appears. Whether a missing topic
// counts as read is the owner's choice: WaitCaughtUp says yes (the campaign feed: the replica works
// from its files), on_caught_up waits for the topic (the key feed: revocations fail closed).
//
// Contract: on_record is called for each record in partition order, on the feed's thread; after the
// records that were ready at once, on_change is called once if any on_record returned true. Both
// run before WaitCaughtUp, Sync or on_caught_up can report the records they handled as read.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "pv/kafka.hpp"

namespace pv::kafka {

class TopicFeed {
 public:
  struct Callbacks {
    // One record (never an error event). Returns true when it changed what the owner holds.
    std::function<bool(const rd_kafka_message_t* record)> on_record;
    // Once after a run of records of which one returned true.
    std::function<void()> on_change;
    // Optional: once, when every partition was read to the end it had when the feed found the topic.
    std::function<void()> on_caught_up;
    // Optional: about every second while the topic is not found; `missing`: the broker says it does
    // not exist (else the broker did not answer).
    std::function<void(bool missing)> on_waiting;
  };

  // Starts the thread. `client_id` also serves as the group id librdkafka requires (never joined).
  // Throws KafkaError on a bad property.
  TopicFeed(const Settings& settings, std::string topic, const std::string& client_id, Callbacks callbacks);
  // Stops the thread (within about a second: a metadata or watermark request under way is not cut
  // short) and closes the client.
  ~TopicFeed();
  TopicFeed(const TopicFeed&) = delete;
  TopicFeed& operator=(const TopicFeed&) = delete;

  // Waits up to `timeout` until the feed has handled every record the topic held when the feed
  // found it (the high watermarks then), or knows that the topic does not exist. True when so.
  bool WaitCaughtUp(std::chrono::milliseconds timeout);
  // Waits up to `timeout` until the feed has handled every record the topic holds now: the high
  // watermarks are asked of the broker (within the same timeout). True at once when the topic did
  // not exist at the feed's last look; false when the broker did not answer in time.
  bool Sync(std::chrono::milliseconds timeout);

  const std::string& topic() const { return topic_; }

 private:
  void Run();
  // The partitions of the topic: 0 when the broker did not answer, -1 when the topic does not exist.
  int PartitionCount();
  bool ReachedLocked(const std::map<std::int32_t, std::int64_t>& marks) const;

  std::string topic_;
  Callbacks callbacks_;
  rd_kafka_t* rk_ = nullptr;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool missing_ = false;  // the topic did not exist at the last look
  bool assigned_ = false;
  bool caught_up_ = false;  // on_caught_up was called (the feed's thread only)
  // Per partition: the offset of the next record to handle (after on_change), and the high
  // watermark found at assignment (-1 until the broker answered).
  std::map<std::int32_t, std::int64_t> next_;
  std::map<std::int32_t, std::int64_t> start_marks_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace pv::kafka
