#include "pv/redis_url.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pv/redis_client.hpp"

namespace pv {
namespace {

TEST(RedisUrlTest, ReadsEveryPart) {
  RedisUrl u;
  std::string error;
  ASSERT_TRUE(ParseRedisUrl("redis://default:p@ss/w@cache.internal:6390/15", u, error)) << error;
  EXPECT_EQ(u.host, "cache.internal");
  EXPECT_EQ(u.port, 6390);
  EXPECT_EQ(u.password, "p@ss/w");
  EXPECT_EQ(u.db, 15);
  ASSERT_TRUE(ParseRedisUrl("redis://127.0.0.1", u, error)) << error;
  EXPECT_EQ(u.port, 6379);
  EXPECT_EQ(u.db, 0);
}

// An IPv6 host: the port is after the bracket, and hiredis gets the address without brackets.
TEST(RedisUrlTest, Ipv6Host) {
  RedisUrl u;
  std::string error;
  ASSERT_TRUE(ParseRedisUrl("redis://[::1]:6380/2", u, error)) << error;
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6380);
  EXPECT_EQ(u.db, 2);
  ASSERT_TRUE(ParseRedisUrl("redis://[::1]", u, error)) << error;
  EXPECT_EQ(u.host, "::1");
  EXPECT_EQ(u.port, 6379);
}

// config_fuzz found the workers' copy of this parser taking "6379abc" as 6379 and "-1" as a database,
// where the dispatcher refused the same redis.url.
TEST(RedisUrlTest, RefusesWhatIsNotANumberOrAHost) {
  RedisUrl u;
  std::string error;
  for (const char* url : {"redis://h:6379abc", "redis://h/-1", "redis://h/1x", "redis://h:0", "redis://h:65536",
                          "redis://", "redis://:pw@:6379", "redis://h:", "redis://host:port", "http://h"}) {
    EXPECT_FALSE(ParseRedisUrl(url, u, error)) << url;
  }
}

TEST(RedisUrlTest, ErrorsNeverShowThePassword) {
  RedisUrl u;
  std::string error;
  for (const char* url : {"redis://:s3cret@h:99999", "redis://u:s3cret@h/x", "rediss://:s3cret@h:1", "redis://:s3cret@"}) {
    ASSERT_FALSE(ParseRedisUrl(url, u, error)) << url;
    EXPECT_EQ(error.find("s3cret"), std::string::npos) << error;
  }
}

// The error is logged and printed by pvctl: a mistyped scheme must not show the password.
TEST(RedisUrlTest, ErrorMasksThePassword) {
  RedisUrl u;
  std::string error;
  EXPECT_FALSE(ParseRedisUrl("http://:s3cret@cache.internal:6380", u, error));
  EXPECT_EQ(error, "'http://:****@cache.internal:6380' is not a redis:// URL");
}

// TLS is refused with the way out, never by connecting in clear text (docs/operations.md "Redis over TLS").
TEST(RedisUrlTest, RedissIsRefusedWithTheTunnelRecipe) {
  RedisUrl u;
  std::string error;
  EXPECT_FALSE(ParseRedisUrl("rediss://:s3cret@cache.internal:6380", u, error));
  EXPECT_EQ(error.find("s3cret"), std::string::npos) << error;
  EXPECT_NE(error.find("'rediss://:****@cache.internal:6380': TLS to Redis (rediss://) is not supported"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("stunnel"), std::string::npos) << error;
  EXPECT_NE(error.find("Redis over TLS"), std::string::npos) << error;
}

// The RESP a pipeline writes: array and bulk lengths of one and several digits, an empty argument,
// binary bytes, and clear() starting over.
TEST(RedisCommandsTest, WritesRespArraysOfBulkStrings) {
  RedisCommands c;
  c.Add({"SET", "k", ""});
  std::string twelve = "0123456789\r\n";
  std::vector<std::string> many(11, "x");
  many[0] = twelve;
  c.Add(many);
  EXPECT_EQ(c.size(), 2U);
  std::string want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*11\r\n$12\r\n0123456789\r\n\r\n";
  for (int i = 0; i < 10; ++i) want += "$1\r\nx\r\n";
  EXPECT_EQ(c.resp(), want);
  c.clear();
  EXPECT_TRUE(c.empty());
  c.Add({"PING"});
  EXPECT_EQ(c.resp(), "*1\r\n$4\r\nPING\r\n");
}

// Bulk lengths of every digit count up to five, and commands appended after others: byte for byte
// the RESP written an argument at a time.
TEST(RedisCommandsTest, WritesWhatAnArgumentAtATimeWrites) {
  RedisCommands c;
  std::string want;
  for (size_t length : {0, 1, 9, 10, 99, 100, 999, 1000, 12345}) {
    std::string argument(length, 'a');
    for (size_t i = 0; i < length; i += 7) argument[i] = static_cast<char>(i % 256);
    std::vector<std::string> args(length % 13 + 1, argument);
    args[0] = "HSETNX";
    c.Add(args);
    c.Add({"PEXPIRE", argument, "604800000"});
    want += "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) want += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    want += "*3\r\n$7\r\nPEXPIRE\r\n$" + std::to_string(length) + "\r\n" + argument + "\r\n$9\r\n604800000\r\n";
  }
  EXPECT_EQ(c.size(), 18U);
  EXPECT_EQ(c.resp(), want);
}

}  // namespace
}  // namespace pv
