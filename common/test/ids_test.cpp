#include "pv/ids.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <set>
#include <thread>

#include "pv/json.hpp"

namespace pv {
namespace {

const std::regex kUuidV7("^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
const std::regex kUuidV8("^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");

std::int64_t MillisOf(const std::string& id) {
  std::string hex = id.substr(0, 8) + id.substr(9, 4);
  return std::stoll(hex, nullptr, 16);
}

TEST(IdsTest, NewTriggerIdIsUuidV7WithTheCurrentTime) {
  std::int64_t before = ToUnixMillis(std::chrono::system_clock::now());
  std::string id = NewTriggerId();
  std::int64_t after = ToUnixMillis(std::chrono::system_clock::now());
  EXPECT_TRUE(std::regex_match(id, kUuidV7)) << id;
  EXPECT_GE(MillisOf(id), before) << id;
  EXPECT_LE(MillisOf(id), after) << id;
}

TEST(IdsTest, NewTriggerIdsMillisecondsApartSortInTimeOrder) {
  std::string previous = NewTriggerId();
  for (int i = 0; i < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    std::string next = NewTriggerId();
    EXPECT_LT(previous, next);
    EXPECT_LT(MillisOf(previous), MillisOf(next));
    previous = next;
  }
}

TEST(IdsTest, NewTriggerIdIsUniqueOverTenThousand) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) {
    std::string id = NewTriggerId();
    ASSERT_TRUE(std::regex_match(id, kUuidV7)) << id;
    ids.insert(std::move(id));
  }
  EXPECT_EQ(ids.size(), 10000U);
}

TEST(IdsTest, NewTriggerIdIsUniqueAcrossThreads) {
  std::vector<std::vector<std::string>> per_thread(4);
  std::vector<std::thread> threads;
  for (auto& out : per_thread) {
    threads.emplace_back([&out] {
      for (int i = 0; i < 2000; ++i) out.push_back(NewTriggerId());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> ids;
  for (const auto& v : per_thread) ids.insert(v.begin(), v.end());
  EXPECT_EQ(ids.size(), 8000U);
}

TEST(IdsTest, DerivedTriggerIdIsStableUuidV8) {
  std::string id = DerivedTriggerId("demo", "44", "order-1234-a");
  EXPECT_TRUE(std::regex_match(id, kUuidV8)) << id;
  EXPECT_EQ(id, DerivedTriggerId("demo", "44", "order-1234-a"));
  EXPECT_EQ(id, DerivedTriggerId("demo", "44", "order-1234-a", -1));
  // Pinned: a retry across a deploy must give the same id, so the derivation may never change.
  EXPECT_EQ(id, "3ce1032a-5942-8d05-82c7-ee57c1aca70c");
  EXPECT_EQ(DerivedTriggerId("demo", "44", "order-1234-a", 3), "7ca44e98-2871-84fa-9d72-dfcc371c8e36");
}

TEST(IdsTest, DerivedTriggerIdChangesWithEveryInput) {
  std::set<std::string> ids = {
      DerivedTriggerId("demo", "44", "k"),    DerivedTriggerId("demo2", "44", "k"),
      DerivedTriggerId("demo", "45", "k"),    DerivedTriggerId("demo", "44", "k2"),
      DerivedTriggerId("demo", "44", "k", 0), DerivedTriggerId("demo", "44", "k", 1),
      DerivedTriggerId("demo", "44", "K"),    DerivedTriggerId("", "44", "k"),
      DerivedTriggerId("demo", "44", ""),
  };
  EXPECT_EQ(ids.size(), 9U);
}

TEST(IdsTest, DerivedTriggerIdFieldBoundariesDoNotCollide) {
  EXPECT_NE(DerivedTriggerId("a", "bc", "k"), DerivedTriggerId("ab", "c", "k"));
  EXPECT_NE(DerivedTriggerId("p", "a", "bc"), DerivedTriggerId("p", "ab", "c"));
  EXPECT_NE(DerivedTriggerId("a|b", "c", "k"), DerivedTriggerId("a", "b|c", "k"));
  EXPECT_NE(DerivedTriggerId("p", "c", "k|1"), DerivedTriggerId("p", "c", "k", 1));
  EXPECT_NE(DerivedTriggerId("p", "c", "1:k"), DerivedTriggerId("p", "c1", "k"));
}

TEST(IdsTest, SendIdForIsStablePerTriggerAndChannel) {
  const std::string trigger = "0190f7a2-3b4c-7d5e-8f60-718293a4b5c6";
  std::string email = SendIdFor(trigger, "email");
  EXPECT_TRUE(std::regex_match(email, kUuidV8)) << email;
  EXPECT_EQ(email, SendIdFor(trigger, "email"));
  EXPECT_EQ(email, "10100bc5-49cc-82ca-bb93-fb2da2d586b2");  // pinned, as above
  EXPECT_NE(email, SendIdFor(trigger, "text"));
  EXPECT_NE(email, SendIdFor(trigger, "push"));
  EXPECT_NE(email, SendIdFor("0190f7a2-3b4c-7d5e-8f60-718293a4b5c7", "email"));
  EXPECT_NE(email, trigger);
  // Never the derived trigger id of the same strings: the two derivations are domain-separated.
  EXPECT_NE(SendIdFor("x", "email"), DerivedTriggerId("x", "email", ""));
  // Appended: the same id after what the string held, and a trigger id longer than the stack's
  // buffer the same as through the heap.
  std::string key = "pv:status:s:";
  AppendSendIdFor(key, trigger, "email");
  EXPECT_EQ(key, "pv:status:s:" + email);
  const std::string long_id(300, 'a');
  std::string appended;
  AppendSendIdFor(appended, long_id, "push");
  EXPECT_EQ(appended, SendIdFor(long_id, "push"));
  // The digest of the same material (its first four bytes are the id's first eight digits).
  EXPECT_EQ(appended.substr(0, 8), Sha256Hex("pv-send-v1|300:" + long_id + "|push").substr(0, 8));
}

TEST(IdsTest, Sha256MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  auto raw = Sha256("abc");
  EXPECT_EQ(raw[0], 0xba);
  EXPECT_EQ(raw[31], 0xad);
  EXPECT_EQ(Sha256Hex(std::string_view("a\0b", 3)), Sha256Hex(std::string("a\0b", 3)));
  EXPECT_NE(Sha256Hex(std::string_view("a\0b", 3)), Sha256Hex("a"));
}

TEST(IdsTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("sha256:abc", "sha256:abc"));
  EXPECT_FALSE(ConstantTimeEquals("sha256:abc", "sha256:abd"));
  EXPECT_FALSE(ConstantTimeEquals("xha256:abc", "sha256:abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
  EXPECT_FALSE(ConstantTimeEquals(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST(IdsTest, RandomHexHasTheLengthAndAlphabet) {
  EXPECT_EQ(RandomHex(0), "");
  std::string a = RandomHex(16);
  std::string b = RandomHex(16);
  EXPECT_TRUE(std::regex_match(a, std::regex("^[0-9a-f]{32}$"))) << a;
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace pv
