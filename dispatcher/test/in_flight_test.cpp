// The bookkeeping between consumed inputs and acknowledged outputs (src/in_flight.hpp); the
// PartitionBook and CompletionQueue under it are common/test/kafka_book_test.cpp's.
#include "../src/in_flight.hpp"

#include <gtest/gtest.h>

namespace pv::dispatcher::internal {
namespace {

TEST(PendingQueue, TheLastReportHandsThePendingOver) {
  PendingQueue queue;
  auto* p = new Pending(&queue, "t", 1, 5, 9);  // NOLINT(cppcoreguidelines-owning-memory)
  p->remaining.store(2);
  p->OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 0);
  std::vector<std::unique_ptr<Pending>> done;
  queue.Take(done);
  EXPECT_TRUE(done.empty());
  p->OnDelivery(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, 0);
  queue.Take(done);
  ASSERT_EQ(done.size(), 1U);
  EXPECT_EQ(done[0].get(), p);
  EXPECT_EQ(done[0]->first_error.load(), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);  // one failure fails the input
  EXPECT_EQ(done[0]->offset, 5);
}

// Judge's table (in_flight.hpp), row by row. `errors`: one per output, in the roles' order.
Settlement JudgeOf(std::vector<std::pair<OutputRole, rd_kafka_resp_err_t>> outputs,
                   int dead_letter_attempt = 0, int dead_letter_attempts = 3) {
  PendingQueue queue;
  Pending p(&queue, "pv.triggers", 0, 7, 1);
  std::vector<std::pair<OutputRole, std::string>> roles;
  for (size_t i = 0; i < outputs.size(); ++i)
    roles.emplace_back(outputs[i].first, "topic-" + std::to_string(i));
  p.Expect(roles);
  p.dead_letter_attempt = dead_letter_attempt;
  for (size_t i = 0; i < outputs.size(); ++i) p.outputs[i].OnDelivery(outputs[i].second, 0, 0);
  std::vector<std::unique_ptr<Pending>> done;
  queue.Take(done);
  for (auto& d : done) EXPECT_EQ(d.release(), &p);  // not owned: on the stack
  return Judge(p, dead_letter_attempts);
}

constexpr auto kMain = OutputRole::kMain;
constexpr auto kEvent = OutputRole::kEvent;
constexpr auto kDeadLetter = OutputRole::kDeadLetter;
constexpr auto kOk = RD_KAFKA_RESP_ERR_NO_ERROR;
constexpr auto kTooLarge = RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE;
constexpr auto kTimedOut = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
constexpr auto kUnknownTopic = RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;

TEST(Judge, AcknowledgedIsDone) {
  Settlement s = JudgeOf({{kMain, kOk}, {kEvent, kOk}});
  EXPECT_EQ(s.action, Settled::kDone);
  EXPECT_FALSE(s.skipped);
}

TEST(Judge, AMainOutputRefusedForGoodDeadLettersTheInput) {
  Settlement s = JudgeOf({{kMain, kTooLarge}, {kEvent, kOk}});
  EXPECT_EQ(s.action, Settled::kDeadLetter);
  EXPECT_EQ(s.failure, kafka::ProduceFailure::kTooLarge);
  EXPECT_EQ(s.error, "topic-0: Broker: Message size too large (MSG_SIZE_TOO_LARGE)");
  // Even when another output failed in a way that may pass: the main one never will.
  EXPECT_EQ(JudgeOf({{kMain, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED}, {kEvent, kTimedOut}}).action,
            Settled::kDeadLetter);
}

TEST(Judge, AnOutageIsRetriedWithoutBound) {
  EXPECT_EQ(JudgeOf({{kMain, kTimedOut}, {kEvent, kOk}}).action, Settled::kRetry);
  EXPECT_EQ(JudgeOf({{kMain, kOk}, {kEvent, kTimedOut}}).action, Settled::kRetry);
  // A dead letter that times out is retried at any attempt: the broker is away, not refusing.
  Settlement s = JudgeOf({{kDeadLetter, kTimedOut}, {kEvent, kOk}}, 50);
  EXPECT_EQ(s.action, Settled::kRetry);
  EXPECT_FALSE(s.skipped);
}

TEST(Judge, ADeadLetterRefusedForGoodIsSkippedAfterTheLastAttempt) {
  for (int attempt = 1; attempt < 3; ++attempt) {
    Settlement s = JudgeOf({{kDeadLetter, kUnknownTopic}, {kEvent, kOk}}, attempt);
    EXPECT_EQ(s.action, Settled::kRetry) << attempt;
    EXPECT_EQ(s.failure, kafka::ProduceFailure::kUnknownTopic);
  }
  Settlement s = JudgeOf({{kDeadLetter, kUnknownTopic}, {kEvent, kOk}}, 3);
  EXPECT_EQ(s.action, Settled::kDone);
  EXPECT_TRUE(s.skipped);
  EXPECT_EQ(s.skipped_role, OutputRole::kDeadLetter);
  EXPECT_EQ(kafka::ProduceFailureName(s.failure), "unknown_topic");
}

TEST(Judge, AnEventRefusedForGoodIsSkippedAndTheInputDone) {
  Settlement s = JudgeOf({{kMain, kOk}, {kEvent, kTooLarge}});
  EXPECT_EQ(s.action, Settled::kDone);
  EXPECT_TRUE(s.skipped);
  EXPECT_EQ(s.skipped_role, OutputRole::kEvent);
}

}  // namespace
}  // namespace pv::dispatcher::internal
