// Follows the compacted topic pv.keys from its beginning, without joining a consumer group (every
// ingest needs every key), and reports the newest state of every key id it has seen whenever one
// changes, deletions (tombstones) included, for the owner to merge with its keys_file
// (KeyStore::FromKeys). This is how a key created, revoked or deleted with pvctl on one machine
// reaches every ingest within about a second.
//
// Caught up: once every partition has been read to the end it had when the feed started (librdkafka's
// partition EOF), the feed calls on_caught_up once. Until then the owner must not authenticate with
// keys_file alone: a key revoked or deleted on the topic would still pass (revocation fails closed).
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/keys.hpp"

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
  void Run();

  kafka::Settings settings_;
  std::string topic_;
  OnChange on_change_;
  OnCaughtUp on_caught_up_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace pv::ingest
