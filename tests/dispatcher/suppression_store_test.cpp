// The dispatcher's suppression check (SuppressionStore) against a real redis-server: a batch's
// answers, whatever its size and its mix of channels, and the refusals that make the dispatcher hold
// a batch rather than send it unchecked.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "pv/dispatcher/suppression.hpp"
#include "pv/suppression_keys.hpp"
#include "pv/testing/redis_server.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;
using dispatcher::Suppressed;
using dispatcher::SuppressionQuery;
using dispatcher::SuppressionStore;

TEST(SuppressionStoreTest, EveryQueryOfALargeMixedBatchGetsItsOwnAnswer) {
  // 3,000 queries over the three channels in turn: past the 512 a command asks about, so each
  // channel's answers come in several chunks that must map back to their queries. Every seventh user
  // and every fifth address is suppressed (both for some: the user is named first).
  RedisServer redis;
  const Channel channels[] = {Channel::kEmail, Channel::kSms, Channel::kPush};
  std::vector<std::string> ids;
  std::vector<std::string> addresses;
  std::vector<SuppressionQuery> queries;
  std::vector<Suppressed> expected;
  const int n = 3000;
  ids.reserve(n);
  addresses.reserve(n);
  for (int i = 0; i < n; ++i) {
    ids.push_back("u-" + std::to_string(i));
    addresses.push_back("a" + std::to_string(i) + "@example.com");
  }
  std::vector<std::string> sadd[3];
  for (Channel channel : channels) sadd[static_cast<size_t>(channel)] = {"SADD", SuppressionKey(channel)};
  for (int i = 0; i < n; ++i) {
    const Channel channel = channels[i % 3];
    // The same user in another project, and the same address on another channel, are not matched.
    const bool other_project = i % 11 == 0;
    queries.push_back({channel, other_project ? "other" : "demo", ids[i], addresses[i]});
    auto& args = sadd[static_cast<size_t>(channel)];
    Suppressed e = Suppressed::kNo;
    if (i % 7 == 0) {
      args.push_back(SuppressedUserMember("demo", ids[i]));
      if (!other_project) e = Suppressed::kUser;
    }
    if (i % 5 == 0) {
      args.push_back(SuppressedAddressMember(channel, addresses[i]));
      if (e == Suppressed::kNo) e = Suppressed::kAddress;
    }
    if (i % 13 == 0) {  // on another channel's set: not this query's
      const Channel other = channels[(i + 1) % 3];
      sadd[static_cast<size_t>(other)].push_back(SuppressedAddressMember(channel, addresses[i]));
    }
    expected.push_back(e);
  }
  for (auto& args : sadd) ASSERT_GT(std::stoi(redis.Command(args)), 100);

  SuppressionStore store(redis.url(), 2s);
  std::vector<Suppressed> answers;
  std::string error;
  ASSERT_TRUE(store.Check(queries, answers, error)) << error;
  ASSERT_EQ(answers.size(), queries.size());
  int users = 0;
  int addressed = 0;
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(answers[i], expected[i]) << "query " << i;
    users += answers[i] == Suppressed::kUser;
    addressed += answers[i] == Suppressed::kAddress;
  }
  EXPECT_GT(users, 300);
  EXPECT_GT(addressed, 300);

  // One channel only, and an empty batch (no round trip to make).
  std::vector<SuppressionQuery> one = {queries[0]};
  ASSERT_TRUE(store.Check(one, answers, error)) << error;
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0], expected[0]);
  ASSERT_TRUE(store.Check({}, answers, error)) << error;
  EXPECT_TRUE(answers.empty());
}

TEST(SuppressionStoreTest, AKeyOfTheWrongTypeOrNoRedisIsAnErrorNotAnAnswer) {
  RedisServer redis;
  // Someone wrote a string where the push set belongs: the check cannot decide, so it says so.
  ASSERT_EQ(redis.Command({"SET", SuppressionKey(Channel::kPush), "x"}), "OK");
  SuppressionStore store(redis.url(), 2s);
  std::vector<SuppressionQuery> queries = {{Channel::kEmail, "demo", "u-1", "a@example.com"},
                                           {Channel::kPush, "demo", "u-2", "token-2"}};
  std::vector<Suppressed> answers = {Suppressed::kUser};
  std::string error;
  EXPECT_FALSE(store.Check(queries, answers, error));
  EXPECT_NE(error.find("SMISMEMBER: WRONGTYPE"), std::string::npos) << error;
  EXPECT_EQ(answers.size(), 1u) << "answers were given for a batch that could not be checked";
  // The email query alone still gets its answer.
  ASSERT_TRUE(store.Check(std::span(queries).first(1), answers, error)) << error;
  EXPECT_EQ(answers[0], Suppressed::kNo);

  redis.Stop();
  error.clear();
  EXPECT_FALSE(store.Check(std::span(queries).first(1), answers, error));
  EXPECT_NE(error.find("redis 127.0.0.1:"), std::string::npos) << error;
}

}  // namespace
}  // namespace pv::testing
