// The send a provider's message belongs to, as the workers record it when a provider that reports by
// its own message id (Twilio: MessageSid) accepts a send, so that the dispatcher's feedback pipeline
// can map a receipt back to its send:
//
//   pv:msg:<provider type>:<message id> = {"send_id","trigger_id","campaign_id","provider","address"}
//   in the workers' Redis (redis.url), with the `sent:` marks' TTL (workers.sent_ttl_ms).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pv {

struct SentMessage {
  std::string send_id;
  std::string trigger_id;
  std::string campaign_id;
  std::string provider;
  std::string address;
};

std::string SentMessageKey(std::string_view provider_type, std::string_view message_id);
std::string SentMessageJson(const SentMessage& message);
// nullopt when `json` is not a record of ours (no send_id).
std::optional<SentMessage> ParseSentMessage(std::string_view json);

}  // namespace pv
