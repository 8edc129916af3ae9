// Every record a component reads from a topic, by the code that reads it. The first byte picks the
// decoder; the rest is split into fields at 0x1e (fuzz_support.hpp), the record's value last:
//
// The records of pv/records.hpp go through their one parser and one encoder each:
//   t <value>                                  pv.triggers: ParseTrigger and AppendTrigger, then
//                                              TriggerProcessor::Parse + Decide (demo catalog, so
//                                              rendering runs), as the dispatcher does
//   s <value>                                  pv.send.<channel>: ParseSend for every channel, as a
//                                              worker does; pvctl replay's ResetAttempt on it
//   e <status>|<provider>|<msg id>|<code>|<error>|<attempt>|<value>
//                                              pv.events as a worker writes it (AppendEvent) for a
//                                              send decoded from <value>, and ParseEvent on it
//   d <error code>|<failed at>|<timestamp ms>|<value>
//                                              pv.dlq.<channel> headers and value as pvctl replay reads
//                                              them (ParseDeadLetter, DeadLetterHeaders round trip,
//                                              Evaluate under several filters, ResetAttempt)
//   l <due at>|<attempt>|<timestamp ms>|<now offset s>|<tier>
//                                              pv.delay.<tier> headers as the delay scheduler reads
//                                              them (ParseTimestamp, ParseAttempt, DecideLadderStep)
//   k <value>                                  pv.keys as ingest reads it (ParseKeyRecord)
//   r <received at>|<value>                    pv.receipts as the feedback pipeline reads it
//                                              (ParseReceipt), re-encoded as ingest writes it
//                                              (AppendReceipt)
//   c <record key>|<pv-updated-at>|<timestamp ms>|<value>
//                                              pv.campaigns as ingest and the dispatcher read it
//                                              (ParseCampaignState, then the dispatcher's compile check);
//                                              a value "-" stands for a tombstone
//   v <max field bytes>|<value>                pv.events as the dispatcher's status feeder reads it
//                                              (ParseEvent, StatusFromEvent), the entry rendered as the
//                                              status route does (RenderTriggerStatus)
//
// Invariants: a trigger that parses re-encodes to one that parses to the same ids; for an event,
// encode(parse(x)) is a byte fixed point and a written event parses back byte for byte; a trigger
// the dispatcher sends becomes a send record the worker decodes with the same ids, address and
// attempt 1; every event is a JSON object that carries the send_id it is keyed by;
// dead-letter and deferred records carry the trigger unchanged; a send's strings and objects copied
// from its text (Send::AppendString, AppendObject) read as the decoded ones, on one line; dead-letter headers
// read back as DeadLetterHeaders writes them; a decoded send re-encoded with attempt reset decodes to the
// same send; an event decodes to exactly the fields written; a delay header decodes to what Schedule writes
// (FormatTimestamp, decimal attempt) and back, and a record is never released before it is due; a key record
// that decodes re-encodes (KeyRecord) to one that decodes to the same key; a receipt that decodes re-encodes
// to one that decodes to the same fields; a campaign record that decodes re-encodes (CampaignRecord) to one
// that decodes to the same campaign and version, and a tombstone is never a campaign; an event the status
// feeder takes becomes an entry of at most a bounded size that renders as the one status of its send.
#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "fuzz_support.hpp"
#include "pv/campaign_records.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/dispatcher/delay_scheduler.hpp"
#include "pv/dispatcher/processor.hpp"
#include "pv/json.hpp"
#include "pv/keys.hpp"
#include "pv/log.hpp"
#include "pv/records.hpp"
#include "pv/redis_client.hpp"
#include "pv/status_store.hpp"
#include "replay.hpp"

namespace {

using pv::fuzz::Check;
using Clock = std::chrono::system_clock;

const Clock::time_point kBase = *pv::ParseTimestamp("2026-12-02T10:00:00Z");

std::string_view JsonString(const rapidjson::Value& object, const char* name) {
  auto s = pv::FindString(object, name);
  return s ? *s : std::string_view();
}

rapidjson::Document ParseObject(std::string_view text, const char* what) {
  rapidjson::Document doc;
  doc.Parse(text.data(), text.size());
  Check(!doc.HasParseError() && doc.IsObject(), what, text);
  return doc;
}

void Trigger(pv::fuzz::Fields& in) {
  static const auto catalog = pv::dispatcher::CompiledCatalog::Load(PV_DEMO_CATALOG);
  static pv::dispatcher::TriggerProcessor processor{pv::dispatcher::ProcessorOptions{}};
  unsigned char hour = in.Byte();
  std::string_view value = in.Rest();
  {
    // Not a byte fixed point: user and event are re-serialised, and RapidJSON's default-precision
    // parse may move a non-integer number by an ULP each time (see pvctl's ResetAttempt).
    rapidjson::Document doc, again_doc;
    pv::TriggerRecord record, again;
    if (pv::ParseTrigger(doc, value, record)) {
      std::string once;
      pv::AppendTrigger(once, record);
      Check(pv::ParseTrigger(again_doc, once, again), "a re-encoded trigger does not parse", once);
      Check(again.trigger_id == record.trigger_id && again.project == record.project &&
                again.campaign_id == record.campaign_id && again.received_at == record.received_at &&
                again.external_id == record.external_id && again.user != nullptr && again.event != nullptr &&
                (record.user == nullptr || again.user->MemberCount() <= record.user->MemberCount()),
            "a re-encoded trigger parses to other fields", once);
    }
  }
  pv::dispatcher::ParsedTrigger trigger;
  processor.Parse(value, *catalog, trigger);
  auto now = kBase + std::chrono::minutes(37) * hour;
  auto outcome = processor.Decide(trigger, trigger.external_id, pv::dispatcher::Suppressed::kNo, now);
  for (const auto& record : outcome.records) {
    if (record.topic == "pv.events") {
      auto event = ParseObject(record.value, "a dispatcher event is not a JSON object");
      Check(JsonString(event, "send_id") == record.key, "event send_id differs from its key", record.value);
    } else if (record.topic.rfind("pv.send.", 0) == 0) {
      std::string error;
      auto send = pv::ParseSend(record.value, record.key, outcome.channel, error);
      Check(send != nullptr, "the worker cannot decode the dispatcher's send record",
            error + "\n" + record.value);
      Check(send->send_id == outcome.send_id && send->trigger_id == trigger.trigger_id &&
                send->address == trigger.address && send->external_id == trigger.external_id &&
                send->attempt == 1,
            "the decoded send differs from the trigger", record.value);
    } else {
      // The DLQ and the delay ladder carry the trigger as consumed.
      Check(record.value == value, "a dead-lettered or deferred trigger was changed", record.topic);
    }
  }
}

// What the providers copy from the record's text (Send::AppendString, AppendObject) reads as what
// they would have written anew, and an object copied stays on one line (the log provider's outbox).
void RawCopies(const pv::Send& send, std::string_view value) {
  for (const auto* object : {send.to, send.content}) {
    if (object == nullptr || !object->IsObject()) continue;
    std::string copied;
    send.AppendObject(copied, *object);
    Check(copied.find_first_of("\r\n") == std::string::npos, "a copied object breaks its line", copied);
    rapidjson::Document doc;
    doc.Parse(copied.data(), copied.size());
    Check(!doc.HasParseError() && pv::ToJson(doc) == pv::ToJson(*object), "a copied object reads differently",
          copied + "\n" + std::string(value));
    for (const auto& member : object->GetObject()) {
      if (!member.value.IsString()) continue;
      std::string s;
      send.AppendString(s, pv::AsStringView(member.value));
      rapidjson::Document str;
      str.Parse(s.data(), s.size());
      Check(!str.HasParseError() && str.IsString() && pv::AsStringView(str) == pv::AsStringView(member.value),
            "a copied string reads differently", s + "\n" + std::string(value));
    }
  }
}

void SendRecord(pv::fuzz::Fields& in) {
  std::string_view value = in.Rest();
  for (pv::Channel channel : {pv::Channel::kEmail, pv::Channel::kSms, pv::Channel::kPush}) {
    std::string error;
    std::shared_ptr<pv::Send> partial;
    auto send = pv::ParseSend(value, "key", channel, error, &partial);
    if (!send) continue;
    RawCopies(*send, value);
    auto reset = pv::pvctl::ResetAttempt(value);
    Check(reset.has_value(), "a send the worker reads is unreadable to replay", value);
    auto again = pv::ParseSend(*reset, "key", channel, error);
    Check(again != nullptr, "a replayed send no longer decodes", *reset);
    Check(again->send_id == send->send_id && again->address == send->address &&
              again->provider == send->provider && again->external_id == send->external_id &&
              again->attempt == 1,
          "a replayed send decodes differently", *reset);
    // Byte-stable: only the attempt's value changed, to 1 (the rest is the record as it was).
    std::string_view out = *reset;
    std::size_t prefix = 0;
    while (prefix < value.size() && prefix < out.size() && value[prefix] == out[prefix]) ++prefix;
    std::size_t suffix = 0;
    while (suffix < value.size() - prefix && suffix < out.size() - prefix &&
           value[value.size() - 1 - suffix] == out[out.size() - 1 - suffix]) {
      ++suffix;
    }
    Check(out.size() - prefix - suffix <= 1, "replay changed more than the attempt's value", *reset);
  }
}

void Event(pv::fuzz::Fields& in) {
  std::string error;
  std::shared_ptr<pv::Send> send;
  std::string_view status = in.Next();
  std::string_view provider = in.Next();
  std::string_view provider_message_id = in.Next();
  std::string_view error_code = in.Next();
  std::string_view error_text = in.Next();
  int attempt = static_cast<int>(in.Int() % 1000);
  std::string_view value = in.Rest();
  pv::ParseSend(value, "key", pv::Channel::kEmail, error, &send);
  if (!send) {
    send = std::make_shared<pv::Send>();
    send->send_id = value.substr(0, 64);  // a view: `value` outlives the send
  }
  pv::EventRecord f = pv::EventFor(*send);
  f.status = status;
  f.provider = provider;
  f.provider_message_id = provider_message_id;
  f.error_code = error_code;
  f.error = error_text;
  f.attempt = attempt;
  f.at = "2026-12-02T10:00:00.000Z";
  std::string event;
  pv::AppendEvent(event, f);
  auto doc = ParseObject(event, "a worker event is not a JSON object");
  Check(JsonString(doc, "send_id") == send->send_id && JsonString(doc, "status") == f.status &&
            JsonString(doc, "provider") == f.provider &&
            JsonString(doc, "provider_message_id") == f.provider_message_id &&
            JsonString(doc, "error_code") == f.error_code && JsonString(doc, "error") == f.error &&
            JsonString(doc, "campaign_id") == send->campaign_id &&
            JsonString(doc, "channel") == send->channel,
        "an event decodes to other fields than were written", event);
  rapidjson::Document parsed_doc;
  pv::EventRecord parsed;
  Check(pv::ParseEvent(parsed_doc, event, parsed), "ParseEvent refuses a written event", event);
  std::string again;
  pv::AppendEvent(again, parsed);
  Check(again == event, "ParseEvent does not give back the fields written", event + "\n" + again);
}

void DeadLetter(pv::fuzz::Fields& in) {
  pv::pvctl::ReplayRecord record;
  std::string_view code = in.Next();
  std::string_view failed_at = in.Next();
  // The headers as pvctl replay and the feedback pipeline read them (ParseDeadLetter); the two texts
  // also stand as pv-attempt and pv-omitted-bytes, so that the number readers see them too.
  std::map<std::string, std::string> headers;
  if (!code.empty()) headers[pv::ladder::kErrorCode] = headers[pv::ladder::kOmittedBytes] = code;
  if (!failed_at.empty()) headers[pv::ladder::kFailedAt] = headers[pv::ladder::kAttempt] = failed_at;
  pv::DeadLetter why = pv::ParseDeadLetter(headers);
  Check(code.empty() ? !why.error_code : why.error_code == code, "pv-error-code read differently", code);
  Check(!why.attempt || *why.attempt >= 1, "a dead letter's attempt below 1", failed_at);
  // What the one writer writes reads back the same.
  auto written = pv::DeadLetterHeaders(why);
  pv::DeadLetter back = pv::ParseDeadLetter({written.begin(), written.end()});
  Check(back.error_code == why.error_code && back.error == why.error && back.attempt == why.attempt &&
            back.provider == why.provider && back.failed_at == why.failed_at &&
            back.omitted_bytes == why.omitted_bytes,
        "dead-letter headers do not read back as written", code);
  record.error_code = why.error_code;
  record.failed_at = why.failed_at;
  record.timestamp_ms = in.Int();
  record.value = in.Rest();

  pv::pvctl::ReplayFilter all;
  auto verdict = pv::pvctl::Evaluate(all, record);
  auto reset = pv::pvctl::ResetAttempt(record.value);
  Check((verdict == pv::pvctl::ReplayVerdict::kUnreadable) == !reset.has_value(),
        "Evaluate and ResetAttempt disagree on what is readable", record.value);

  pv::pvctl::ReplayFilter narrow;
  narrow.campaigns = {"44", "45"};
  narrow.error_codes = {"render_error", std::string(code)};
  narrow.since = kBase - std::chrono::hours(24);
  narrow.until = kBase;
  auto narrowed = pv::pvctl::Evaluate(narrow, record);
  Check(verdict != pv::pvctl::ReplayVerdict::kUnreadable || narrowed == verdict,
        "a filter made an unreadable record readable", record.value);
  if (narrowed == pv::pvctl::ReplayVerdict::kMatch && record.failed_at) {
    auto at = pv::ParseTimestamp(*record.failed_at);
    Check(!at || (*at >= *narrow.since && *at < *narrow.until), "a record outside the window matched",
          *record.failed_at);
  }
  (void)narrow.Canonical();
  (void)pv::pvctl::ReplayGroup("pv.dlq.email", pv::pvctl::DefaultReplayTarget(code), narrow);
}

void Delay(pv::fuzz::Fields& in) {
  static const auto tiers = pv::ladder::ParseTiers(pv::topics::DefaultDelayTiers());
  std::string_view due_text = in.Next();
  std::string_view attempt_text = in.Next();
  std::int64_t timestamp_ms = in.Int();
  auto now = kBase + std::chrono::seconds(in.Int() % (400LL * 24 * 3600));
  const auto& tier = tiers[in.Byte() % tiers.size()];

  // DelayScheduler::Take: a missing or unreadable due time releases at once; no timestamp is now.
  auto due = pv::ParseTimestamp(due_text);
  auto produced_at = timestamp_ms >= 0 ? pv::FromUnixMillis(timestamp_ms) : now;
  auto step = pv::dispatcher::DecideLadderStep(tier, produced_at, due.value_or(now), now);
  if (step.kind == pv::dispatcher::LadderStep::Kind::kToTarget) {
    Check(now >= due.value_or(now), "released to the target before due", due_text);
  }
  if (step.kind == pv::dispatcher::LadderStep::Kind::kHop && due) {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(*due - now);
    (void)pv::ladder::ChooseTier(tiers, remaining);
  }
  // What Schedule writes decodes to the same due time (to the millisecond) and attempt.
  if (due) {
    auto written = pv::FormatTimestamp(*due);
    auto back = pv::ParseTimestamp(written);
    Check(back.has_value() && std::chrono::floor<std::chrono::milliseconds>(*due) == *back,
          "pv-due-at does not decode to what was written", written);
  }
  auto attempt = pv::ladder::ParseAttempt(attempt_text);
  if (attempt) {
    Check(*attempt >= 1, "a decoded attempt below 1", attempt_text);
    Check(pv::ladder::ParseAttempt(std::to_string(*attempt)) == attempt, "pv-attempt does not round-trip",
          attempt_text);
  }
}

void KeyRecord(pv::fuzz::Fields& in) {
  std::string_view value = in.Rest();
  pv::ApiKey key;
  std::string error;
  if (!pv::ParseKeyRecord(value, key, error)) {
    Check(!error.empty(), "a key record refused without a reason", value);
    return;
  }
  std::string again = pv::KeyRecord(key);
  pv::ApiKey back;
  Check(pv::ParseKeyRecord(again, back, error), "a re-encoded key record does not decode", again);
  Check(back.id == key.id && back.name == key.name && back.project == key.project &&
            back.scope == key.scope && back.hash == key.hash && back.last4 == key.last4 &&
            back.created_at == key.created_at && back.revoked_at == key.revoked_at,
        "a key record decodes differently once re-encoded", again);
}

void Receipt(pv::fuzz::Fields& in) {
  std::string_view received_at = in.Next();
  std::string_view value = in.Rest();
  pv::ReceiptRecord receipt, back;
  std::string error;
  if (!pv::ParseReceipt(value, receipt, error)) {
    Check(!error.empty(), "a receipt refused without a reason", value);
    return;
  }
  std::string again;
  pv::AppendReceipt(again, receipt, received_at);
  Check(pv::ParseReceipt(again, back, error), "a re-encoded receipt does not decode", again);
  Check(back.receipt_id == receipt.receipt_id && back.provider_type == receipt.provider_type &&
            back.provider == receipt.provider && back.type == receipt.type &&
            back.send_id == receipt.send_id && back.trigger_id == receipt.trigger_id &&
            back.campaign_id == receipt.campaign_id && back.message_id == receipt.message_id &&
            back.address == receipt.address && back.reason == receipt.reason &&
            back.error_code == receipt.error_code && back.occurred_at == receipt.occurred_at,
        "a receipt decodes differently once re-encoded", again);
}

void CampaignRecordInput(pv::fuzz::Fields& in) {
  pv::CampaignRecordView view;
  view.record_key = in.Next();
  std::string_view header = in.Next();
  if (!header.empty()) view.updated_at_header = header;
  view.timestamp_ms = in.Int();
  std::string_view value = in.Rest();
  if (value != "-") view.value = value;
  pv::TopicCampaign state;
  std::string error;
  if (!pv::ParseCampaignState(view, "pv.campaigns", state, error)) {
    Check(!error.empty(), "a campaign record refused without a reason", value);
    return;
  }
  Check(state.id == view.record_key, "a campaign state under another id than its record key", value);
  if (!view.value) {
    Check(state.campaign == nullptr, "a tombstone decoded to a campaign", view.record_key);
    return;
  }
  Check(state.campaign != nullptr, "a record value decoded to a removal", value);
  const pv::Campaign& c = *state.campaign;
  std::string again = pv::CampaignRecord(c, state.updated_at_ms, c.applied_from);
  pv::Campaign back;
  Check(pv::ParseCampaignRecord(again, "pv.campaigns", back, error),
        "a re-encoded campaign record does not decode", error + "\n" + again);
  Check(pv::CampaignDifferences(c, back).empty() && back.updated_at_ms == c.updated_at_ms &&
            back.applied_from == c.applied_from,
        "a campaign record decodes differently once re-encoded", again);
  // The dispatcher's check of a record before it replaces anything (catalog_source.cpp).
  try {
    pv::dispatcher::CompiledCatalog::Compile(pv::Catalog::Of(c.source_file, {c}));
  } catch (const pv::CatalogError&) {
  }
}

}  // namespace

void StatusEvent(pv::fuzz::Fields& in) {
  std::size_t max_field = 16 + in.Byte();
  std::string_view value = in.Rest();
  {
    // Every field of an event is a string or an int: encode(parse(x)) is a byte fixed point.
    rapidjson::Document doc, again_doc;
    pv::EventRecord event, again;
    if (pv::ParseEvent(doc, value, event)) {
      std::string once, twice;
      pv::AppendEvent(once, event);
      Check(pv::ParseEvent(again_doc, once, again), "a re-encoded event does not parse", once);
      pv::AppendEvent(twice, again);
      Check(twice == once, "encode(parse(x)) of an event is not a fixed point", once + "\n" + twice);
    }
  }
  pv::StatusUpdate update;
  std::string error;
  if (!pv::StatusFromEvent(value, max_field, update, error)) return;
  Check(pv::ValidStatusId(update.trigger_id) && pv::ValidStatusId(update.send_id),
        "a status with an id the store refuses", value);
  // send_id, channel, status, at, project, campaign_id and ten details, each cut to max_field
  // (escaped: up to 6x), an attempt.
  Check(update.entry.size() <= 16 * (6 * max_field + 64) + 64, "a status entry over its bound", value);
  pv::RedisReply hash;
  hash.type = pv::RedisReply::Type::kArray;
  for (const std::string* s : {&update.field, &update.entry}) {
    pv::RedisReply r;
    r.type = pv::RedisReply::Type::kString;
    r.str = *s;
    hash.elements.push_back(std::move(r));
  }
  pv::TriggerStatus status = pv::RenderTriggerStatus(update.trigger_id, hash);
  Check(status.found, "a status entry does not render", update.entry);
  auto doc = ParseObject(status.json, "a rendered status is not a JSON object");
  Check(doc["sends"].Size() == 1 && doc["sends"][0]["statuses"].Size() == 1 &&
            JsonString(doc["sends"][0], "send_id") == update.send_id,
        "a rendered status differs from its entry", status.json);
  // The trigger's project and campaign come from the entry that names the project, and no status
  // repeats them.
  Check(status.project == update.project &&
            (update.project.empty() ? status.campaign_id.empty() : status.campaign_id == update.campaign_id),
        "a rendered status names another project or campaign than its event", status.json);
  Check(!doc["sends"][0]["statuses"][0].HasMember("project") &&
            !doc["sends"][0]["statuses"][0].HasMember("trigger_id"),
        "a status repeats the project or the trigger", status.json);
  // Its hash: the send's or the trigger's own, one of those the trigger's lookup reads; read by the
  // send's id alone, it names the trigger when it names the project; read twice (the same event in
  // two hashes), it is one status.
  const std::vector<std::string> keys = pv::StatusKeysOfTrigger(update.trigger_id);
  Check(std::find(keys.begin(), keys.end(), update.key) != keys.end(),
        "a status written where its trigger's lookup does not read", update.key);
  pv::TriggerStatus by_send = pv::RenderTriggerStatus("", std::vector<pv::RedisReply>{hash, hash});
  Check(by_send.trigger_id == (update.project.empty() ? "" : update.trigger_id),
        "a send's hash names another trigger", by_send.json);
  Check(by_send.json.size() == status.json.size() + by_send.trigger_id.size() - update.trigger_id.size(),
        "an entry in two hashes is not one status", by_send.json);
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool quiet = [] {
    pv::log::SetLevel(pv::log::Level::kError);
    return true;
  }();
  (void)quiet;
  pv::fuzz::Budget budget("record decoder");
  pv::fuzz::Fields in(data, size);
  switch (in.Byte()) {
    case 't':
      Trigger(in);
      break;
    case 's':
      SendRecord(in);
      break;
    case 'e':
      Event(in);
      break;
    case 'd':
      DeadLetter(in);
      break;
    case 'l':
      Delay(in);
      break;
    case 'k':
      KeyRecord(in);
      break;
    case 'r':
      Receipt(in);
      break;
    case 'c':
      CampaignRecordInput(in);
      break;
    case 'v':
      StatusEvent(in);
      break;
    default:
      break;
  }
  return 0;
}
