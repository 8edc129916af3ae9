#include "pv/workers/send.hpp"

#include <fmt/format.h>

#include "pv/json.hpp"

namespace pv::workers {

std::string_view Send::ContentString(std::string_view name) const {
  const rapidjson::Value* v = ContentMember(name);
  return v != nullptr && v->IsString() ? AsStringView(*v) : std::string_view();
}

const rapidjson::Value* Send::ContentMember(std::string_view name) const {
  return content == nullptr ? nullptr : FindMember(*content, name);
}

namespace {

std::string StringOr(const rapidjson::Value& object, std::string_view name) {
  auto s = FindString(object, name);
  return s ? std::string(*s) : std::string();
}

}  // namespace

std::shared_ptr<Send> ParseSend(std::string_view value, std::string_view key, Channel channel,
                                std::string& error, std::shared_ptr<Send>* partial) {
  auto send = std::make_shared<Send>();
  send->value.assign(value);
  send->key.assign(key);
  ParseRecord(send->doc, send->value);
  if (send->doc.HasParseError() || !send->doc.IsObject()) {
    error = "value is not a JSON object";
    return nullptr;
  }
  const rapidjson::Value& d = send->doc;
  send->send_id = StringOr(d, "send_id");
  send->trigger_id = StringOr(d, "trigger_id");
  send->project = StringOr(d, "project");
  send->campaign_id = StringOr(d, "campaign_id");
  send->channel = StringOr(d, "channel");
  send->provider = StringOr(d, "provider");
  send->fallback_provider = StringOr(d, "fallback_provider");
  if (auto received = FindString(d, "received_at")) send->received_at = ParseTimestamp(*received);
  if (const auto* a = FindMember(d, "attempt"); a != nullptr && a->IsInt() && a->GetInt() > 0) {
    send->attempt = a->GetInt();
  }
  send->to = FindMember(d, "to");
  send->content = FindMember(d, "content");
  if (send->to != nullptr && send->to->IsObject()) {
    send->address = StringOr(*send->to, ContactField(channel));
    send->external_id = StringOr(*send->to, "external_id");
  }
  if (partial != nullptr && !send->send_id.empty()) *partial = send;

  if (send->send_id.empty()) {
    error = "send_id missing";
  } else if (send->provider.empty()) {
    error = "provider missing";
  } else if (Channel c{}; !ParseChannel(send->channel, c) || c != channel) {
    error =
        fmt::format("channel '{}' does not belong on this topic ({})", send->channel, ChannelName(channel));
  } else if (send->to == nullptr || !send->to->IsObject()) {
    error = "to missing";
  } else if (send->address.empty()) {
    error = fmt::format("to.{} missing", ContactField(channel));
  } else if (send->content == nullptr || !send->content->IsObject()) {
    error = "content missing";
  } else {
    return send;
  }
  return nullptr;
}

std::string BuildEvent(const Send& send, const EventFields& f, std::chrono::system_clock::time_point at) {
  std::string out;
  out.reserve(256 + f.error.size());
  out += R"({"v":1,"send_id":)";
  AppendJsonString(out, send.send_id);
  out += R"(,"trigger_id":)";
  AppendJsonString(out, send.trigger_id);
  out += R"(,"campaign_id":)";
  AppendJsonString(out, send.campaign_id);
  out += R"(,"channel":)";
  AppendJsonString(out, send.channel);
  out += R"(,"status":)";
  AppendJsonString(out, f.status);
  out += R"(,"provider":)";
  AppendJsonString(out, f.provider);
  if (!f.provider_message_id.empty()) {
    out += R"(,"provider_message_id":)";
    AppendJsonString(out, f.provider_message_id);
  }
  if (!f.error_code.empty()) {
    out += R"(,"error_code":)";
    AppendJsonString(out, f.error_code);
  }
  if (!f.error.empty()) {
    out += R"(,"error":)";
    AppendJsonString(out, f.error);
  }
  if (f.attempt > 0) out += fmt::format(R"(,"attempt":{})", f.attempt);
  out += R"(,"at":)";
  AppendJsonString(out, FormatTimestamp(at));
  out += '}';
  return out;
}

}  // namespace pv::workers
