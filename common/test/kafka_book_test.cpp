// The consumer's bookkeeping (pv/kafka_book.hpp): PartitionBook's generations, offsets and outstanding
// counts, and CompletionQueue's items and wake-ups, as the dispatcher and the workers use them.
#include "pv/kafka_book.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <string>
#include <thread>

namespace pv::kafka {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Offsets: what the book allows to store, with records finishing in any order.
TEST(PartitionBookTest, InOrderFinishesAdvanceOneByOne) {
  PartitionBook book;
  auto gen = book.Assign("t", 0);
  ASSERT_NE(gen, 0U);
  for (std::int64_t o = 0; o < 3; ++o) book.Begin("t", 0, o);
  EXPECT_EQ(book.InFlight(), 3U);
  EXPECT_EQ(book.Finish("t", 0, 0, gen), 1);
  EXPECT_EQ(book.Finish("t", 0, 1, gen), 2);
  EXPECT_EQ(book.Finish("t", 0, 2, gen), 3);
  EXPECT_EQ(book.InFlight(), 0U);
}

TEST(PartitionBookTest, OutOfOrderFinishesAdvanceOnlyToTheLowestInFlight) {
  PartitionBook book;
  auto gen = book.Assign("t", 3);
  for (std::int64_t o = 10; o <= 14; ++o) book.Begin("t", 3, o);
  // 10 is still in flight: nothing may be stored beyond it, and nothing advanced.
  EXPECT_EQ(book.Finish("t", 3, 12, gen), -1);
  EXPECT_EQ(book.Finish("t", 3, 13, gen), -1);
  EXPECT_EQ(book.InFlight(), 3U);
  // 10 done: 11 is now the lowest in flight.
  EXPECT_EQ(book.Finish("t", 3, 10, gen), 11);
  // 11 done: 12 and 13 were done already, so the next to store is 14 (still in flight).
  EXPECT_EQ(book.Finish("t", 3, 11, gen), 14);
  EXPECT_EQ(book.Finish("t", 3, 14, gen), 15);
  EXPECT_EQ(book.InFlight(), 0U);
}

TEST(PartitionBookTest, GapsInOffsetsAreFine) {
  // Compacted topics and transaction markers leave gaps; only begun offsets count.
  PartitionBook book;
  auto gen = book.Assign("t", 0);
  book.Begin("t", 0, 5);
  book.Begin("t", 0, 9);
  book.Begin("t", 0, 20);
  EXPECT_EQ(book.Finish("t", 0, 20, gen), -1);
  EXPECT_EQ(book.Finish("t", 0, 5, gen), 9);
  EXPECT_EQ(book.Finish("t", 0, 9, gen), 21);
}

TEST(PartitionBookTest, RecordsBegunAfterAllFinishedContinue) {
  PartitionBook book;
  auto gen = book.Assign("t", 0);
  book.Begin("t", 0, 0);
  EXPECT_EQ(book.Finish("t", 0, 0, gen), 1);
  book.Begin("t", 0, 1);
  book.Begin("t", 0, 2);
  EXPECT_EQ(book.Finish("t", 0, 2, gen), -1);
  EXPECT_EQ(book.Finish("t", 0, 1, gen), 3);
}

TEST(PartitionBookTest, UnknownAndRepeatedFinishesDoNotAdvance) {
  PartitionBook book;
  EXPECT_EQ(book.Finish("t", 0, 0, 0), -1);  // partition never seen
  auto gen = book.Assign("t", 0);
  EXPECT_EQ(book.Finish("t", 0, 0, gen), -1);  // nothing begun
  book.Begin("t", 0, 4);
  book.Begin("t", 0, 5);
  EXPECT_EQ(book.Finish("t", 0, 7, gen), -1);  // offset never begun
  EXPECT_EQ(book.Finish("t", 0, 4, gen), 5);
  EXPECT_EQ(book.Finish("t", 0, 4, gen), -1);  // finished twice
  EXPECT_EQ(book.InFlight(), 1U);
}

TEST(PartitionBookTest, WorkOfAnEarlierAssignmentStoresNoOffsetOfTheNext) {
  PartitionBook book;
  EXPECT_EQ(book.Generation("t", 3), 0U);  // never assigned
  auto first = book.Assign("t", 3);
  EXPECT_EQ(book.Generation("t", 3), first);
  for (std::int64_t o = 100; o <= 102; ++o) book.Begin("t", 3, o);
  EXPECT_EQ(book.Finish("t", 3, 101, first), -1);
  EXPECT_EQ(book.Finish("t", 3, 100, first), 102);  // stored, but 102 is not finished
  book.Revoke("t", 3);
  EXPECT_EQ(book.Generation("t", 3), 0U);  // not ours: records of it are not processed
  EXPECT_EQ(book.InFlight(), 0U);          // its unfinished records are the next owner's
  EXPECT_EQ(book.Finish("t", 3, 102, first), -1);
  auto second = book.Assign("t", 3);
  EXPECT_NE(first, second);
  EXPECT_NE(second, 0U);
  // Read again from an older commit: the new assignment starts afresh there.
  book.Begin("t", 3, 100);
  book.Begin("t", 3, 101);
  EXPECT_EQ(book.Finish("t", 3, 101, first), -1);  // the old work does not finish the new
  EXPECT_EQ(book.InFlight(), 2U);
  EXPECT_EQ(book.Finish("t", 3, 100, second), 101);
  book.Revoke("u", 9);  // unknown: no effect
  EXPECT_EQ(book.Generation("t", 3), second);
}

TEST(PartitionBookTest, WorkOnAPartitionNeverAssignedStoresNothing) {
  // Generation() is 0 for a partition we do not own; work begun there (Begin creates its state) must
  // not store an offset, even though the state's own generation is 0 too.
  PartitionBook book;
  auto gen = book.Generation("t", 4);
  ASSERT_EQ(gen, 0U);
  book.Begin("t", 4, 7);
  EXPECT_EQ(book.Finish("t", 4, 7, gen), -1);
  // Revoked, then its late work finishes: nothing either.
  auto assigned = book.Assign("t", 5);
  book.Begin("t", 5, 1);
  book.Revoke("t", 5);
  book.Begin("t", 5, 2);  // a record of the revoked partition still taken from the local queue
  EXPECT_EQ(book.Finish("t", 5, 1, assigned), -1);
  EXPECT_EQ(book.Finish("t", 5, 2, book.Generation("t", 5)), -1);
}

TEST(PartitionBookTest, TopicsAndPartitionsAreKeptApart) {
  PartitionBook book;
  auto a = book.Assign("pv.delay.5s", 0);
  auto b = book.Assign("pv.delay.30s", 0);
  auto c = book.Assign("pv.delay.30s", 1);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  book.Begin("pv.delay.5s", 0, 7);
  book.Begin("pv.delay.30s", 0, 7);
  book.Begin("pv.delay.30s", 1, 7);
  EXPECT_EQ(book.Finish("pv.delay.30s", 0, 7, a), -1);  // another partition's generation
  EXPECT_EQ(book.Finish("pv.delay.30s", 0, 7, b), 8);
  EXPECT_EQ(book.InFlight(), 2U);
  book.Revoke("pv.delay.30s", 1);
  EXPECT_EQ(book.Generation("pv.delay.5s", 0), a);
  EXPECT_EQ(book.InFlight(), 1U);
  EXPECT_EQ(book.Finish("pv.delay.5s", 0, 7, a), 8);
}

TEST(PartitionBookTest, OutstandingIsCountedPerPartitionAndDroppedOnRevoke) {
  PartitionBook book;
  book.Assign("t", 0);
  book.Assign("t", 1);
  book.AddOutstanding("t", 0);
  book.AddOutstanding("t", 0);
  book.AddOutstanding("t", 1);
  EXPECT_EQ(book.Outstanding("t", 0), 2U);
  EXPECT_EQ(book.Outstanding("t", 1), 1U);
  EXPECT_EQ(book.Outstanding("u", 0), 0U);
  EXPECT_EQ(book.Outstanding(), 3U);
  book.DoneOutstanding("t", 0);
  EXPECT_EQ(book.Outstanding("t", 0), 1U);
  book.Revoke("t", 0);
  EXPECT_EQ(book.Outstanding("t", 0), 0U);
  book.DoneOutstanding("t", 0);  // a report of the revoked assignment: nothing to count down
  book.DoneOutstanding("u", 0);
  EXPECT_EQ(book.Outstanding(), 1U);
  book.DoneOutstanding("t", 1);
  EXPECT_EQ(book.Outstanding(), 0U);
}

bool Readable(int fd) {
  pollfd pfd{fd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

struct Answer {
  int id;
};
struct Ack {
  std::string what;
};

TEST(CompletionQueueTest, TakesEachTypeInPostingOrder) {
  CompletionQueue<Answer, Ack> queue;
  queue.Post(Answer{1});
  queue.Post(Ack{"a"});
  queue.Post(Answer{2});
  std::vector<Answer> answers{{99}};  // replaced, not appended to
  std::vector<Ack> acks;
  queue.Take(answers, acks);
  ASSERT_EQ(answers.size(), 2U);
  EXPECT_EQ(answers[0].id, 1);
  EXPECT_EQ(answers[1].id, 2);
  ASSERT_EQ(acks.size(), 1U);
  EXPECT_EQ(acks[0].what, "a");
  queue.Take(answers, acks);
  EXPECT_TRUE(answers.empty());
  EXPECT_TRUE(acks.empty());
}

TEST(CompletionQueueTest, OnlyThePostToAnEmptyQueueWakes) {
  CompletionQueue<Answer, Ack> queue;
  EXPECT_FALSE(Readable(queue.fd()));
  queue.Post(Answer{1});
  EXPECT_TRUE(Readable(queue.fd()));
  queue.Sleep(milliseconds(0));  // consumes the wake-up
  EXPECT_FALSE(Readable(queue.fd()));
  queue.Post(Ack{"b"});  // the queue holds an answer already: its taker was woken for that
  EXPECT_FALSE(Readable(queue.fd()));
  std::vector<Answer> answers;
  std::vector<Ack> acks;
  queue.Take(answers, acks);
  queue.Post(Ack{"c"});
  EXPECT_TRUE(Readable(queue.fd()));
}

TEST(CompletionQueueTest, APostWithoutWakeIsQueuedAndWritesNothing) {
  CompletionQueue<Answer, Ack> queue;
  EXPECT_TRUE(queue.Empty());
  queue.Post(Answer{1}, /*wake=*/false);  // the consuming thread's own: it looks before it sleeps
  EXPECT_FALSE(Readable(queue.fd()));
  EXPECT_FALSE(queue.Empty());
  std::vector<Answer> answers;
  std::vector<Ack> acks;
  queue.Take(answers, acks);
  ASSERT_EQ(answers.size(), 1U);
  EXPECT_EQ(answers[0].id, 1);
  EXPECT_TRUE(queue.Empty());
  queue.Post(Ack{"from another thread"});
  EXPECT_TRUE(Readable(queue.fd()));
}

TEST(CompletionQueueTest, SleepWakesForAnyWriterOfTheDescriptor) {
  CompletionQueue<Answer> queue;
  auto start = steady_clock::now();
  queue.Sleep(milliseconds(30));  // nothing: times out
  EXPECT_GE(steady_clock::now() - start, milliseconds(25));
  // What Consumer::WakeOnRecords has librdkafka write when records arrive.
  std::thread writer([fd = queue.fd()] {
    std::this_thread::sleep_for(milliseconds(20));
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof(one));
  });
  start = steady_clock::now();
  queue.Sleep(milliseconds(5000));
  EXPECT_LT(steady_clock::now() - start, milliseconds(4000));
  writer.join();
  std::thread stopper([&queue] {
    std::this_thread::sleep_for(milliseconds(20));
    queue.Wake();
  });
  start = steady_clock::now();
  queue.Sleep(milliseconds(5000));
  EXPECT_LT(steady_clock::now() - start, milliseconds(4000));
  stopper.join();
}

TEST(CompletionQueueTest, WaitReturnsForAnItemAndNotForAWakeUpAlreadyServed) {
  CompletionQueue<int> queue;
  queue.Post(1);
  auto start = steady_clock::now();
  queue.Wait(milliseconds(5000));  // something is queued: at once
  EXPECT_LT(steady_clock::now() - start, milliseconds(4000));
  std::vector<int> items;
  queue.Take(items);
  // The wake-up of that post is still pending; Wait consumes it and waits on for a new item.
  start = steady_clock::now();
  queue.Wait(milliseconds(50));
  EXPECT_GE(steady_clock::now() - start, milliseconds(45));
  std::thread poster([&queue] {
    std::this_thread::sleep_for(milliseconds(20));
    queue.Post(2);
  });
  start = steady_clock::now();
  queue.Wait(milliseconds(5000));
  EXPECT_LT(steady_clock::now() - start, milliseconds(4000));
  poster.join();
  queue.Take(items);
  ASSERT_EQ(items.size(), 1U);
  EXPECT_EQ(items[0], 2);
}

}  // namespace
}  // namespace pv::kafka
