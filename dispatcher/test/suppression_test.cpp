#include "pv/dispatcher/suppression.hpp"

#include <gtest/gtest.h>

namespace pv::dispatcher {
namespace {

TEST(RedisUrl, Parses) {
  RedisAddress a;
  std::string error;
  ASSERT_TRUE(ParseRedisUrl("redis://127.0.0.1:6390", a, error)) << error;
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6390);
  EXPECT_EQ(a.db, 0);
  ASSERT_TRUE(ParseRedisUrl("redis://:s3cret@cache.internal/2", a, error)) << error;
  EXPECT_EQ(a.host, "cache.internal");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.password, "s3cret");
  EXPECT_EQ(a.db, 2);
  EXPECT_FALSE(ParseRedisUrl("http://x", a, error));
  EXPECT_FALSE(ParseRedisUrl("redis://host:port", a, error));
  EXPECT_FALSE(ParseRedisUrl("redis://", a, error));
}

// The error is logged and printed by pvctl: a mistyped scheme must not show the password.
TEST(RedisUrl, ErrorMasksThePassword) {
  RedisAddress a;
  std::string error;
  EXPECT_FALSE(ParseRedisUrl("rediss://:s3cret@cache.internal:6380", a, error));
  EXPECT_EQ(error, "'rediss://:****@cache.internal:6380' is not a redis:// URL");
}

TEST(SuppressionKeys, Layout) {
  EXPECT_EQ(SuppressionKey(Channel::kEmail), "pv:suppress:email");
  EXPECT_EQ(SuppressionKey(Channel::kSms), "pv:suppress:text");
  EXPECT_EQ(SuppressionKey(Channel::kPush), "pv:suppress:push");
  EXPECT_EQ(SuppressedUserMember("demo", "U-1"), "user:demo:U-1");
  EXPECT_EQ(SuppressedAddressMember(Channel::kEmail, "Bob@Example.COM"), "address:bob@example.com");
  EXPECT_EQ(SuppressedAddressMember(Channel::kPush, "AbC"), "address:AbC");
}

}  // namespace
}  // namespace pv::dispatcher
