// The bookkeeping between consumed inputs and acknowledged outputs (src/in_flight.hpp).
#include "../src/in_flight.hpp"

#include <gtest/gtest.h>

namespace pv::dispatcher::internal {
namespace {

TEST(PartitionBook, OffsetsAdvanceOnlyOverFinishedInputs) {
  PartitionBook book;
  auto gen = book.Assign("t", 0);
  ASSERT_NE(gen, 0U);
  for (std::int64_t o = 10; o < 13; ++o) book.Begin("t", 0, o);
  EXPECT_EQ(book.InFlight(), 3U);
  EXPECT_EQ(book.Finish("t", 0, 11, gen), -1);  // 10 is still in flight
  EXPECT_EQ(book.Finish("t", 0, 10, gen), 12);  // 10 and 11 done: the next to read is 12
  EXPECT_EQ(book.Finish("t", 0, 12, gen), 13);
  EXPECT_EQ(book.InFlight(), 0U);
}

TEST(PartitionBook, ReportsOfAnEarlierAssignmentAreIgnored) {
  PartitionBook book;
  auto first = book.Assign("t", 3);
  book.Begin("t", 3, 100);
  book.AddOutstanding("t", 3);
  book.Revoke("t", 3);
  EXPECT_EQ(book.Generation("t", 3), 0U);  // not ours: records of it are not processed
  EXPECT_EQ(book.Outstanding("t", 3), 0U);
  auto second = book.Assign("t", 3);
  EXPECT_NE(first, second);
  book.Begin("t", 3, 100);                         // read again by the new assignment
  EXPECT_EQ(book.Finish("t", 3, 100, first), -1);  // the old report does not finish it
  EXPECT_EQ(book.InFlight(), 1U);
  EXPECT_EQ(book.Finish("t", 3, 100, second), 101);
}

TEST(PartitionBook, TopicsAreKeptApart) {
  PartitionBook book;
  auto a = book.Assign("pv.delay.5s", 0);
  auto b = book.Assign("pv.delay.30s", 0);
  book.Begin("pv.delay.5s", 0, 7);
  book.Begin("pv.delay.30s", 0, 7);
  EXPECT_EQ(book.Finish("pv.delay.30s", 0, 7, b), 8);
  EXPECT_EQ(book.InFlight(), 1U);
  EXPECT_EQ(book.Finish("pv.delay.5s", 0, 7, a), 8);
}

TEST(CompletionQueue, TheLastReportHandsThePendingOver) {
  CompletionQueue queue;
  auto* p = new Pending(&queue, "t", 1, 5, 9);  // NOLINT(cppcoreguidelines-owning-memory)
  p->remaining.store(2);
  p->OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 0);
  EXPECT_TRUE(queue.Take().empty());
  p->OnDelivery(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, 0);
  auto done = queue.Take();
  ASSERT_EQ(done.size(), 1U);
  std::unique_ptr<Pending> owned(done[0]);
  EXPECT_EQ(owned->first_error.load(), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);  // one failure fails the input
  EXPECT_EQ(owned->offset, 5);
}

// Judge's table (in_flight.hpp), row by row. `errors`: one per output, in the roles' order.
Settlement JudgeOf(std::vector<std::pair<OutputRole, rd_kafka_resp_err_t>> outputs,
                   int dead_letter_attempt = 0, int dead_letter_attempts = 3) {
  CompletionQueue queue;
  Pending p(&queue, "pv.triggers", 0, 7, 1);
  std::vector<std::pair<OutputRole, std::string>> roles;
  for (size_t i = 0; i < outputs.size(); ++i)
    roles.emplace_back(outputs[i].first, "topic-" + std::to_string(i));
  p.Expect(roles);
  p.dead_letter_attempt = dead_letter_attempt;
  for (size_t i = 0; i < outputs.size(); ++i) p.outputs[i].OnDelivery(outputs[i].second, 0, 0);
  for (Pending* done : queue.Take()) EXPECT_EQ(done, &p);  // not owned: on the stack
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
