// The pipeline's Kafka topics and their default partition counts. Partition counts decide how far
// each consumer type scales (one partition feeds at most one member of a group), so they are
// configurable (topics.<name>.partitions); these defaults are what the dev broker and
// `pvctl topics create` use when nothing else is said.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pv {

enum class Channel { kEmail, kSms, kPush };

// "email", "text" (the contract's name for SMS) or "push"; the topic suffix for text is "sms".
std::string_view ChannelName(Channel channel);
std::string_view ChannelTopicSuffix(Channel channel);
// The user field (trigger) and `to` field (send) that holds a channel's recipient:
// "email", "phone" or "device_token".
const char* ContactField(Channel channel);
// Accepts "email", "text", "sms", "push"; returns false for anything else.
bool ParseChannel(std::string_view name, Channel& out);

namespace topics {

inline constexpr std::string_view kTriggers = "pv.triggers";
inline constexpr std::string_view kEvents = "pv.events";
inline constexpr std::string_view kKeys = "pv.keys";
inline constexpr std::string_view kCampaigns = "pv.campaigns";
// Provider receipts (delivered, bounced, STOP, ...) as ingest verified and normalised them.
inline constexpr std::string_view kReceipts = "pv.receipts";

std::string Send(Channel channel);         // pv.send.email | pv.send.sms | pv.send.push
std::string DeadLetter(Channel channel);   // pv.dlq.email | pv.dlq.sms | pv.dlq.push
std::string Delay(std::string_view tier);  // pv.delay.5s ...

// Default delay-ladder tiers, shortest first.
const std::vector<std::string>& DefaultDelayTiers();

struct TopicSpec {
  std::string name;
  int partitions;
  bool compacted;
};

// Every topic the pipeline uses, with default partition counts.
std::vector<TopicSpec> DefaultTopics();

}  // namespace topics
}  // namespace pv
