#include "pv/topics.hpp"

namespace pv {

// By Channel: email, sms, push.
std::string_view ChannelName(Channel channel) {
  static constexpr std::string_view kNames[] = {"email", "text", "push"};
  return kNames[static_cast<int>(channel)];
}

std::string_view ChannelTopicSuffix(Channel channel) {
  static constexpr std::string_view kSuffixes[] = {"email", "sms", "push"};
  return kSuffixes[static_cast<int>(channel)];
}

const char* ContactField(Channel channel) {
  static constexpr const char* kFields[] = {"email", "phone", "device_token"};
  return kFields[static_cast<int>(channel)];
}

bool ParseChannel(std::string_view name, Channel& out) {
  if (name == "email") {
    out = Channel::kEmail;
  } else if (name == "text" || name == "sms") {
    out = Channel::kSms;
  } else if (name == "push") {
    out = Channel::kPush;
  } else {
    return false;
  }
  return true;
}

namespace topics {

std::string Send(Channel channel) {
  return "pv.send." + std::string(ChannelTopicSuffix(channel));
}
std::string DeadLetter(Channel channel) {
  return "pv.dlq." + std::string(ChannelTopicSuffix(channel));
}
std::string Delay(std::string_view tier) {
  return "pv.delay." + std::string(tier);
}

const std::vector<std::string>& DefaultDelayTiers() {
  static const std::vector<std::string> kTiers = {"5s", "30s", "2m", "10m", "1h"};
  return kTiers;
}

std::vector<TopicSpec> DefaultTopics() {
  std::vector<TopicSpec> out = {
      {std::string(kTriggers), 6, false},
      {std::string(kEvents), 6, false},
      {std::string(kKeys), 1, true},
      {std::string(kCampaigns), 1, true},
      {std::string(kReceipts), 3, false},
  };
  for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush}) {
    out.push_back({Send(c), 6, false});
    out.push_back({DeadLetter(c), 3, false});
  }
  for (const auto& tier : DefaultDelayTiers()) out.push_back({Delay(tier), 3, false});
  return out;
}

}  // namespace topics
}  // namespace pv
