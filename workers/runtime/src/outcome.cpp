#include "pv/workers/outcome.hpp"

#include <fmt/format.h>

#include "pv/delay_ladder.hpp"
#include "pv/json.hpp"

namespace pv::workers {
namespace {

// The pv.events value of `send`'s attempt `attempt` through `provider` (pv/records.hpp).
std::string EventOf(const Send& send, std::string_view status, std::string_view provider, int attempt,
                    std::string_view provider_message_id, std::string_view error_code, std::string_view error,
                    std::chrono::system_clock::time_point at) {
  std::string at_text = FormatTimestamp(at);
  EventRecord e = EventFor(send);
  e.status = status;
  e.provider = provider;
  e.provider_message_id = provider_message_id;
  e.error_code = error_code;
  e.error = error;
  e.attempt = attempt;
  e.at = at_text;
  std::string out;
  AppendEvent(out, e);
  return out;
}

}  // namespace

OutcomePlanner::OutcomePlanner(Channel channel, int max_attempts, BackoffPolicy backoff)
    : max_attempts_(max_attempts), backoff_(backoff), dlq_topic_(topics::DeadLetter(channel)) {}

// The outcome's pv.events record.
void OutcomePlanner::Event(const SendAttempt& a, std::string_view message_id, std::string_view error_code,
                           std::string_view error, Time now, Outcome& out) const {
  OutcomeRecord& event = out.records.emplace_back();
  event.topic = std::string(topics::kEvents);
  event.value = EventOf(*a.send, out.status, a.provider_name, a.attempt, message_id, error_code, error, now);
}

// A new outcome replaces whatever an earlier one (of an earlier claim or attempt) left.
void OutcomePlanner::Start(const char* status, Settle settle, Outcome& out) {
  out.status = status;
  out.settle = settle;
  out.records.clear();
}

void OutcomePlanner::Sent(const SendAttempt& a, std::string_view provider_message_id, Time now,
                          Outcome& out) const {
  Start("sent", Settle::kMarkSent, out);
  Event(a, provider_message_id, {}, {}, now, out);
}

void OutcomePlanner::Deduped(const SendAttempt& a, std::string_view provider_message_id, Time now,
                             Outcome& out) const {
  Start("deduped", Settle::kNone, out);
  Event(a, provider_message_id, {}, {}, now, out);
}

void OutcomePlanner::Deferred(const SendAttempt& a, std::chrono::milliseconds wait, Time now,
                              Outcome& out) const {
  Start("deferred", Settle::kNone, out);  // a rate-limited claim is not taken
  OutcomeRecord& again = out.records.emplace_back();
  again.ladder = true;
  again.value = a.send->value;
  again.due = now + wait;
  again.next_attempt = a.attempt;  // waiting for a rate limit is not a failed attempt
  again.headers = {{ladder::kProvider, a.provider_name}, {ladder::kErrorCode, "rate_limited"}};
  if (!a.pinned_provider.empty()) again.headers.emplace_back(ladder::kPinnedProvider, a.pinned_provider);
  std::string why = fmt::format("provider rate limit: next slot in {} ms", wait.count());
  Event(a, {}, "rate_limited", why, now, out);
}

void OutcomePlanner::Failed(SendAttempt& a, ErrorKind kind, std::string_view error,
                            std::optional<std::chrono::milliseconds> retry_after, Time now,
                            std::mt19937_64& rng, Outcome& out) const {
  ErrorClass error_class = ClassOf(kind);
  std::string_view code = ErrorKindName(kind);
  bool dead = DispositionOf(error_class) == Disposition::kDeadLetter || a.attempt >= max_attempts_;
  if (kind == ErrorKind::kUnknownOutcome && a.pinned_provider.empty()) a.pinned_provider = a.provider_name;
  Start(dead ? "dead" : "retrying", a.claimed ? Settle::kRelease : Settle::kNone, out);
  OutcomeRecord& record = out.records.emplace_back();
  if (dead) {
    record.topic = dlq_topic_;
    record.value = a.send ? a.send->value : a.value;
    SetDeadLetterHeaders(record.headers, {.error_code = std::string(code),
                                          .error = std::string(error),
                                          .attempt = a.attempt,
                                          .provider = a.provider_name,
                                          .failed_at = FormatTimestamp(now)});
  } else {
    record.ladder = true;
    record.value = a.send->value;
    record.due = now + RetryDelay(backoff_, a.attempt, retry_after, rng);
    record.next_attempt = a.attempt + 1;
    record.headers = {{ladder::kProvider, a.provider_name},
                      {ladder::kErrorCode, std::string(code)},
                      {ladder::kError, std::string(error)}};
  }
  if (!a.pinned_provider.empty()) record.headers.emplace_back(ladder::kPinnedProvider, a.pinned_provider);
  if (a.send) {
    Event(a, {}, code, error, now, out);
  }
}

const OutcomeRecord* OutcomePlanner::RetryBecameDead(const SendAttempt& a, Outcome& out, Time now) const {
  if (std::string_view(out.status) != "retrying" || !a.send) return nullptr;
  const OutcomeRecord* dead_letter = nullptr;
  for (const OutcomeRecord& record : out.records) {
    if (record.ladder) return nullptr;
    if (record.topic == dlq_topic_) dead_letter = &record;
  }
  if (dead_letter == nullptr) return nullptr;
  out.status = "dead";
  for (OutcomeRecord& record : out.records) {
    if (record.topic != topics::kEvents) continue;
    DeadLetter why = ParseDeadLetter({dead_letter->headers.begin(), dead_letter->headers.end()});
    record.value = EventOf(*a.send, out.status, a.provider_name, a.attempt, {}, why.error_code.value_or(""),
                           why.error.value_or(""), now);
  }
  return dead_letter;
}

}  // namespace pv::workers
