#include "pv/dispatcher/processor.hpp"

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "pv/delay_ladder.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

void Key(Writer& w, std::string_view k) {
  w.Key(k.data(), static_cast<rapidjson::SizeType>(k.size()));
}
void String(Writer& w, std::string_view s) {
  w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
}
void Field(Writer& w, std::string_view k, std::string_view v) {
  Key(w, k);
  String(w, v);
}

std::string_view StringOr(const rapidjson::Value* object, std::string_view name) {
  if (object == nullptr || !object->IsObject()) return {};
  return FindString(*object, name).value_or(std::string_view());
}

// The order in which content fields are written (the rest follow alphabetically).
int FieldRank(std::string_view name) {
  static constexpr std::string_view kOrder[] = {"from", "reply_to", "subject", "title",
                                                "body", "html",     "text",    "sound"};
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    if (kOrder[i] == name) return static_cast<int>(i);
  }
  return 100;
}

}  // namespace

std::string_view ActionName(Action action) {
  switch (action) {
    case Action::kSend:
      return "queued";
    case Action::kDefer:
      return "deferred";
    case Action::kSuppressed:
      return "suppressed";
    case Action::kFailed:
      return "failed";
    case Action::kDrop:
      return "dropped";
  }
  return "dropped";
}

void TriggerProcessor::Parse(std::string_view value, const CompiledCatalog& catalog,
                             ParsedTrigger& out) const {
  out.value = value;
  ParseRecord(out.doc, value);
  if (out.doc.HasParseError() || !out.doc.IsObject()) {
    out.error_code = "invalid_trigger";
    out.error = "the record is not a JSON object";
    return;
  }
  const rapidjson::Value* user = FindMember(out.doc, "user");
  out.trigger_id = FindString(out.doc, "trigger_id").value_or(std::string_view());
  out.project = FindString(out.doc, "project").value_or(std::string_view());
  out.campaign_id = FindString(out.doc, "campaign_id").value_or(std::string_view());
  out.external_id = StringOr(user, "external_id");
  out.campaign = catalog.Find(out.campaign_id);
  if (out.campaign != nullptr) {
    out.has_channel = true;
    out.channel = out.campaign->campaign->channel;
  } else {
    // The channel of an unknown campaign, from the address the trigger carries, so that its failure
    // still lands in the right DLQ.
    for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush}) {
      if (!StringOr(user, ContactField(c)).empty()) {
        out.has_channel = true;
        out.channel = c;
        break;
      }
    }
  }
  out.address = StringOr(user, ContactField(out.channel));
  if (!out.trigger_id.empty() && out.has_channel)
    out.send_id = SendIdFor(out.trigger_id, ChannelName(out.channel));
  if (out.trigger_id.empty() || user == nullptr || !user->IsObject() || out.external_id.empty()) {
    out.error_code = "invalid_trigger";
    out.error = "trigger_id, user and user.external_id are required";
  } else if (out.campaign == nullptr) {
    out.error_code = "unknown_campaign";
    out.error = fmt::format("campaign '{}' is not in the catalog", out.campaign_id);
  } else if (out.campaign->campaign->deleted) {
    out.error_code = "campaign_deleted";
    out.error = fmt::format("campaign '{}' is deleted", out.campaign_id);
  } else if (!out.campaign->campaign->enabled) {
    out.error_code = "campaign_disabled";
    out.error = fmt::format("campaign '{}' is disabled", out.campaign_id);
  } else if (out.address.empty()) {
    out.error_code = "missing_address";
    out.error = fmt::format("user.{} is required for {} {} campaign", ContactField(out.channel),
                            out.channel == Channel::kEmail ? "an" : "a", ChannelName(out.channel));
  }
}

const std::string& TriggerProcessor::NowText(TimePoint now) {
  // Every record of a batch is stamped with the same time: format it once.
  if (now != now_ || now_text_.empty()) {
    now_ = now;
    now_text_ = FormatTimestamp(now);
  }
  return now_text_;
}

std::string TriggerProcessor::Event(const ParsedTrigger& t, std::string_view status, TimePoint now,
                                    const std::vector<std::pair<std::string_view, std::string>>& extra) {
  rapidjson::StringBuffer& buffer = event_buffer_;
  buffer.Clear();
  Writer w(buffer);
  w.StartObject();
  Key(w, "v");
  w.Int(1);
  Field(w, "send_id", t.send_id);
  Field(w, "trigger_id", t.trigger_id);
  // The project, so that the status store can answer a trigger's owner only (status_store.hpp); the
  // workers' and feedback events do not carry it, this first event of every send does.
  if (!t.project.empty()) Field(w, "project", t.project);
  Field(w, "campaign_id", t.campaign_id);
  Field(w, "channel", ChannelName(t.channel));
  Field(w, "status", status);
  Field(w, "provider",
        t.campaign != nullptr ? std::string_view(t.campaign->campaign->provider) : std::string_view());
  for (const auto& [k, v] : extra) Field(w, k, v);
  Field(w, "at", NowText(now));
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

size_t TriggerProcessor::RecordSize(const OutputRecord& record) {
  std::vector<kafka::Header> headers;
  headers.reserve(record.headers.size());
  for (const auto& h : record.headers) headers.push_back({h.name, h.value});
  size_t size = kafka::RecordBytes(record.key, record.value, headers);
  if (record.via_ladder) {
    // What ladder::Schedule adds, at the longest: a hop or a retry keeps the same lengths.
    size += kafka::HeaderBytes(ladder::kDueAt, FormatTimestamp(record.due)) +
            kafka::HeaderBytes(ladder::kTarget, record.topic) + kafka::HeaderBytes(ladder::kAttempt, "99");
  }
  return size;
}

Outcome TriggerProcessor::Fail(const ParsedTrigger& t, std::string_view key, std::string code,
                               std::string error, TimePoint now, bool omit_value) {
  Outcome out;
  out.channel = t.channel;
  out.send_id = t.send_id;
  out.error_code = std::move(code);
  out.error = std::move(error);
  if (t.send_id.empty()) {
    out.action = Action::kDrop;
    return out;
  }
  out.action = Action::kFailed;
  std::string failed_at = NowText(now);
  OutputRecord dlq;
  dlq.topic = topics::DeadLetter(t.channel);
  dlq.key = std::string(key.empty() ? t.external_id : key);
  dlq.value = std::string(t.value);
  dlq.headers = {{ladder::kErrorCode, out.error_code},
                 {ladder::kError, out.error},
                 {ladder::kFailedAt, failed_at},
                 // A replay of this record belongs in pv.triggers, not in a send topic.
                 {ladder::kTarget, options_.triggers_topic},
                 {"pv-trigger-id", std::string(t.trigger_id)}};
  if (t.campaign != nullptr) dlq.headers.push_back({ladder::kProvider, t.campaign->campaign->provider});
  if (omit_value || TooLarge(dlq)) {
    // The reason and the trigger id, without a value that cannot be written (see the header).
    dlq.headers.push_back({ladder::kOmittedBytes, std::to_string(dlq.value.size())});
    dlq.value.clear();
  }
  out.records.push_back(std::move(dlq));
  OutputRecord event;
  event.topic = options_.events_topic;
  event.key = t.send_id;
  event.value = Event(t, "failed", now, {{"error_code", out.error_code}, {"error", out.error}});
  out.records.push_back(std::move(event));
  return out;
}

Outcome TriggerProcessor::TooLargeFailure(const ParsedTrigger& t, std::string_view key, std::string code,
                                          std::string_view what, const OutputRecord& record,
                                          const Outcome& decided, TimePoint now) {
  // librdkafka would refuse it on every attempt: a permanent failure of this trigger, not a stall.
  Outcome out = Fail(t, key, std::move(code),
                     fmt::format("the {} is {} bytes with its headers, over message.max.bytes ({})", what,
                                 RecordSize(record), options_.max_record_bytes),
                     now);
  out.render_time = decided.render_time;
  out.missing_variables = decided.missing_variables;
  return out;
}

Outcome TriggerProcessor::Decide(const ParsedTrigger& t, std::string_view key, Suppressed suppressed,
                                 TimePoint now, const SuppressionWhy* why) {
  if (!t.ok()) return Fail(t, key, t.error_code, t.error, now);
  const Campaign& campaign = *t.campaign->campaign;
  if (suppressed != Suppressed::kNo) {
    Outcome out;
    out.action = Action::kSuppressed;
    out.channel = t.channel;
    out.send_id = t.send_id;
    OutputRecord event;
    event.topic = options_.events_topic;
    event.key = t.send_id;
    std::vector<std::pair<std::string_view, std::string>> fields = {
        {"reason", suppressed == Suppressed::kUser ? "user" : "address"},
        {"suppression_reason", why != nullptr ? why->reason : std::string("unknown")}};
    if (why != nullptr && !why->at.empty()) fields.emplace_back("suppressed_at", why->at);
    event.value = Event(t, "suppressed", now, fields);
    out.records.push_back(std::move(event));
    return out;
  }

  const rapidjson::Value& user = *FindMember(t.doc, "user");
  const rapidjson::Value* event_json = FindMember(t.doc, "event");
  std::string_view locale = StringOr(&user, "locale");
  auto render_start = std::chrono::steady_clock::now();
  TemplateData data(&user, event_json != nullptr && event_json->IsObject() ? event_json : nullptr, &campaign);
  Content& content = content_;
  RenderResult rendered = Render(*t.campaign, locale, data, options_.missing_variables, content);
  auto render_time = std::chrono::steady_clock::now() - render_start;
  if (!rendered.ok) {
    Outcome out =
        Fail(t, key, "render_error", fmt::format("{}: {}", campaign.source_file, rendered.error), now);
    out.render_time = render_time;
    out.missing_variables = std::move(rendered.missing);
    return out;
  }

  Outcome out;
  out.channel = t.channel;
  out.send_id = t.send_id;
  out.render_time = render_time;
  out.missing_variables = std::move(rendered.missing);

  if (campaign.send_window) {
    std::string_view tz_name = StringOr(&user, "timezone");
    const date::time_zone* zone = tz_name.empty() ? nullptr : zones_.Find(tz_name);
    if (zone == nullptr) zone = zones_.Find(campaign.timezone);
    if (zone == nullptr) zone = zones_.Find("UTC");
    if (auto opening = NextWindowOpening(*campaign.send_window, *zone, now)) {
      out.action = Action::kDefer;
      out.due = *opening;
      OutputRecord delayed;
      delayed.topic = options_.triggers_topic;
      delayed.key = std::string(key.empty() ? t.external_id : key);
      delayed.value = std::string(t.value);
      delayed.headers = {{"pv-trigger-id", std::string(t.trigger_id)}};
      delayed.via_ladder = true;
      delayed.due = *opening;
      if (TooLarge(delayed))
        return TooLargeFailure(t, key, "deferred_too_large", "deferred trigger", delayed, out, now);
      out.records.push_back(std::move(delayed));
      OutputRecord event;
      event.topic = options_.events_topic;
      event.key = t.send_id;
      event.value = Event(t, "deferred", now, {{"due_at", FormatTimestamp(*opening)}});
      out.records.push_back(std::move(event));
      return out;
    }
  }

  out.action = Action::kSend;
  rapidjson::StringBuffer& buffer = send_buffer_;
  buffer.Clear();
  Writer w(buffer);
  w.StartObject();
  Key(w, "v");
  w.Int(1);
  Field(w, "send_id", t.send_id);
  Field(w, "trigger_id", t.trigger_id);
  Field(w, "project", t.project);
  Field(w, "campaign_id", t.campaign_id);
  Field(w, "channel", ChannelName(t.channel));
  Field(w, "provider", campaign.provider);
  if (!campaign.fallback_provider.empty()) Field(w, "fallback_provider", campaign.fallback_provider);
  Key(w, "attempt");
  w.Int(1);
  Field(w, "created_at", NowText(now));
  // Carried to the worker, which measures pv_send_latency_seconds from it.
  if (auto received = FindString(t.doc, "received_at")) Field(w, "received_at", *received);
  Field(w, "locale", content.locale);
  Key(w, "to");
  w.StartObject();
  Field(w, ContactField(t.channel), t.address);
  Field(w, "external_id", t.external_id);
  w.EndObject();
  Key(w, "content");
  w.StartObject();
  std::vector<const std::pair<const std::string, std::string>*> fields;
  fields.reserve(content.fields.size());
  for (const auto& f : content.fields) fields.push_back(&f);
  std::stable_sort(fields.begin(), fields.end(),
                   [](const auto* a, const auto* b) { return FieldRank(a->first) < FieldRank(b->first); });
  for (const auto* f : fields) Field(w, f->first, f->second);
  if (t.channel == Channel::kPush) {
    if (content.badge) {
      Key(w, "badge");
      w.Int64(*content.badge);
    }
    Key(w, "data");
    w.StartObject();
    for (const auto& [k, v] : content.data) Field(w, k, v);
    w.EndObject();
  }
  w.EndObject();
  w.EndObject();

  OutputRecord send;
  send.topic = topics::Send(t.channel);
  send.key = std::string(t.external_id);
  send.value.assign(buffer.GetString(), buffer.GetSize());
  send.headers = {{"pv-send-id", t.send_id}, {"pv-trigger-id", std::string(t.trigger_id)}};
  if (TooLarge(send)) return TooLargeFailure(t, key, "send_too_large", "rendered send", send, out, now);
  out.records.reserve(2);
  out.records.push_back(std::move(send));
  OutputRecord event;
  event.topic = options_.events_topic;
  event.key = t.send_id;
  event.value = Event(t, "queued", now, {});
  out.records.push_back(std::move(event));
  return out;
}

}  // namespace pv::dispatcher
