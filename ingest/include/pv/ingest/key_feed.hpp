// Follows the compacted topic pv.keys from its beginning, without joining a consumer group (every
// ingest needs every key), and reports the newest state of every key id it has seen whenever one
// changes, deletions (tombstones) included, for the owner to merge with its keys_file
// (KeyStore::FromKeys). This is how a key created, revoked or deleted with pvctl on one machine
// reaches every ingest within about a second. The following itself is kafka::TopicFeed's.
//
// Caught up: once every partition has been read to the end it had when the feed started (librdkafka's
// partition EOF), the feed calls on_caught_up once. Until then the owner must not authenticate with
// keys_file alone: a key revoked or deleted on the topic would still pass (revocation fails closed).
// A topic that does not exist is therefore never caught up: the feed says so every 30 s.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/topic_feed.hpp"

namespace pv::ingest {

class KeyFeed {
 public:
  using OnChange = std::function<void(const std::vector<ApiKey>& states)>;
  using OnCaughtUp = std::function<void()>;
  KeyFeed(const kafka::Settings& settings, std::string topic, OnChange on_change, OnCaughtUp on_caught_up);
  ~KeyFeed();
  KeyFeed(const KeyFeed&) = delete;
  KeyFeed& operator=(const KeyFeed&) = delete;

 private:
  // On the feed's thread: keeps the record's state when it is the newest of its key id.
  bool Apply(const rd_kafka_message_t* m);
  void Waiting();

  std::string topic_;
  OnChange on_change_;
  OnCaughtUp on_caught_up_;
  // The newest state of each key id on the topic (KeySupersedes), deletions included: a tombstone
  // must also hide the key's entry in an ingest's keys_file when the file's entry is older.
  std::map<std::string, ApiKey> keys_;
  std::chrono::steady_clock::time_point next_warning_;
  std::unique_ptr<kafka::TopicFeed> feed_;  // last: stopped first, while the state above still exists
};

}  // namespace pv::ingest
