#include "pv/delay_ladder.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pv/topics.hpp"
#include "test_util.hpp"

namespace pv::ladder {
namespace {

using ::pv::testing::ErrorMessage;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;

std::vector<std::string> Names(const std::vector<Tier>& tiers) {
  std::vector<std::string> out;
  for (const auto& t : tiers) out.push_back(t.name);
  return out;
}

TEST(DelayLadderTest, ParseTiersUnitsAndOrder) {
  auto tiers = ParseTiers({"1h", "5s", "2m", "30s", "10m", "250ms"});
  ASSERT_EQ(tiers.size(), 6U);
  EXPECT_EQ(Names(tiers), (std::vector<std::string>{"250ms", "5s", "30s", "2m", "10m", "1h"}));
  EXPECT_EQ(tiers[0].delay, milliseconds(250));
  EXPECT_EQ(tiers[1].delay, seconds(5));
  EXPECT_EQ(tiers[2].delay, seconds(30));
  EXPECT_EQ(tiers[3].delay, minutes(2));
  EXPECT_EQ(tiers[4].delay, minutes(10));
  EXPECT_EQ(tiers[5].delay, hours(1));
  EXPECT_EQ(tiers[0].topic, "pv.delay.250ms");
  EXPECT_EQ(tiers[2].topic, "pv.delay.30s");
  EXPECT_EQ(tiers[5].topic, "pv.delay.1h");
}

TEST(DelayLadderTest, DefaultTiersParse) {
  auto tiers = ParseTiers(topics::DefaultDelayTiers());
  EXPECT_EQ(Names(tiers), (std::vector<std::string>{"5s", "30s", "2m", "10m", "1h"}));
}

TEST(DelayLadderTest, ParseTiersRejectsBadNames) {
  for (const char* bad : {"", "s", "5", "5x", "5sec", "5S", "-5s", "+5s", "0s", "0ms", "1234567890s", " 5s",
                          "5s ", "1.5s", "ms5"}) {
    std::string message = ErrorMessage<std::invalid_argument>([&] { ParseTiers({"30s", bad}); });
    EXPECT_THAT(message, HasSubstr(std::string("'") + bad + "'")) << bad;
  }
}

TEST(DelayLadderTest, ParseTiersRejectsDuplicatesAndEmpty) {
  EXPECT_THAT(ErrorMessage<std::invalid_argument>([] {
                ParseTiers({"5s", "60s", "1m"});
              }),
              HasSubstr("delay tiers '60s' and '1m' are the same delay"));
  EXPECT_THAT(ErrorMessage<std::invalid_argument>([] {
                ParseTiers({"5s", "5s"});
              }),
              HasSubstr("'5s' and '5s'"));
  EXPECT_THAT(ErrorMessage<std::invalid_argument>([] {
                ParseTiers({"1000ms", "1s"});
              }),
              HasSubstr("are the same delay"));
  EXPECT_THAT(ErrorMessage<std::invalid_argument>([] { ParseTiers({}); }),
              HasSubstr("at least one delay tier is required"));
}

TEST(DelayLadderTest, ChooseTierTakesTheLargestTierNotPastTheDueTime) {
  auto tiers = ParseTiers(topics::DefaultDelayTiers());
  auto choose = [&](milliseconds remaining) { return ChooseTier(tiers, remaining).name; };
  // Shorter than every tier: the shortest (the record is then released at its due time).
  EXPECT_EQ(choose(milliseconds(-5000)), "5s");
  EXPECT_EQ(choose(milliseconds(0)), "5s");
  EXPECT_EQ(choose(milliseconds(4999)), "5s");
  EXPECT_EQ(choose(seconds(5)), "5s");
  EXPECT_EQ(choose(milliseconds(29999)), "5s");
  EXPECT_EQ(choose(seconds(30)), "30s");
  EXPECT_EQ(choose(seconds(90)), "30s");
  EXPECT_EQ(choose(minutes(2)), "2m");
  EXPECT_EQ(choose(minutes(9) + seconds(59)), "2m");
  EXPECT_EQ(choose(minutes(10)), "10m");
  EXPECT_EQ(choose(minutes(59)), "10m");
  EXPECT_EQ(choose(hours(1)), "1h");
  EXPECT_EQ(choose(hours(48)), "1h");
}

TEST(DelayLadderTest, ChooseTierWithOneTier) {
  auto tiers = ParseTiers({"1m"});
  EXPECT_EQ(ChooseTier(tiers, seconds(1)).name, "1m");
  EXPECT_EQ(ChooseTier(tiers, hours(1)).name, "1m");
}

TEST(DelayLadderTest, ReleaseTimeIsTheEarlierOfDueAndTierDelay) {
  auto tiers = ParseTiers({"30s"});
  const Tier& tier = tiers[0];
  const auto t = std::chrono::system_clock::time_point(seconds(1795679678));
  EXPECT_EQ(ReleaseTime(tier, t, t + seconds(100)), t + seconds(30));
  EXPECT_EQ(ReleaseTime(tier, t, t + seconds(30)), t + seconds(30));
  EXPECT_EQ(ReleaseTime(tier, t, t + seconds(10)), t + seconds(10));
  EXPECT_EQ(ReleaseTime(tier, t, t - seconds(10)), t - seconds(10));
}

TEST(DelayLadderTest, ALongWaitHopsDownTheLadderAndArrivesOnTime) {
  // Simulates the scheduler: enter the tier chosen for the remaining time, wait its release, repeat.
  auto tiers = ParseTiers(topics::DefaultDelayTiers());
  const auto start = std::chrono::system_clock::time_point(seconds(1795679678));
  const auto due = start + hours(2) + minutes(13) + seconds(7) + milliseconds(250);
  auto now = start;
  std::vector<std::string> path;
  for (int hop = 0; hop < 100 && now < due; ++hop) {
    const Tier& tier = ChooseTier(tiers, std::chrono::duration_cast<milliseconds>(due - now));
    path.push_back(tier.name);
    auto release = ReleaseTime(tier, now, due);
    ASSERT_GT(release, now);
    ASSERT_LE(release, due);
    now = release;
  }
  EXPECT_EQ(now, due);
  EXPECT_EQ(path, (std::vector<std::string>{"1h", "1h", "10m", "2m", "30s", "30s", "5s", "5s"}));
}

// pv-attempt is read the same way by the delay scheduler and the workers: what Schedule writes, and
// nothing else (std::stoi took "2x" as 2 and "-3" as -3).
TEST(DelayLadderTest, ParseAttemptReadsOnlyWhatScheduleWrites) {
  EXPECT_EQ(ParseAttempt("1"), 1);
  EXPECT_EQ(ParseAttempt("17"), 17);
  EXPECT_EQ(ParseAttempt("2147483647"), 2147483647);
  for (const char* bad : {"", "0", "-3", "2x", " 2", "+2", "2147483648", "99999999999999999999"}) {
    EXPECT_EQ(ParseAttempt(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace pv::ladder
