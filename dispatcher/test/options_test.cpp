// The dispatcher's settings that shape its consumers (DispatcherOptions::FromConfig).
#include <gtest/gtest.h>

#include "pv/config.hpp"
#include "pv/dispatcher/dispatcher.hpp"

namespace pv::dispatcher {
namespace {

// The trigger consumer's Fetches wait up to dispatcher.fetch_wait_ms for dispatcher.fetch_min_bytes
// of triggers (docs/configuration-dispatcher.md); out-of-range values are refused by name.
TEST(DispatcherOptionsTest, TheTriggerConsumersFetchSettingsAreReadAndChecked) {
  DispatcherOptions defaults = DispatcherOptions::FromConfig(Config::FromYaml("{}"));
  EXPECT_EQ(defaults.fetch_min_bytes, 64 * 1024);
  EXPECT_EQ(defaults.fetch_wait_ms, 5);
  DispatcherOptions kafkas = DispatcherOptions::FromConfig(
      Config::FromYaml("dispatcher:\n  fetch_min_bytes: 1\n  fetch_wait_ms: 500\n"));
  EXPECT_EQ(kafkas.fetch_min_bytes, 1);
  EXPECT_EQ(kafkas.fetch_wait_ms, 500);
  for (const char* bad : {"dispatcher:\n  fetch_wait_ms: 0\n", "dispatcher:\n  fetch_wait_ms: 10001\n",
                          "dispatcher:\n  fetch_min_bytes: 0\n", "dispatcher:\n  fetch_min_bytes: 16777217\n"}) {
    try {
      DispatcherOptions::FromConfig(Config::FromYaml(bad));
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("dispatcher.fetch_"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace pv::dispatcher
