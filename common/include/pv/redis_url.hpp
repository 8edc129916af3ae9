// redis.url as every component reads it (the dispatcher's suppression store, the workers' dedupe
// store, pvctl suppress): one parser, so a URL that works for one works for all. There were two, and
// they had drifted: the workers' took "redis://h:6379abc/-1" as port 6379, database -1, and read
// "redis://[::1]:6380" as host "[::1]" port 6380 only by luck of rfind (found by config_fuzz).
#pragma once

#include <string>
#include <string_view>

namespace pv {

struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;  // from redis://[user]:password@host
  int db = 0;            // from redis://host:port/db
};

// Parses redis://[[user]:password@]host[:port][/db] (an IPv6 host in brackets). Returns false and
// sets `error` otherwise; the error never shows the password (it is logged and printed).
bool ParseRedisUrl(std::string_view url, RedisUrl& out, std::string& error);

// Why a Redis URL is refused for its scheme, or "" when it starts with redis://, the only scheme pv
// speaks. rediss:// (TLS) gets its own answer: pv's hiredis client has no TLS, so it refuses rather
// than connect in clear text, and the message points at the tunnel recipe (docs/operations.md "Redis
// over TLS"). The URL in the message has its password masked (MaskUrlPassword). Tests:
// RedisUrlTest.RedissIsRefusedWithTheTunnelRecipe (common/test/redis_url_test.cpp),
// WorkerConfigTest.RedissIsRefusedWithTheTunnelRecipe.
std::string RedisUrlSchemeError(std::string_view url);

}  // namespace pv
