// Delivery feedback, decided without Kafka or Redis so that tests drive every row: what one receipt
// (pv.receipts, written by ingest's receipt endpoints) or one dead push (pv.dlq.push with
// pv-error-code unregistered) does. The feedback pipeline (feedback_pipeline.cpp, in the dispatcher
// process) feeds it records and the send each receipt belongs to, and applies what it returns.
//
//   receipt type        event (pv.events)    suppression (reason)            needs its send
//   delivered           delivered            -                               yes
//   bounced             bounced              address (bounce)                yes
//   undelivered         undelivered          -                               yes
//   provider_deferred   provider_deferred    -                               yes
//   complained          complained           address (complaint)             yes
//   unsubscribed        unsubscribed         address (unsubscribe)           yes
//   stop (SMS)          -                    phone (stop)                    no
//   start (SMS)         -                    lifts a phone's stop            no
//   dead push, unregistered  -               device token (unregistered)     (the record is the send)
//
// A receipt that needs its send and has none (SendGrid without custom_args.send_id, a Twilio message id
// the workers did not record or whose record expired) is `unknown_send`: no event, no suppression,
// counted. Each reason can be turned off (feedback.suppress.<reason>); the event is produced anyway.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "pv/dispatcher/suppression.hpp"
#include "pv/records.hpp"
#include "pv/sent_message.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {

struct SuppressionReasons {
  bool bounce = true;
  bool complaint = true;
  bool unsubscribe = true;
  bool stop = true;  // also whether START lifts a stop
  bool unregistered = true;
};

// The send of a receipt: from the receipt itself (SendGrid), else from the recorded message (Twilio).
std::optional<SentMessage> SendOfReceipt(const ReceiptRecord& receipt,
                                         const std::optional<SentMessage>& recorded);

enum class FeedbackResult { kApplied, kUnknownSend, kInvalid };
std::string_view FeedbackResultName(FeedbackResult result);

struct FeedbackAction {
  FeedbackResult result = FeedbackResult::kInvalid;
  Channel channel = Channel::kEmail;
  std::string status;           // the event's status; empty: no event
  std::string send_id;          // the event's key
  std::string provider;         // for metrics
  std::string event;            // the pv.events value
  std::string suppress_member;  // empty: none
  std::string suppress_reason;
  std::string suppress_why;  // SuppressionWhyJson
  std::string lift_member;   // an SMS START: lift this member's stop
};

// `send` is SendOfReceipt's answer.
FeedbackAction DecideReceipt(const ReceiptRecord& receipt, const std::optional<SentMessage>& send,
                             const SuppressionReasons& reasons, std::chrono::system_clock::time_point now);

// A dead-letter record of pv.dlq.push (its value is the send record): the device token is suppressed
// when its error code is `unregistered` (FCM UNREGISTERED, APNs 410 / BadDeviceToken). Anything else:
// kInvalid with nothing to do (the pipeline skips it).
FeedbackAction DecideDeadPush(std::string_view error_code, std::string_view value,
                              const SuppressionReasons& reasons, std::chrono::system_clock::time_point now);

}  // namespace pv::dispatcher
