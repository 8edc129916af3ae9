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

}  // namespace
}  // namespace pv::dispatcher::internal
