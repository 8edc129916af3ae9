// Outcome records the broker can never take (pv/workers/outcome_records.hpp): the retry record becomes a
// dead letter, a dead letter over the size limit goes without its value, and the third refusal gives up.
#include "pv/workers/outcome_records.hpp"

#include <gtest/gtest.h>

#include <map>

namespace pv::workers {
namespace {

// The shape of Worker::Job::Output.
struct Output {
  bool ladder = false;
  std::string topic;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::system_clock::time_point due{};
  int next_attempt = 0;
};

const auto kNow = *ParseTimestamp("2026-12-02T10:00:00Z");

std::map<std::string, std::string> Headers(const Output& o) {
  return {o.headers.begin(), o.headers.end()};
}

std::vector<Output> RetryOutcome(size_t value_bytes) {
  Output retry;
  retry.ladder = true;
  retry.value = std::string(value_bytes, 's');
  retry.due = kNow + std::chrono::seconds(30);
  retry.next_attempt = 3;
  retry.headers = {{ladder::kProvider, "smtp"}, {ladder::kErrorCode, "timeout"}, {ladder::kError, "slow"}};
  Output event;
  event.topic = "pv.events";
  event.value = R"({"status":"retrying"})";
  return {retry, event};
}

TEST(OutcomeRecords, ARetryRecordOverTheLimitBecomesTheDeadLetter) {
  auto outputs = RetryOutcome(5000);
  FitOutcomeRecords(outputs, "u-1", 100000, "pv.send.email", "pv.dlq.email", kNow);
  EXPECT_TRUE(outputs[0].ladder);  // fits: unchanged

  FitOutcomeRecords(outputs, "u-1", 5100, "pv.send.email", "pv.dlq.email", kNow);
  ASSERT_FALSE(outputs[0].ladder);
  EXPECT_EQ(outputs[0].topic, "pv.dlq.email");
  auto h = Headers(outputs[0]);
  EXPECT_EQ(h[ladder::kErrorCode], "retry_too_large");
  EXPECT_NE(h[ladder::kError].find("over message.max.bytes (5100)"), std::string::npos) << h[ladder::kError];
  EXPECT_EQ(h[ladder::kAttempt], "2");  // the attempt that failed
  EXPECT_EQ(h[ladder::kProvider], "smtp");
  EXPECT_EQ(h[ladder::kFailedAt], "2026-12-02T10:00:00.000Z");
  // The dead letter's headers (the reason, the time) are longer than the ladder's: too large as well,
  // it goes without the send.
  EXPECT_EQ(outputs[0].value, "");
  EXPECT_EQ(h[ladder::kOmittedBytes], "5000");
  EXPECT_EQ(outputs[1].topic, "pv.events");

  // Room for the dead letter but not for the retry record: the dead letter keeps the send. (A long
  // provider error in the retry's headers is replaced by the shorter reason.)
  auto roomy = RetryOutcome(5000);
  roomy[0].headers[2].second = std::string(400, 'e');
  FitOutcomeRecords(roomy, "u-1", 5400, "pv.send.email", "pv.dlq.email", kNow);
  EXPECT_EQ(roomy[0].topic, "pv.dlq.email");
  EXPECT_EQ(roomy[0].value.size(), 5000U);
  EXPECT_EQ(Headers(roomy[0]).count(ladder::kOmittedBytes), 0U);
}

TEST(OutcomeRecords, RefusalsForGoodEndAfterThreeShapes) {
  auto outputs = RetryOutcome(100);
  // 1: the ladder refused (e.g. pv.delay.30s missing): the send's dead letter instead.
  ASSERT_EQ(OnOutcomeRefused(outputs, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "pv.dlq.email", kNow),
            RefusedOutcome::kRecordAgain);
  EXPECT_EQ(outputs[0].topic, "pv.dlq.email");
  EXPECT_EQ(Headers(outputs[0])[ladder::kErrorCode], "produce_unknown_topic");
  // 2: the dead letter refused for size: without its value.
  ASSERT_EQ(OnOutcomeRefused(outputs, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "pv.dlq.email", kNow),
            RefusedOutcome::kRecordAgain);
  EXPECT_EQ(outputs[0].value, "");
  // 3: refused again: give up.
  EXPECT_EQ(OnOutcomeRefused(outputs, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "pv.dlq.email", kNow),
            RefusedOutcome::kGiveUp);

  // A dead letter refused as unauthorized, or a lone event: nothing else to try.
  Output dlq;
  dlq.topic = "pv.dlq.email";
  dlq.value = "v";
  std::vector<Output> dead = {dlq};
  EXPECT_EQ(OnOutcomeRefused(dead, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, "pv.dlq.email", kNow),
            RefusedOutcome::kGiveUp);
  Output event;
  event.topic = "pv.events";
  std::vector<Output> sent = {event};
  EXPECT_EQ(OnOutcomeRefused(sent, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, "pv.dlq.email", kNow),
            RefusedOutcome::kGiveUp);
}

}  // namespace
}  // namespace pv::workers
