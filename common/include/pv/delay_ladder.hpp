// The delay ladder: topics pv.delay.<tier> (default 5s, 30s, 2m, 10m, 1h) hold records that must
// reach a target topic later (a send deferred to a send window, a retry after backoff).
//
// A record's value is the original value, unchanged; metadata travels in headers:
//   pv-due-at   RFC 3339 UTC time at which the record is due at its target
//   pv-target   the topic it goes to when due (e.g. pv.send.email)
//   pv-attempt  the delivery attempt it will be at its target (workers' retries)
// and, on DLQ records, pv-error-code, pv-error, pv-failed-at (plus pv-provider, and pv-omitted-bytes
// on a dead letter whose value was left out because the record would have been over the size limit).
// pv-pinned-provider, on a worker's retry, names the provider an earlier attempt may have reached
// (its outcome unknown): every later attempt of that send goes there, never to a fallback.
//
// Each tier holds one delay: a record produced to tier T at time t is released at
// min(due, t + T). Since every record of a tier waits the same time, its head is always the next to
// release: no head-of-line blocking, and the scheduler can pause a partition until its head is due.
// A long wait enters the largest tier not past the due time and hops down on release.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pv/kafka.hpp"

namespace pv::ladder {

inline constexpr const char* kDueAt = "pv-due-at";
inline constexpr const char* kTarget = "pv-target";
inline constexpr const char* kAttempt = "pv-attempt";
inline constexpr const char* kErrorCode = "pv-error-code";
inline constexpr const char* kError = "pv-error";
inline constexpr const char* kFailedAt = "pv-failed-at";
inline constexpr const char* kProvider = "pv-provider";
// On a dead letter without its value (it would have been over the size limit): the value's size.
inline constexpr const char* kOmittedBytes = "pv-omitted-bytes";
inline constexpr const char* kPinnedProvider = "pv-pinned-provider";

struct Tier {
  std::string name;  // "30s"
  std::chrono::milliseconds delay;
  std::string topic;  // "pv.delay.30s"
};

// Parses names such as "5s", "30s", "2m", "10m", "1h" (ms, s, m, h units); sorted shortest first.
// Throws std::invalid_argument naming a bad entry.
std::vector<Tier> ParseTiers(const std::vector<std::string>& names);

// pv-attempt as Schedule writes it: decimal digits for 1 to INT_MAX. nullopt for anything else ("",
// "0", "-1", "2x", " 2", out of range), so every reader treats a bad header the same way.
std::optional<int> ParseAttempt(std::string_view text);

// The tier to hold a record due `remaining` from now: the largest tier whose delay does not pass
// the due time; the shortest tier when even that is longer (release is then at the due time).
const Tier& ChooseTier(std::span<const Tier> tiers, std::chrono::milliseconds remaining);

// When a record held in `tier` since `produced_at` (its Kafka timestamp) is to be released.
std::chrono::system_clock::time_point ReleaseTime(const Tier& tier,
                                                  std::chrono::system_clock::time_point produced_at,
                                                  std::chrono::system_clock::time_point due);

// Produces `value` to the tier chosen for `due`, with the ladder headers plus `extra` headers.
// Delivery is reported to `group` like any produce.
rd_kafka_resp_err_t Schedule(kafka::Producer& producer, std::span<const Tier> tiers, std::string_view target,
                             std::string_view key, std::string_view value,
                             std::chrono::system_clock::time_point due, int attempt,
                             std::span<const kafka::Header> extra,
                             const std::shared_ptr<kafka::DeliveryGroup>& group,
                             std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace pv::ladder
