// The schema of the records pv writes to and reads from Kafka (docs/architecture.md "Kafka topics and
// records"): each record has exactly one encoder and one parser, here, and every producer, consumer
// and fuzz target (fuzz/record_decoders_fuzz.cpp) goes through them, so that the copies cannot drift.
//
// Hot path: encoders append to the caller's string (kept from record to record, so no reallocation);
// parsers fill the caller's Document and return string_views into it. Parsing is bounded as every
// record read is (ParseRecord: nesting deeper than kMaxRecordDepth is refused unparsed).
// Tests: common/test/records_test.cpp.
#pragma once

#include <rapidjson/document.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/topics.hpp"

namespace pv {

// pv.triggers, written by ingest, read by the dispatcher:
// {"v":1,"trigger_id","project","campaign_id","received_at","user":{...},"event":{...}}
struct TriggerRecord {
  std::string_view trigger_id;
  std::string_view project;
  std::string_view campaign_id;
  std::string_view received_at;             // as ingest wrote it (RFC 3339); carried into the send
  const rapidjson::Value* user = nullptr;   // an object (anything else writes as {}; parsed: nullptr)
  const rapidjson::Value* event = nullptr;  // likewise
  std::string_view external_id;             // user.external_id: parsed only
};

// Writes `user`'s members but the null ones (consumers see a valid value or no field), and `event`;
// either one missing or not an object is written as {}.
void AppendTrigger(std::string& out, const TriggerRecord& trigger);
// False when `value` is not a JSON object (then `out` is left empty). Fields of the wrong type read as
// absent: deciding what is missing is the consumer's business.
bool ParseTrigger(rapidjson::Document& doc, std::string_view value, TriggerRecord& out);

// pv.send.<channel>, written by the dispatcher, read by the workers:
// {"v":1,"send_id","trigger_id","project","campaign_id","channel","provider","fallback_provider"?,
//  "attempt","created_at","received_at"?,"locale","to":{<contact field>,"external_id"},
//  "content":{<fields>...,"badge"?,"data"?}}
struct SendContent {
  const std::map<std::string, std::string>* fields = nullptr;  // the rendered fields, by name
  const std::map<std::string, std::string>* data = nullptr;    // push: written (possibly {}); else null
  std::optional<long long> badge;                              // push only
};

struct SendOut {
  std::string_view send_id;
  std::string_view trigger_id;
  std::string_view project;
  std::string_view campaign_id;
  Channel channel = Channel::kEmail;
  std::string_view provider;
  std::string_view fallback_provider;  // empty: omitted
  int attempt = 1;
  std::string_view created_at;
  std::string_view received_at;  // the trigger's; empty: omitted
  std::string_view locale;
  std::string_view address;  // to.<ContactField(channel)>
  std::string_view external_id;
  SendContent content;
};

// Content fields are written from, reply_to, subject, title, body, html, text, sound first, the rest
// in name order.
void AppendSend(std::string& out, const SendOut& send);

// A send as a worker decodes it (ParseSend). Neither copied nor moved: `doc` points into the object.
struct Send {
  Send() = default;
  Send(const Send&) = delete;
  Send& operator=(const Send&) = delete;

  // The record's value, unchanged: the delay ladder and the DLQ carry it as is. In `pool`.
  std::string_view value;
  std::string_view key;  // the record's key (to.external_id). In `pool`.
  // What `doc` was parsed from, in place: a second copy of the value, whose strings `doc`'s point
  // into. In `pool` too.
  std::string_view parsed;
  // `doc`'s allocator, which also holds `value` and `parsed`. Its first chunk lives in this object, so
  // that a send of up to ~1.5 KiB allocates nothing but the object itself (RapidJSON's default 64 KiB
  // chunk made every send's free consolidate the heap; the two copies in strings of their own cost
  // two allocations and two frees more per send).
  static constexpr std::size_t kPoolBytes = 4096;
  alignas(8) char pool_chunk[kPoolBytes];
  rapidjson::MemoryPoolAllocator<> pool{pool_chunk, kPoolBytes, 4096};
  // The parse stack (freed after each parse) shares one stateless allocator instead of creating its
  // own per send, and starts below 1 KiB: glibc consolidates its fast bins before larger requests.
  static inline rapidjson::CrtAllocator stack_allocator;
  rapidjson::Document doc{&pool, 768, &stack_allocator};
  // The fields below point into `parsed` (decoded in place): they live as long as this object, and
  // copying none of them saves ten strings' construction and destruction per send (callgrind).
  std::string_view send_id;
  std::string_view trigger_id;
  std::string_view project;
  std::string_view campaign_id;
  std::string_view channel;  // "email" | "text" | "push"
  std::string_view provider;
  std::string_view fallback_provider;  // empty: none
  // When ingest received the trigger (the record's received_at; absent in records from before it was
  // carried): the start of pv_send_latency_seconds.
  std::optional<std::chrono::system_clock::time_point> received_at;
  int attempt = 1;               // the value's "attempt" (a worker overrides it from the pv-attempt header)
  std::string_view address;      // to.email, to.phone or to.device_token, by channel
  std::string_view external_id;  // to.external_id
  const rapidjson::Value* to = nullptr;       // into doc
  const rapidjson::Value* content = nullptr;  // into doc

  // A string member of content, or "" when absent or not a string.
  std::string_view ContentString(std::string_view name) const;
  const rapidjson::Value* ContentMember(std::string_view name) const;

  // The record's own text of a string of `doc` (its escapes as written, quotes left out), or nullopt
  // when `s` does not point into `parsed` (a string from elsewhere, an empty one).
  std::optional<std::string_view> RawString(std::string_view s) const;
  // The record's own text of `v`, an object of `doc` with at least one member, from '{' to '}'; nullopt
  // for anything else, and for text that holds a line break between its tokens (records in a
  // line-per-record file must stay on their line).
  std::optional<std::string_view> RawObject(const rapidjson::Value& v) const;
  // AppendJsonString(out, s), copied from the record's text when `s` is one of doc's strings: the
  // bodies that pass a record's strings on skip re-escaping them (html and text: most of a send's bytes).
  void AppendString(std::string& out, std::string_view s) const;
  // AppendString of a string member of content ("" when absent or not a string).
  void AppendContentString(std::string& out, std::string_view name) const;
  // AppendJson(out, v), copied from the record's text when RawObject has it.
  void AppendObject(std::string& out, const rapidjson::Value& v) const;
};

// Parses a send record of `channel`. On failure returns nullptr and says why in `error`; the
// returned object (when send_id could be read) still goes in `partial` so that the failure can be
// reported with its ids.
std::shared_ptr<Send> ParseSend(std::string_view value, std::string_view key, Channel channel,
                                std::string& error, std::shared_ptr<Send>* partial = nullptr);

// pv.events, written by the dispatcher (queued, deferred, suppressed, failed), the workers (sent,
// retrying, dead, deduped, deferred) and the feedback pipeline (receipt statuses); read by the
// status feeder. Fields in this order, an empty optional one omitted:
// {"v":1,"send_id","trigger_id","project"?,"campaign_id","channel","status","provider",
//  "provider_message_id"?,"error_code"?,"error"?,"attempt"?,"receipt_id"?,"occurred_at"?,
//  "reason"?,"suppression_reason"?,"suppressed_at"?,"due_at"?,"at"}
struct EventRecord {
  std::string_view send_id;
  std::string_view trigger_id;
  std::string_view project;  // the dispatcher's events only: the status store's project scoping
  std::string_view campaign_id;
  std::string_view channel;
  std::string_view status;
  std::string_view provider;
  std::string_view provider_message_id;
  std::string_view error_code;
  std::string_view error;
  std::optional<int> attempt;           // workers: the attempt the event is about
  std::string_view receipt_id;          // feedback: the receipt it comes from
  std::string_view occurred_at;         // feedback: when the provider says it happened
  std::string_view reason;              // suppressed: user | address
  std::string_view suppression_reason;  // suppressed: bounce, complaint, ... (SuppressionWhy)
  std::string_view suppressed_at;       // suppressed: when recorded
  std::string_view due_at;              // deferred by the dispatcher: the window's opening
  std::string_view at;
};

// An event about `send`: its send_id, trigger_id, campaign_id and channel set.
EventRecord EventFor(const Send& send);

void AppendEvent(std::string& out, const EventRecord& event);
// False when `value` is not a JSON object. Fields of the wrong type read as absent.
bool ParseEvent(rapidjson::Document& doc, std::string_view value, EventRecord& out);
// The same parsed in place (ParseRecordInPlace): `out`'s fields point into `value`, which it changes.
bool ParseEventInPlace(rapidjson::Document& doc, std::string& value, EventRecord& out);

// pv.receipts, written by ingest's receipt endpoints, read by the feedback pipeline
// (docs/architecture.md "Receipt"): {"v":1, every non-empty field below in this order, "received_at"?}
struct ReceiptRecord {
  std::string receipt_id;  // "sendgrid:<sg_event_id>", "twilio:<MessageSid>:<status>", "twilio:<MessageSid>"
  std::string provider_type;  // sendgrid | twilio
  std::string provider;       // the account name in receipts.* that verified it
  // delivered | bounced | undelivered | provider_deferred | complained | unsubscribed | stop | start
  std::string type;
  std::string send_id;  // SendGrid: custom_args.send_id (the worker sets it); empty otherwise
  std::string trigger_id;
  std::string campaign_id;
  std::string message_id;   // SendGrid's sg_message_id, Twilio's MessageSid
  std::string address;      // the email address or phone number the receipt is about
  std::string reason;       // the provider's words (bounce reason, dropped reason, keyword)
  std::string error_code;   // Twilio's ErrorCode, SendGrid's bounce status
  std::string occurred_at;  // RFC 3339, from the provider's timestamp when it gives one
};

void AppendReceipt(std::string& out, const ReceiptRecord& receipt, std::string_view received_at);
// False with `error` when `value` is not a receipt record: not a JSON object, no receipt_id, type or
// provider_type, a provider_type other than sendgrid or twilio, a type not listed above.
bool ParseReceipt(std::string_view value, ReceiptRecord& out, std::string& error);

// pv.dlq.<channel>, written by the dispatcher (a trigger it cannot process, a delay-ladder record it
// cannot release) and the workers (a send that failed for good), read by the feedback pipeline (dead
// pushes) and pvctl replay: the input record's key and value unchanged (the value left out when the
// record would be over the broker's size limit with it), why it failed in these headers. Other
// headers travel beside them (pv-target: where a replay puts the record back; pv-trigger-id, ...).
// (The `{}` initializers let a designated initializer name only some fields under -Wextra.)
struct DeadLetter {
  std::optional<std::string> error_code{};     // pv-error-code: a short machine name ("render_error")
  std::optional<std::string> error{};          // pv-error: the reason for a person
  std::optional<int> attempt{};                // pv-attempt: a worker's, the attempt that failed
  std::optional<std::string> provider{};       // pv-provider, when known
  std::optional<std::string> failed_at{};      // pv-failed-at (RFC 3339 UTC)
  std::optional<std::size_t> omitted_bytes{};  // pv-omitted-bytes: the value was left out; its size
};

// The headers of the fields that are set, in the order above.
std::vector<std::pair<std::string, std::string>> DeadLetterHeaders(const DeadLetter& dead_letter);

// Writes them into a record's `headers` (a vector of std::pair or of a {name, value} struct): a header
// already there by the same name gets the new value in place, the others are appended.
template <typename Headers>
void SetDeadLetterHeaders(Headers& headers, const DeadLetter& dead_letter) {
  for (auto& field : DeadLetterHeaders(dead_letter)) {  // not [name, value]: clang 14 cannot capture it
    auto same = std::find_if(headers.begin(), headers.end(), [&](const auto& header) {
      const auto& [n, v] = header;
      return n == field.first;
    });
    if (same == headers.end()) {
      headers.push_back({std::move(field.first), std::move(field.second)});
    } else {
      auto& [n, v] = *same;
      v = std::move(field.second);
    }
  }
}

// Reads them from a record's headers (kafka::Headers: the last of a name). A header that is absent, or
// a number that does not read as one (pv-attempt as ladder::ParseAttempt, a size as decimal digits),
// stays unset.
DeadLetter ParseDeadLetter(const std::map<std::string, std::string>& headers);

}  // namespace pv
