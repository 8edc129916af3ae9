#include <gtest/gtest.h>
#include <stdlib.h>

#include "pv/config.hpp"
#include "pv/dispatcher/dispatcher.hpp"
#include "pv/suppression_keys.hpp"

namespace pv::dispatcher {
namespace {

// Compose keeps suppressions in a Redis of their own; a deployment with one Redis sets only redis.url.
TEST(SuppressionRedisUrl, OwnSettingElseRedisUrlElseDefault) {
  auto config = Config::FromYaml(
      "redis:\n  url: redis://marks:6379\nsuppression:\n  redis_url: redis://suppression:6379\n");
  EXPECT_EQ(SuppressionRedisUrl(config, "redis://127.0.0.1:6379"), "redis://suppression:6379");
  EXPECT_EQ(DispatcherOptions::FromConfig(config).redis_url, "redis://suppression:6379");

  auto shared = Config::FromYaml("redis:\n  url: redis://one:6379/2\n");
  EXPECT_EQ(SuppressionRedisUrl(shared, "redis://127.0.0.1:6379"), "redis://one:6379/2");
  EXPECT_EQ(DispatcherOptions::FromConfig(shared).redis_url, "redis://one:6379/2");

  auto none = Config::FromYaml("log:\n  level: info\n");
  EXPECT_EQ(SuppressionRedisUrl(none, "redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
  EXPECT_EQ(DispatcherOptions::FromConfig(none).redis_url, "");  // the dispatcher: suppression off
}

// An empty override (PV_SUPPRESSION_REDIS_URL= in an env file) must not switch suppression off.
TEST(SuppressionRedisUrl, EmptyMeansUnset) {
  auto config = Config::FromYaml("redis:\n  url: redis://marks:6379\nsuppression:\n  redis_url: \"\"\n");
  EXPECT_EQ(SuppressionRedisUrl(config, ""), "redis://marks:6379");
}

TEST(SuppressionRedisUrl, EnvironmentWins) {
  ::setenv("PV_SUPPRESSION_REDIS_URL", "redis://from-env:6380", 1);
  auto config = Config::FromYaml("suppression:\n  redis_url: redis://from-file:6379\n");
  EXPECT_EQ(SuppressionRedisUrl(config, ""), "redis://from-env:6380");
  ::unsetenv("PV_SUPPRESSION_REDIS_URL");
}

}  // namespace
}  // namespace pv::dispatcher
