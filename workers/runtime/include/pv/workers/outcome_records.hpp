// Outcome records the broker can never take (pv/produce_errors.hpp), for the worker: nothing is
// re-produced forever, so a send's offset always moves on.
//
// Before producing (FitOutcomeRecords), sizes are checked with every header, the ladder's included:
//   a retry record (to the delay ladder) over message.max.bytes -> the send's dead letter instead
//     (pv-error-code retry_too_large); the send would be refused at every later attempt anyway;
//   a dead letter over it -> without its value (pv-omitted-bytes: the value's size).
// After the broker refused one of a job's records for good (OnOutcomeRefused; the group reports only
// its first error, not which record), the next shape, each tried once:
//   1. a retry record among them -> the send's dead letter instead (pv-error-code produce_<reason>);
//   2. else a dead letter that still has its value, refused for size -> the dead letter without it;
//   3. else give up: the caller logs, counts (pv_worker_outcome_skipped_total) and finishes the job.
// So a job's outcome is produced at most three times for errors that can never succeed; errors that
// may pass later (an outage) are retried as before.
//
// Templates over the worker's record type (OutcomeRecord in outcome.hpp: ladder, topic, value, headers, due,
// next_attempt) so that they stay out of worker.cpp. Tests: workers/test/outcome_records_test.cpp.
#pragma once

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/delay_ladder.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "pv/records.hpp"

namespace pv::workers {

namespace outcome_internal {

// The retry record `out` becomes the send's dead letter, for `code` / `error`.
template <typename Output>
void ToDeadLetter(Output& out, const std::string& dead_letter_topic, std::string code, std::string error,
                  std::chrono::system_clock::time_point now) {
  out.ladder = false;
  out.topic = dead_letter_topic;
  SetDeadLetterHeaders(out.headers, {.error_code = std::move(code),
                                     .error = std::move(error),
                                     .attempt = out.next_attempt > 1 ? out.next_attempt - 1 : 1,
                                     .failed_at = FormatTimestamp(now)});
}

template <typename Output>
void OmitValue(Output& out) {
  SetDeadLetterHeaders(out.headers, {.omitted_bytes = out.value.size()});
  out.value.clear();
}

}  // namespace outcome_internal

// `send_topic`: the target of retry records (the ladder adds pv-due-at, pv-target, pv-attempt).
template <typename Output>
void FitOutcomeRecords(std::vector<Output>& outputs, std::string_view key, std::size_t max_record_bytes,
                       const std::string& send_topic, const std::string& dead_letter_topic,
                       std::chrono::system_clock::time_point now) {
  if (max_record_bytes == 0) return;
  for (Output& out : outputs) {
    if (out.ladder) {
      std::size_t size = kafka::RecordBytesOf(key, out.value, out.headers) +
                         kafka::HeaderBytes(ladder::kDueAt, FormatTimestamp(out.due)) +
                         kafka::HeaderBytes(ladder::kTarget, send_topic) +
                         kafka::HeaderBytes(ladder::kAttempt, std::to_string(out.next_attempt));
      if (size <= max_record_bytes) continue;
      outcome_internal::ToDeadLetter(
          out, dead_letter_topic, "retry_too_large",
          fmt::format("the retry record is {} bytes with its headers, over message.max.bytes ({})", size,
                      max_record_bytes),
          now);
    }
    if (out.topic == dead_letter_topic && !out.value.empty() &&
        kafka::RecordBytesOf(key, out.value, out.headers) > max_record_bytes) {
      outcome_internal::OmitValue(out);
    }
  }
}

enum class RefusedOutcome {
  kRecordAgain,  // the outputs were changed: produce them again
  kGiveUp,       // nothing left to try: finish the job without them
};

// After `err`, an error that can never succeed (kafka::ProduceErrorClass::kNeverSucceeds).
template <typename Output>
RefusedOutcome OnOutcomeRefused(std::vector<Output>& outputs, rd_kafka_resp_err_t err,
                                const std::string& dead_letter_topic,
                                std::chrono::system_clock::time_point now) {
  kafka::ProduceFailure failure = kafka::ProduceFailureOf(err);
  bool changed = false;
  for (Output& out : outputs) {
    if (!out.ladder) continue;
    outcome_internal::ToDeadLetter(out, dead_letter_topic,
                                   fmt::format("produce_{}", kafka::ProduceFailureName(failure)),
                                   kafka::DescribeProduceError("the delay ladder", err), now);
    changed = true;
  }
  if (changed) return RefusedOutcome::kRecordAgain;
  if (failure == kafka::ProduceFailure::kTooLarge) {
    for (Output& out : outputs) {
      if (out.topic != dead_letter_topic || out.value.empty()) continue;
      outcome_internal::OmitValue(out);
      changed = true;
    }
  }
  return changed ? RefusedOutcome::kRecordAgain : RefusedOutcome::kGiveUp;
}

}  // namespace pv::workers
