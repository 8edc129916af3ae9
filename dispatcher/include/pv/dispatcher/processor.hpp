// What the dispatcher does with one trigger, decided without Kafka or Redis so that tests can drive it:
// resolve the campaign, render the template chosen by locale, apply suppression and the send window,
// and describe the records to produce. The service (dispatcher.hpp) feeds it consumed records and
// suppression answers and produces what it returns.
//
// Outcomes and the records they produce (every event is keyed by send_id):
//   send        pv.send.<channel> (key external_id) + `queued` event
//   defer       the trigger, unchanged, into the delay ladder with target pv.triggers, due at the
//               window's next opening (it is processed again then) + `deferred` event with due_at
//   suppressed  `suppressed` event only: reason user|address (which member matched),
//               suppression_reason (bounce, complaint, unsubscribe, stop, unregistered, manual,
//               unknown) and suppressed_at when recorded
//   failed      the trigger, unchanged, into pv.dlq.<channel> with pv-error-code/pv-error headers
//               + `failed` event. Permanent: a render error, an unknown/deleted/disabled campaign, a
//               user without the channel's address, a send or deferred trigger that would be over the
//               size limit (send_too_large, deferred_too_large), or an output the broker refused for
//               good (produce_<reason>, via Failure).
//
// Sizes (ProcessorOptions::max_record_bytes, the producer's message.max.bytes) are checked with every
// header, the ladder's included (kafka::RecordBytes), before anything is produced: a send or deferred
// trigger over the limit becomes `failed`; a dead letter over the limit goes without its value (empty,
// with pv-omitted-bytes: the value's size), since an operator needs the reason and the trigger id more
// than a record that cannot exist. pvctl replay counts such a record as unreadable.
//   drop        nothing (a record that is not a trigger at all: no id, no way to tell the channel);
//               logged with its offset.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pv/dispatcher/renderer.hpp"
#include "pv/dispatcher/send_window.hpp"
#include "pv/dispatcher/suppression.hpp"
#include "pv/records.hpp"

namespace pv::dispatcher {

struct ProcessorOptions {
  MissingVariables missing_variables = MissingVariables::kEmpty;
  std::string triggers_topic = "pv.triggers";  // where a deferred trigger returns when due
  std::string events_topic = "pv.events";
  size_t max_record_bytes = 0;  // the producer's message.max.bytes; 0: not checked
};

// A consumed trigger, parsed (pv::ParseTrigger). The string views point into `doc` (or the record's
// value).
struct ParsedTrigger {
  ParsedTrigger() = default;
  // Parses into `pool` (shared by a batch's triggers, which must outlive it) instead of a pool of its
  // own: a Document of its own allocates its allocator and a 64 KiB chunk per trigger.
  explicit ParsedTrigger(rapidjson::MemoryPoolAllocator<>* pool) : doc(pool) {}

  rapidjson::Document doc;
  std::string_view value;  // the record as consumed (kept by the caller while in flight)
  TriggerRecord record;
  std::string_view trigger_id;  // = record's: the ids every outcome names
  std::string_view project;
  std::string_view campaign_id;
  std::string_view external_id;
  std::string_view address;  // email, phone or device token, per the campaign's channel
  const CompiledCampaign* campaign = nullptr;
  bool has_channel = false;
  Channel channel = Channel::kEmail;
  std::string send_id;
  // Set when the trigger cannot be sent: "invalid_trigger", "unknown_campaign", "campaign_deleted",
  // "campaign_disabled", "missing_address".
  std::string error_code;
  std::string error;

  bool ok() const { return error_code.empty(); }
  // Suppression applies to triggers that could be sent.
  bool NeedsSuppressionCheck() const { return ok(); }
};

enum class Action { kSend, kDefer, kSuppressed, kFailed, kDrop };

struct Header {
  std::string name;
  std::string value;
};

struct OutputRecord {
  std::string topic;  // for a ladder record: its target
  std::string key;
  std::string value;
  std::vector<Header> headers;
  bool via_ladder = false;  // produce with ladder::Schedule(due) instead of directly
  TimePoint due{};
};

struct Outcome {
  Action action = Action::kDrop;
  Channel channel = Channel::kEmail;
  std::string send_id;
  std::string error_code;  // kFailed, kDrop
  std::string error;
  std::optional<TimePoint> due;  // kDefer
  std::chrono::nanoseconds render_time{0};
  std::vector<std::string> missing_variables;
  std::vector<OutputRecord> records;
};

class TriggerProcessor {
 public:
  explicit TriggerProcessor(ProcessorOptions options) : options_(std::move(options)) {}

  // Parses `value` (which must outlive `out`) and resolves its campaign in `catalog`.
  void Parse(std::string_view value, const CompiledCatalog& catalog, ParsedTrigger& out) const;

  // Decides and builds the records. `key` is the consumed record's key (external_id).
  // `why`: the recorded reason of a suppression (the `suppressed` event names it; "unknown" without).
  Outcome Decide(const ParsedTrigger& trigger, std::string_view key, Suppressed suppressed, TimePoint now,
                 const SuppressionWhy* why = nullptr);

  // The permanent-failure outcome (DLQ + `failed` event) for a reason found outside Decide, such as an
  // output the broker refused for good. `omit_value`: the dead letter goes without the trigger (the
  // broker refused it for size although it was under max_record_bytes: a topic's smaller limit).
  Outcome Failure(const ParsedTrigger& trigger, std::string_view key, std::string code, std::string error,
                  TimePoint now, bool omit_value = false) {
    return Fail(trigger, key, std::move(code), std::move(error), now, omit_value);
  }
  // The size of `record` on the wire, with the headers the delay ladder adds to it (kafka::RecordBytes).
  static size_t RecordSize(const OutputRecord& record);

 private:
  Outcome Fail(const ParsedTrigger& trigger, std::string_view key, std::string code, std::string error,
               TimePoint now, bool omit_value = false);
  Outcome TooLargeFailure(const ParsedTrigger& trigger, std::string_view key, std::string code,
                          std::string_view what, const OutputRecord& record, const Outcome& decided,
                          TimePoint now);
  // Decide's outcome `out` (rendered) deferred to the send window's `opening`.
  Outcome Defer(const ParsedTrigger& trigger, std::string_view key, TimePoint opening, Outcome out,
                TimePoint now);
  bool TooLarge(const OutputRecord& record) const {
    return options_.max_record_bytes > 0 && RecordSize(record) > options_.max_record_bytes;
  }
  // The record (events topic, keyed by send id) of `trigger`'s event with `event`'s status and details.
  OutputRecord Event(const ParsedTrigger& trigger, EventRecord event, TimePoint now);
  const std::string& NowText(TimePoint now);

  ProcessorOptions options_;
  ZoneCache zones_;
  TimePoint now_{};
  std::string now_text_;
  // Reused between triggers (they keep their capacity): no reallocation while writing a record.
  std::string send_buffer_;
  // The rendered fields of the trigger being decided: kept from one trigger to the next so that
  // their map nodes and strings are reused (Render rewrites them in place).
  Content content_;
  std::string event_buffer_;
};

}  // namespace pv::dispatcher
