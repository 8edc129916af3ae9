#include "pv/dispatcher/processor.hpp"

#include <fmt/format.h>

#include "pv/delay_ladder.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

std::string_view StringOr(const rapidjson::Value* object, std::string_view name) {
  if (object == nullptr || !object->IsObject()) return {};
  return FindString(*object, name).value_or(std::string_view());
}

}  // namespace

void TriggerProcessor::Parse(std::string_view value, const CompiledCatalog& catalog,
                             ParsedTrigger& out) const {
  out.value = value;
  if (!ParseTrigger(out.doc, value, out.record)) {
    out.error_code = "invalid_trigger";
    out.error = "the record is not a JSON object";
    return;
  }
  const rapidjson::Value* user = out.record.user;
  out.trigger_id = out.record.trigger_id;
  out.project = out.record.project;
  out.campaign_id = out.record.campaign_id;
  out.external_id = out.record.external_id;
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
  if (out.trigger_id.empty() || user == nullptr || out.external_id.empty()) {
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

OutputRecord TriggerProcessor::Event(const ParsedTrigger& t, EventRecord e, TimePoint now) {
  e.send_id = t.send_id;
  e.trigger_id = t.trigger_id;
  // The project, so that the status store can answer a trigger's owner only (status_store.hpp); the
  // workers' and feedback events do not carry it, this first event of every send does.
  e.project = t.project;
  e.campaign_id = t.campaign_id;
  e.channel = ChannelName(t.channel);
  e.provider = t.campaign != nullptr ? std::string_view(t.campaign->campaign->provider) : std::string_view();
  e.at = NowText(now);
  event_buffer_.clear();
  AppendEvent(event_buffer_, e);
  OutputRecord event;
  event.topic = options_.events_topic;
  event.key = t.send_id;
  event.value = event_buffer_;
  return event;
}

size_t TriggerProcessor::RecordSize(const OutputRecord& record) {
  size_t size = kafka::RecordBytesOf(record.key, record.value, record.headers);
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
  OutputRecord dlq;
  dlq.topic = topics::DeadLetter(t.channel);
  dlq.key = std::string(key.empty() ? t.external_id : key);
  dlq.value = std::string(t.value);
  DeadLetter why{.error_code = out.error_code, .error = out.error, .failed_at = NowText(now)};
  if (t.campaign != nullptr) why.provider = t.campaign->campaign->provider;
  SetDeadLetterHeaders(dlq.headers, why);
  // A replay of this record belongs in pv.triggers, not in a send topic.
  dlq.headers.push_back({ladder::kTarget, options_.triggers_topic});
  dlq.headers.push_back({"pv-trigger-id", std::string(t.trigger_id)});
  if (omit_value || TooLarge(dlq)) {
    // The reason and the trigger id, without a value that cannot be written (see the header).
    SetDeadLetterHeaders(dlq.headers, {.omitted_bytes = dlq.value.size()});
    dlq.value.clear();
  }
  out.records.push_back(std::move(dlq));
  EventRecord e;
  e.status = "failed";
  e.error_code = out.error_code;
  e.error = out.error;
  out.records.push_back(Event(t, e, now));
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

Outcome TriggerProcessor::Defer(const ParsedTrigger& t, std::string_view key, TimePoint opening, Outcome out,
                                TimePoint now) {
  out.action = Action::kDefer;
  out.due = opening;
  OutputRecord delayed;
  delayed.topic = options_.triggers_topic;
  delayed.key = std::string(key.empty() ? t.external_id : key);
  delayed.value = std::string(t.value);
  delayed.headers = {{"pv-trigger-id", std::string(t.trigger_id)}};
  delayed.via_ladder = true;
  delayed.due = opening;
  if (TooLarge(delayed))
    return TooLargeFailure(t, key, "deferred_too_large", "deferred trigger", delayed, out, now);
  out.records.push_back(std::move(delayed));
  std::string due_at = FormatTimestamp(opening);
  EventRecord e;
  e.status = "deferred";
  e.due_at = due_at;
  out.records.push_back(Event(t, e, now));
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
    EventRecord e;
    e.status = "suppressed";
    e.reason = suppressed == Suppressed::kUser ? "user" : "address";
    e.suppression_reason = why != nullptr ? std::string_view(why->reason) : "unknown";
    if (why != nullptr) e.suppressed_at = why->at;
    out.records.push_back(Event(t, e, now));
    return out;
  }

  const rapidjson::Value* user = t.record.user;
  auto render_start = std::chrono::steady_clock::now();
  TemplateData data(user, t.record.event, &campaign);
  RenderResult rendered =
      Render(*t.campaign, StringOr(user, "locale"), data, options_.missing_variables, content_);
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
    std::string_view tz_name = StringOr(user, "timezone");
    const date::time_zone* zone = tz_name.empty() ? nullptr : zones_.Find(tz_name);
    if (zone == nullptr) zone = zones_.Find(campaign.timezone);
    if (zone == nullptr) zone = zones_.Find("UTC");
    if (auto opening = NextWindowOpening(*campaign.send_window, *zone, now)) {
      return Defer(t, key, *opening, std::move(out), now);
    }
  }

  out.action = Action::kSend;
  SendOut s;
  s.send_id = t.send_id;
  s.trigger_id = t.trigger_id;
  s.project = t.project;
  s.campaign_id = t.campaign_id;
  s.channel = t.channel;
  s.provider = campaign.provider;
  s.fallback_provider = campaign.fallback_provider;
  s.created_at = NowText(now);
  s.received_at = t.record.received_at;  // the worker measures pv_send_latency_seconds from it
  s.locale = content_.locale;
  s.address = t.address;
  s.external_id = t.external_id;
  s.content.fields = &content_.fields;
  if (t.channel == Channel::kPush) {
    s.content.data = &content_.data;
    s.content.badge = content_.badge;
  }
  send_buffer_.clear();
  AppendSend(send_buffer_, s);

  OutputRecord send;
  send.topic = topics::Send(t.channel);
  send.key = std::string(t.external_id);
  send.value = send_buffer_;
  send.headers = {{"pv-send-id", t.send_id}, {"pv-trigger-id", std::string(t.trigger_id)}};
  if (TooLarge(send)) return TooLargeFailure(t, key, "send_too_large", "rendered send", send, out, now);
  out.records.reserve(2);
  out.records.push_back(std::move(send));
  EventRecord e;
  e.status = "queued";
  out.records.push_back(Event(t, e, now));
  return out;
}

}  // namespace pv::dispatcher
