// What becomes of one send, decided without Kafka, Redis or a provider so that tests drive every row;
// the worker (worker.hpp) feeds it Redis's claim answers and providers' results, then settles and produces
// what it returns. Rows (docs/configuration-workers.md "What happens to a send", 4; events keyed by send_id):
//   sent      `sent` event; settle: mark the send sent (the provider accepted it)
//   deduped   `deduped` event with the earlier provider_message_id (already marked sent, or delivered
//             by this worker and read again: DeliveredMemory)
//   retrying  the send's value into the delay ladder (attempt + 1; pv-provider, pv-error-code,
//             pv-error) + `retrying` event: a transient or configuration error below max_attempts,
//             `in_flight_elsewhere` (claimed by another worker) and `not_configured` (no such provider
//             in this worker) included
//   deferred  the value into the ladder with the same attempt (pv-error-code rate_limited) + `deferred`
//             event: the provider's rate limit is further away than rate_limit_max_wait
//   dead      the value into pv.dlq.<channel> (pv-error-code, pv-error, pv-attempt, pv-provider,
//             pv-failed-at) + `dead` event: a permanent error (`unregistered`, ...), the attempt that
//             fails at max_attempts, or a record that is not a send (`invalid_record`: the record as
//             received, and no event when not even its send_id could be read)
// A failed attempt that holds a claim releases it before its records are produced. An attempt that
// ended in `unknown_outcome` is pinned to its provider: pv-pinned-provider rides on its ladder and
// dead-letter records. Tests: workers/test/outcome_test.cpp (one per row).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/records.hpp"
#include "pv/topics.hpp"
#include "pv/workers/backoff.hpp"
#include "pv/workers/errors.hpp"

namespace pv::workers {

// One Kafka record of an outcome (outcome_records.hpp fits and repairs them before and after producing).
struct OutcomeRecord {
  bool ladder = false;  // to the delay ladder (then `due`, `next_attempt`) or straight to `topic`
  std::string topic;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::system_clock::time_point due{};
  int next_attempt = 0;

  std::string_view Header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    return {};
  }
};

// The planner's view of one consumed record.
struct SendAttempt {
  std::shared_ptr<Send> send;  // null only for a record whose send_id could not be read
  std::string value;           // the record as received, for the dead letter when `send` is null
  std::string key;
  int attempt = 1;
  std::string provider_name;    // the provider chosen for this attempt ("" before the choice)
  std::string pinned_provider;  // see ErrorKind::kUnknownOutcome; every later attempt goes there
  bool claimed = false;         // holds an `inflight:` claim in Redis
};

enum class Settle {
  kNone,      // no claim is held: produce the records at once
  kMarkSent,  // mark the send sent, then produce
  kRelease,   // delete the claim (if still ours), then produce
};

struct Outcome {
  const char* status = "";  // sent | deduped | retrying | deferred | dead (pv_worker_sends_total)
  Settle settle = Settle::kNone;
  std::vector<OutcomeRecord> records;
};

class OutcomePlanner {
 public:
  using Time = std::chrono::system_clock::time_point;

  // `max_attempts`: the attempt that fails transiently at this number is dead.
  OutcomePlanner(Channel channel, int max_attempts, BackoffPolicy backoff);

  void Sent(const SendAttempt& a, std::string_view provider_message_id, Time now, Outcome& out) const;
  void Deduped(const SendAttempt& a, std::string_view provider_message_id, Time now, Outcome& out) const;
  void Deferred(const SendAttempt& a, std::chrono::milliseconds wait, Time now, Outcome& out) const;
  // `retrying` or `dead`; after `unknown_outcome` pins `a` to its provider.
  void Failed(SendAttempt& a, ErrorKind kind, std::string_view error,
              std::optional<std::chrono::milliseconds> retry_after, Time now, std::mt19937_64& rng,
              Outcome& out) const;
  // After outcome_records.hpp turned a `retrying` outcome's ladder record into the send's dead letter
  // (too large, or refused for good): the outcome is `dead` with the dead letter's reason. Returns that
  // dead letter, or null when the outcome did not change.
  const OutcomeRecord* RetryBecameDead(const SendAttempt& a, Outcome& out, Time now) const;

  const std::string& dead_letter_topic() const { return dlq_topic_; }

 private:
  static void Start(const char* status, Settle settle, Outcome& out);
  void Event(const SendAttempt& a, std::string_view message_id, std::string_view error_code,
             std::string_view error, Time now, Outcome& out) const;

  int max_attempts_;
  BackoffPolicy backoff_;
  std::string dlq_topic_;
};

}  // namespace pv::workers
