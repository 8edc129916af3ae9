#include "pv/workers/delivered_memory.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pv::workers {
namespace {

TEST(DeliveredMemoryTest, RemembersADeliveryUntilACommitPassesItsOffset) {
  DeliveredMemory memory(10);
  memory.Add(0, 5, "s1", "sg", "m1");
  ASSERT_NE(memory.Find("s1"), nullptr);
  EXPECT_EQ(memory.Find("s1")->provider, "sg");
  EXPECT_EQ(memory.Find("s1")->provider_message_id, "m1");
  memory.Committed(0, 5);  // offset 5 is the next to read: record 5 may still come again
  EXPECT_NE(memory.Find("s1"), nullptr);
  memory.Committed(0, 6);
  EXPECT_EQ(memory.Find("s1"), nullptr);
  EXPECT_EQ(memory.size(), 0u);
}

// Sends finish out of their records' order: a commit releases exactly those below it, whatever
// order they were delivered in, and the rest stay findable.
TEST(DeliveredMemoryTest, ACommitReleasesTheOffsetsBelowItInAnyOrder) {
  DeliveredMemory memory(10);
  for (std::int64_t offset : {7, 3, 5, 9, 4}) memory.Add(0, offset, "s" + std::to_string(offset), "p", "");
  memory.Committed(0, 6);
  EXPECT_EQ(memory.size(), 2u);
  for (std::int64_t offset : {3, 4, 5})
    EXPECT_EQ(memory.Find("s" + std::to_string(offset)), nullptr) << offset;
  for (std::int64_t offset : {7, 9}) EXPECT_NE(memory.Find("s" + std::to_string(offset)), nullptr) << offset;
  memory.Add(0, 6, "s6", "p", "");
  memory.Committed(0, 8);
  EXPECT_EQ(memory.size(), 1u);
  EXPECT_NE(memory.Find("s9"), nullptr);
  memory.Committed(0, 10);
  EXPECT_EQ(memory.size(), 0u);
  EXPECT_TRUE(memory.Partitions().empty());
}

TEST(DeliveredMemoryTest, ACommitReleasesOnlyItsOwnPartition) {
  DeliveredMemory memory(10);
  memory.Add(0, 1, "a", "p", "");
  memory.Add(1, 1, "b", "p", "");
  memory.Committed(1, 100);
  EXPECT_NE(memory.Find("a"), nullptr);
  EXPECT_EQ(memory.Find("b"), nullptr);
  memory.Committed(7, 100);  // a partition never seen
  EXPECT_EQ(memory.size(), 1u);
}

TEST(DeliveredMemoryTest, ASendSeenTwiceKeepsItsEarliestRecord) {
  // The same send at two offsets (read again after a lost assignment): the entry stays until the
  // commit passes the first one, which is where a re-read would start.
  DeliveredMemory memory(10);
  memory.Add(0, 3, "s", "first", "m1");
  memory.Add(0, 9, "s", "second", "m2");
  EXPECT_EQ(memory.Find("s")->provider, "first");
  EXPECT_EQ(memory.size(), 1u);
  memory.Committed(0, 4);
  EXPECT_EQ(memory.Find("s"), nullptr);
  memory.Committed(0, 10);  // the stale index entry at 9 goes without touching anything else
  EXPECT_EQ(memory.size(), 0u);
}

TEST(DeliveredMemoryTest, FullAtCapacityAndRoomAgainAfterACommit) {
  DeliveredMemory memory(3);
  for (int i = 0; i < 3; ++i) memory.Add(0, i, "s" + std::to_string(i), "p", "");
  EXPECT_TRUE(memory.Full());
  memory.Committed(0, 1);
  EXPECT_FALSE(memory.Full());
  EXPECT_EQ(memory.size(), 2u);
  EXPECT_EQ(DeliveredMemory(0).capacity(), 1u);
}

TEST(DeliveredMemoryTest, ForgettingAPartitionDropsOnlyItsSends) {
  DeliveredMemory memory(10);
  memory.Add(0, 1, "a", "p", "");
  memory.Add(2, 1, "b", "p", "");
  EXPECT_EQ(memory.Partitions(), (std::vector<std::int32_t>{0, 2}));
  memory.Forget(2);
  EXPECT_EQ(memory.Find("b"), nullptr);
  EXPECT_NE(memory.Find("a"), nullptr);
  EXPECT_EQ(memory.Partitions(), (std::vector<std::int32_t>{0}));
}

// A commit's released entries are reused by the next deliveries (no allocation per send): a reused
// one holds the new send's delivery only, and the old send is not found through it.
TEST(DeliveredMemoryTest, AReleasedEntryIsReusedWithNothingOfTheOldSend) {
  DeliveredMemory memory(10);
  memory.Add(0, 1, "a-long-send-id-that-is-not-in-the-small-string-buffer", "sendgrid",
             "a-long-provider-message-id-of-the-first-send");
  memory.Add(0, 2, "b", "p", "m-b");
  memory.Committed(0, 3);
  ASSERT_EQ(memory.size(), 0u);
  memory.Add(1, 7, "c", "log", "");
  memory.Add(1, 8, "d", "twilio", "SM1");
  memory.Add(1, 9, "e", "x", "fresh");  // more than were released: a new entry
  EXPECT_EQ(memory.Find("a-long-send-id-that-is-not-in-the-small-string-buffer"), nullptr);
  EXPECT_EQ(memory.Find("b"), nullptr);
  ASSERT_NE(memory.Find("c"), nullptr);
  EXPECT_EQ(memory.Find("c")->provider, "log");
  EXPECT_EQ(memory.Find("c")->provider_message_id, "");
  ASSERT_NE(memory.Find("d"), nullptr);
  EXPECT_EQ(memory.Find("d")->provider, "twilio");
  EXPECT_EQ(memory.Find("d")->provider_message_id, "SM1");
  EXPECT_EQ(memory.Find("e")->provider_message_id, "fresh");
  EXPECT_EQ(memory.size(), 3u);
  memory.Add(1, 10, "d", "other", "SM2");  // seen already: keeps its first delivery
  EXPECT_EQ(memory.Find("d")->provider_message_id, "SM1");
  memory.Committed(1, 9);  // c and d go, e stays
  EXPECT_EQ(memory.Find("c"), nullptr);
  EXPECT_EQ(memory.Find("d"), nullptr);
  EXPECT_NE(memory.Find("e"), nullptr);
  EXPECT_EQ(memory.Partitions(), (std::vector<std::int32_t>{1}));
}

// Ids come from records and providers' answers: an entry that held a long one is freed at its
// commit, not kept for reuse with that capacity; and no more than `capacity` are kept.
TEST(DeliveredMemoryTest, AnEntryWithALongIdIsNotKeptForReuse) {
  DeliveredMemory memory(2);
  memory.Add(0, 1, "a", "sendgrid", std::string(64 << 10, 'x'));
  memory.Add(0, 2, "b", "sendgrid", "short");
  memory.Committed(0, 3);
  EXPECT_EQ(memory.spare(), 1u);
  for (int i = 0; i < 5; ++i) memory.Add(1, i, "c" + std::to_string(i), "p", "m");
  EXPECT_EQ(memory.spare(), 0u);
  memory.Forget(1);
  EXPECT_EQ(memory.size(), 0u);
  EXPECT_EQ(memory.spare(), 2u);  // five released, `capacity` kept
}

}  // namespace
}  // namespace pv::workers
