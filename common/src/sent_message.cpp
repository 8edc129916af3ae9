#include "pv/sent_message.hpp"

#include <rapidjson/document.h>

#include "pv/json.hpp"

namespace pv {

std::string SentMessageKey(std::string_view provider_type, std::string_view message_id) {
  std::string key = "pv:msg:";
  key += provider_type;
  key += ':';
  key += message_id;
  return key;
}

std::string SentMessageJson(const SentMessage& m) {
  std::string out = "{\"send_id\":";
  AppendJsonString(out, m.send_id);
  AppendOptionalField(out, "trigger_id", m.trigger_id);
  AppendOptionalField(out, "campaign_id", m.campaign_id);
  AppendOptionalField(out, "provider", m.provider);
  AppendOptionalField(out, "address", m.address);
  out += '}';
  return out;
}

std::optional<SentMessage> ParseSentMessage(std::string_view json) {
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  SentMessage m;
  m.send_id = StringMember(doc, "send_id");
  if (m.send_id.empty()) return std::nullopt;
  m.trigger_id = StringMember(doc, "trigger_id");
  m.campaign_id = StringMember(doc, "campaign_id");
  m.provider = StringMember(doc, "provider");
  m.address = StringMember(doc, "address");
  return m;
}

}  // namespace pv
