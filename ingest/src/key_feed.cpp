#include "pv/ingest/key_feed.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <map>
#include <set>

#include "pv/log.hpp"

namespace pv::ingest {

KeyFeed::KeyFeed(const kafka::Settings& settings, std::string topic, OnChange on_change,
                 OnCaughtUp on_caught_up)
    : settings_(settings),
      topic_(std::move(topic)),
      on_change_(std::move(on_change)),
      on_caught_up_(std::move(on_caught_up)) {
  thread_ = std::thread([this] { Run(); });
}

KeyFeed::~KeyFeed() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void KeyFeed::Run() {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const std::string& name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      log::Error("key_feed_config", {{"property", name}, {"error", err}});
    }
  };
  set("bootstrap.servers", settings_.brokers);
  for (const auto& [name, value] : settings_.properties) set(name, value);
  for (const auto& [name, value] : settings_.consumer_properties) set(name, value);
  // Partitions are assigned by hand and nothing is committed: the group id is required by the API
  // but never joined, so ingests do not share (or rebalance) the topic between them.
  set("group.id", "pv-ingest-keys");
  set("enable.auto.commit", "false");
  set("client.id", "pv-ingest-keys");
  // The end of each partition is reported, so the owner knows when every key on the topic is known.
  set("enable.partition.eof", "true");
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    log::Error("key_feed_failed", {{"error", err}});
    return;
  }
  rd_kafka_poll_set_consumer(rk);

  // Wait for the topic (a deployment creates it with `pvctl topics create`). Until it exists the
  // feed is not caught up, so the owner serves no API request: say why every 30 s.
  int partitions = 0;
  auto next_warning = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!stop_.load() && partitions == 0) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic_.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 0, rkt, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        partitions = md->topics[0].partition_cnt;
      rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
    if (partitions == 0) {
      if (std::chrono::steady_clock::now() >= next_warning) {
        log::Warn("key_feed_waiting", {{"topic", topic_},
                                       {"note", "API requests get 503 until the topic is read; create it with "
                                                "'pvctl topics create' or set ingest.keys_topic: \"\""}});
        next_warning = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      }
      for (int i = 0; i < 10 && !stop_.load(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (partitions > 0) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    log::Info("key_feed_started", {{"topic", topic_}, {"partitions", partitions}});
  }

  // The newest state of each key id on the topic (KeySupersedes), deletions included: a tombstone
  // must also hide the key's entry in an ingest's keys_file when the file's entry is older.
  std::map<std::string, ApiKey> keys;
  std::set<int32_t> at_end;  // partitions read to their end at least once
  bool caught_up = false;
  while (!stop_.load()) {
    bool changed = false;
    // Drain what is ready, then report once.
    for (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 200); m != nullptr;
         m = rd_kafka_consumer_poll(rk, 0)) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ApiKey state;
        std::string error;
        if (ParseKeyMessage(m, state, error)) {
          auto it = keys.find(state.id);
          if (it == keys.end()) {
            keys.emplace(state.id, std::move(state));
            changed = true;
          } else if (KeySupersedes(state, it->second)) {
            it->second = std::move(state);
            changed = true;
          } else {
            log::Warn("key_record_older", {{"offset", m->offset}, {"id", state.id}});
          }
        } else {
          log::Warn("key_record_ignored", {{"offset", m->offset}, {"error", error}});
        }
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        at_end.insert(m->partition);
      }
      rd_kafka_message_destroy(m);
      if (stop_.load()) break;
    }
    if (changed) {
      std::vector<ApiKey> all;
      all.reserve(keys.size());
      for (const auto& [id, key] : keys) all.push_back(key);
      on_change_(all);
    }
    if (!caught_up && partitions > 0 && static_cast<int>(at_end.size()) >= partitions) {
      caught_up = true;
      log::Info("key_feed_caught_up", {{"topic", topic_}, {"keys", keys.size()}});
      if (on_caught_up_) on_caught_up_();
    }
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

}  // namespace pv::ingest
