#include "pv/ingest/key_feed.hpp"

#include "pv/log.hpp"

namespace pv::ingest {

KeyFeed::KeyFeed(const kafka::Settings& settings, std::string topic, OnChange on_change,
                 OnCaughtUp on_caught_up)
    : topic_(std::move(topic)),
      on_change_(std::move(on_change)),
      on_caught_up_(std::move(on_caught_up)),
      next_warning_(std::chrono::steady_clock::now() + std::chrono::seconds(5)) {
  kafka::TopicFeed::Callbacks callbacks;
  callbacks.on_record = [this](const rd_kafka_message_t* m) { return Apply(m); };
  callbacks.on_change = [this] {
    std::vector<ApiKey> all;
    all.reserve(keys_.size());
    for (const auto& [id, key] : keys_) all.push_back(key);
    on_change_(all);
  };
  callbacks.on_caught_up = [this] {
    log::Info("key_feed_caught_up", {{"topic", topic_}, {"keys", keys_.size()}});
    if (on_caught_up_) on_caught_up_();
  };
  callbacks.on_waiting = [this](bool) { Waiting(); };
  feed_ = std::make_unique<kafka::TopicFeed>(settings, topic_, "pv-ingest-keys", std::move(callbacks));
}

KeyFeed::~KeyFeed() = default;

void KeyFeed::Waiting() {
  // Until the topic is read the owner serves no API request: say why every 30 s.
  if (std::chrono::steady_clock::now() < next_warning_) return;
  log::Warn("key_feed_waiting", {{"topic", topic_},
                                 {"note",
                                  "API requests get 503 until the topic is read; create it with "
                                  "'pvctl topics create' or set ingest.keys_topic: \"\""}});
  next_warning_ = std::chrono::steady_clock::now() + std::chrono::seconds(30);
}

bool KeyFeed::Apply(const rd_kafka_message_t* m) {
  ApiKey state;
  std::string error;
  if (!ParseKeyMessage(m, state, error)) {
    log::Warn("key_record_ignored", {{"offset", m->offset}, {"error", error}});
    return false;
  }
  auto it = keys_.find(state.id);
  if (it == keys_.end()) {
    keys_.emplace(state.id, std::move(state));
    return true;
  }
  if (KeySupersedes(state, it->second)) {
    it->second = std::move(state);
    return true;
  }
  log::Warn("key_record_older", {{"offset", m->offset}, {"id", state.id}});
  return false;
}

}  // namespace pv::ingest
