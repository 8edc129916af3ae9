#include "pv/dispatcher/feedback.hpp"

#include <rapidjson/document.h>

#include "pv/json.hpp"
#include "pv/records.hpp"

namespace pv::dispatcher {
namespace {

// The reason a receipt type suppresses its address for, and whether that reason is on.
std::string_view SuppressionReasonOf(std::string_view type, const SuppressionReasons& on) {
  if (type == "bounced") return on.bounce ? "bounce" : "";
  if (type == "complained") return on.complaint ? "complaint" : "";
  if (type == "unsubscribed") return on.unsubscribe ? "unsubscribe" : "";
  if (type == "stop") return on.stop ? "stop" : "";
  return "";
}

}  // namespace

std::optional<SentMessage> SendOfReceipt(const ReceiptRecord& r, const std::optional<SentMessage>& recorded) {
  if (!r.send_id.empty()) return SentMessage{r.send_id, r.trigger_id, r.campaign_id, r.provider, r.address};
  if (recorded) {
    SentMessage m = *recorded;
    if (m.address.empty()) m.address = r.address;
    return m;
  }
  return std::nullopt;
}

std::string_view FeedbackResultName(FeedbackResult result) {
  switch (result) {
    case FeedbackResult::kApplied:
      return "applied";
    case FeedbackResult::kUnknownSend:
      return "unknown_send";
    case FeedbackResult::kInvalid:
      return "invalid";
  }
  return "invalid";
}

FeedbackAction DecideReceipt(const ReceiptRecord& r, const std::optional<SentMessage>& send,
                             const SuppressionReasons& reasons, std::chrono::system_clock::time_point now) {
  FeedbackAction a;
  a.channel = r.provider_type == "twilio" ? Channel::kSms : Channel::kEmail;
  a.provider = send && !send->provider.empty() ? send->provider : r.provider;
  std::string at = FormatTimestamp(now);
  if (r.type == "stop" || r.type == "start") {
    // About a phone number, whatever was sent to it: no send, no event.
    if (r.address.empty()) return a;  // kInvalid
    a.result = FeedbackResult::kApplied;
    std::string member = SuppressedAddressMember(a.channel, r.address);
    if (r.type == "start") {
      if (reasons.stop) a.lift_member = member;
    } else if (reasons.stop) {
      a.suppress_member = member;
      a.suppress_reason = "stop";
      a.suppress_why = SuppressionWhyJson("stop", at, r.provider);
    }
    return a;
  }
  if (!send) {
    a.result = FeedbackResult::kUnknownSend;
    return a;
  }
  a.result = FeedbackResult::kApplied;
  a.status = r.type;
  a.send_id = send->send_id;
  EventRecord e;
  e.send_id = send->send_id;
  e.trigger_id = send->trigger_id;
  e.campaign_id = send->campaign_id;
  e.channel = ChannelName(a.channel);
  e.status = r.type;
  e.provider = a.provider;
  e.provider_message_id = r.message_id;
  e.error_code = r.error_code;
  e.error = r.reason;
  e.receipt_id = r.receipt_id;
  e.occurred_at = r.occurred_at;
  e.at = at;
  AppendEvent(a.event, e);
  std::string_view reason = SuppressionReasonOf(r.type, reasons);
  std::string address = send->address.empty() ? r.address : send->address;
  if (!reason.empty() && !address.empty()) {
    a.suppress_member = SuppressedAddressMember(a.channel, address);
    a.suppress_reason = std::string(reason);
    a.suppress_why = SuppressionWhyJson(reason, at, r.provider);
  }
  return a;
}

FeedbackAction DecideDeadPush(std::string_view error_code, std::string_view value,
                              const SuppressionReasons& reasons, std::chrono::system_clock::time_point now) {
  FeedbackAction a;
  a.channel = Channel::kPush;
  if (error_code != "unregistered" || !reasons.unregistered) return a;
  rapidjson::Document doc;
  ParseRecord(doc, value);
  if (doc.HasParseError() || !doc.IsObject()) return a;
  const rapidjson::Value* to = FindMember(doc, "to");
  std::string token = to != nullptr && to->IsObject() ? StringMember(*to, "device_token") : std::string();
  if (token.empty()) return a;
  a.result = FeedbackResult::kApplied;
  a.send_id = StringMember(doc, "send_id");
  a.provider = StringMember(doc, "provider");
  a.suppress_member = SuppressedAddressMember(Channel::kPush, token);
  a.suppress_reason = "unregistered";
  a.suppress_why = SuppressionWhyJson("unregistered", FormatTimestamp(now), a.provider);
  return a;
}

}  // namespace pv::dispatcher
