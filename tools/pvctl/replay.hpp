// pvctl replay: the parts of a replay that decide, without a broker (filters, the value rewrite, the
// name under which progress is saved), so the unit tests exercise exactly what the command runs.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace pv::pvctl {

// Which records of the source topic are replayed. Empty sets and absent times match everything.
struct ReplayFilter {
  std::set<std::string> campaigns;    // --campaign 44[,45]: the value's campaign_id
  std::set<std::string> error_codes;  // --error-code C[,D]: header pv-error-code
  // --since / --until (RFC 3339): since <= t < until, t = header pv-failed-at, else the record's
  // Kafka timestamp (a send topic has no pv-failed-at).
  std::optional<std::chrono::system_clock::time_point> since;
  std::optional<std::chrono::system_clock::time_point> until;

  // A stable text of the filter (sorted sets, normalised times): two runs with the same filter share
  // their saved position.
  std::string Canonical() const;
};

// What the filter looks at in one record.
struct ReplayRecord {
  std::string_view value;
  std::optional<std::string> error_code;  // header pv-error-code
  std::optional<std::string> failed_at;   // header pv-failed-at
  std::int64_t timestamp_ms = -1;         // the record's Kafka timestamp; -1 when absent
};

enum class ReplayVerdict { kMatch, kFiltered, kUnreadable };

// kUnreadable: the value is not a JSON object (cannot be re-published with attempt reset).
ReplayVerdict Evaluate(const ReplayFilter& filter, const ReplayRecord& record);

// The value with its top-level "attempt" set to 1, every other member unchanged and in order; a value
// without "attempt" (a trigger the dispatcher dead-lettered) unchanged. nullopt when the value is not
// a JSON object.
std::optional<std::string> ResetAttempt(std::string_view value);

// The default target: pv.dlq.<suffix> and pv.send.<suffix> go to pv.send.<suffix>; "" otherwise.
std::string DefaultReplayTarget(std::string_view from);

// The consumer group that holds a replay's position: pvctl-replay-<from>-<first 12 hex of
// SHA-256(to + filter)>. --limit and --dry-run are not part of it: a limited run is resumed by the
// same command, and a dry run saves nothing.
std::string ReplayGroup(std::string_view from, std::string_view to, const ReplayFilter& filter);

}  // namespace pv::pvctl
