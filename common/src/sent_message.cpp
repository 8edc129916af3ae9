#include "pv/sent_message.hpp"

#include <rapidjson/document.h>

#include "pv/json.hpp"

namespace pv {
namespace {

std::string StringOf(const rapidjson::Value& object, std::string_view name) {
  return std::string(FindString(object, name).value_or(std::string_view()));
}

void Field(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  out += ",\"";
  out += name;
  out += "\":";
  AppendJsonString(out, value);
}

}  // namespace

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
  Field(out, "trigger_id", m.trigger_id);
  Field(out, "campaign_id", m.campaign_id);
  Field(out, "provider", m.provider);
  Field(out, "address", m.address);
  out += '}';
  return out;
}

std::optional<SentMessage> ParseSentMessage(std::string_view json) {
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  SentMessage m;
  m.send_id = StringOf(doc, "send_id");
  if (m.send_id.empty()) return std::nullopt;
  m.trigger_id = StringOf(doc, "trigger_id");
  m.campaign_id = StringOf(doc, "campaign_id");
  m.provider = StringOf(doc, "provider");
  m.address = StringOf(doc, "address");
  return m;
}

}  // namespace pv
