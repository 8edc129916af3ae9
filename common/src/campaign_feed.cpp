#include "pv/campaign_feed.hpp"

#include "pv/log.hpp"

namespace pv {
namespace {

// A record key from outside, shortened for a log line.
std::string LogKey(const rd_kafka_message_t* m) {
  std::string_view key = kafka::Key(m);
  return std::string(key.substr(0, 80)) + (key.size() > 80 ? "..." : "");
}

}  // namespace

CampaignFeed::CampaignFeed(const kafka::Settings& settings, std::string topic, const std::string& client_id,
                           metrics::Family<metrics::Counter>& records, Check check, OnChange on_change)
    : topic_(std::move(topic)),
      check_(std::move(check)),
      on_change_(std::move(on_change)),
      applied_(records.With({"applied"})),
      older_(records.With({"older"})),
      invalid_(records.With({"invalid"})),
      over_limit_(records.With({"over_limit"})) {
  kafka::TopicFeed::Callbacks callbacks;
  callbacks.on_record = [this](const rd_kafka_message_t* m) { return Apply(m); };
  callbacks.on_change = [this] {
    std::vector<TopicCampaign> all;
    all.reserve(states_.size());
    for (const auto& [id, state] : states_) all.push_back(state);
    on_change_(all);
  };
  // Not an error: a deployment that has not created the topic works from its files (WaitCaughtUp
  // counts a missing topic as read). Said once; the feed reads the topic once it exists.
  callbacks.on_waiting = [this, said = false](bool missing) mutable {
    if (!missing || said) return;
    said = true;
    log::Warn("campaigns_topic_missing", {{"topic", topic_},
                                          {"action",
                                           "serving catalog_dir; following the topic once it exists "
                                           "(create it with pvctl topics create)"}});
  };
  feed_ = std::make_unique<kafka::TopicFeed>(settings, topic_, client_id, std::move(callbacks));
}

CampaignFeed::~CampaignFeed() = default;

bool CampaignFeed::Apply(const rd_kafka_message_t* m) {
  TopicCampaign state;
  std::string error;
  bool ok = ParseCampaignMessage(m, topic_, state, error);
  if (ok && state.campaign != nullptr && check_) ok = check_(*state.campaign, error);
  if (!ok) {
    invalid_.Inc();
    log::Warn("campaign_record_ignored", {{"topic", topic_},
                                          {"partition", m->partition},
                                          {"offset", m->offset},
                                          {"key", LogKey(m)},
                                          {"error", error},
                                          {"action", "keeping the campaign's last good version"}});
    return false;
  }
  auto it = states_.find(state.id);
  if (it == states_.end() && states_.size() >= kMaxTopicCampaigns) {
    over_limit_.Inc();
    log::Warn("campaign_record_ignored", {{"topic", topic_},
                                          {"offset", m->offset},
                                          {"key", LogKey(m)},
                                          {"error", "more campaign ids on the topic than a replica keeps"},
                                          {"limit", kMaxTopicCampaigns}});
    return false;
  }
  if (it != states_.end() && !TopicCampaignSupersedes(state, it->second)) {
    older_.Inc();
    log::Warn("campaign_record_older", {{"topic", topic_},
                                        {"offset", m->offset},
                                        {"id", state.id},
                                        {"updated_at_ms", state.updated_at_ms},
                                        {"held_updated_at_ms", it->second.updated_at_ms}});
    return false;
  }
  applied_.Inc();
  log::Info("campaign_record_applied", {{"topic", topic_},
                                        {"id", state.id},
                                        {"updated_at_ms", state.updated_at_ms},
                                        {"removed", state.campaign == nullptr}});
  if (it == states_.end()) {
    states_.emplace(state.id, std::move(state));
  } else {
    it->second = std::move(state);
  }
  return true;
}

}  // namespace pv
