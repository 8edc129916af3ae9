#include "pv/testing/records.hpp"

#include <fmt/format.h>

#include <chrono>

#include "pv/ids.hpp"
#include "pv/json.hpp"

namespace pv::testing {

std::string TriggerValue(const std::string& trigger_id, const std::string& campaign_id,
                         const std::string& user_json, const std::string& event_json) {
  return R"({"v":1,"trigger_id":")" + trigger_id + R"(","project":"demo","campaign_id":")" + campaign_id +
         R"(","received_at":")" + FormatTimestamp(std::chrono::system_clock::now()) + R"(","user":)" +
         user_json + R"(,"event":)" + event_json + "}";
}

std::string NewSendId() {
  return SendIdFor(NewTriggerId(), "x");
}

std::string SendValue(const SendSpec& s, std::string* send_id_out) {
  std::string send_id = s.send_id.empty() ? NewSendId() : s.send_id;
  if (send_id_out != nullptr) *send_id_out = send_id;
  std::string channel(ChannelName(s.channel));
  std::string out = R"({"v":1,"send_id":)";
  AppendJsonString(out, send_id);
  out += R"(,"trigger_id":)";
  AppendJsonString(out, "trg-" + send_id);
  out += R"(,"project":"demo","campaign_id":)";
  AppendJsonString(out, s.campaign_id);
  out += R"(,"channel":)";
  AppendJsonString(out, channel);
  out += R"(,"provider":)";
  AppendJsonString(out, s.provider);
  if (!s.fallback_provider.empty()) {
    out += R"(,"fallback_provider":)";
    AppendJsonString(out, s.fallback_provider);
  }
  out += fmt::format(R"(,"attempt":{},"created_at":"2026-01-01T00:00:00.000Z","to":{{)", s.attempt);
  switch (s.channel) {
    case Channel::kEmail:
      out += R"("email":)";
      AppendJsonString(out, s.address.empty() ? "ana@example.com" : s.address);
      break;
    case Channel::kSms:
      out += R"("phone":)";
      AppendJsonString(out, s.address.empty() ? "+34600111222" : s.address);
      break;
    case Channel::kPush:
      out += R"("device_token":)";
      AppendJsonString(out, s.address.empty() ? "a1b2c3d4e5f60718293a4b5c6d7e8f90" : s.address);
      break;
  }
  out += R"(,"external_id":)";
  AppendJsonString(out, s.external_id);
  out += R"(},"content":)";
  switch (s.channel) {
    case Channel::kEmail:
      out += R"({"from":"Demo Shop <orders@demo.example>","reply_to":"support@demo.example",)"
             R"("subject":"Your order ships","html":"<p>Hi Ana</p>","text":"Hi Ana"})";
      break;
    case Channel::kSms:
      out += R"({"body":"123456 is your Demo verification code."})";
      break;
    case Channel::kPush:
      out += R"({"title":"Still thinking?","body":"Your cart is waiting.","sound":"default","badge":2,)"
             R"("data":{"screen":"cart","cart_id":"c-9"}})";
      break;
  }
  out += '}';
  return out;
}

}  // namespace pv::testing
