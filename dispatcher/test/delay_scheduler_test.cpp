#include "pv/dispatcher/delay_scheduler.hpp"

#include <gtest/gtest.h>

namespace pv::dispatcher {
namespace {

using namespace std::chrono_literals;
using SysTime = std::chrono::system_clock::time_point;

const SysTime kT0 = SysTime(std::chrono::seconds(1'800'000'000));

TEST(LadderTiers, ChooseTheLargestTierNotPastTheDueTime) {
  auto tiers = ladder::ParseTiers({"1h", "5s", "30s", "2m", "10m"});
  ASSERT_EQ(tiers.size(), 5U);
  EXPECT_EQ(tiers.front().name, "5s");  // sorted shortest first
  EXPECT_EQ(tiers.back().topic, "pv.delay.1h");
  EXPECT_EQ(ladder::ChooseTier(tiers, 1s).name, "5s");  // shorter than every tier: the shortest
  EXPECT_EQ(ladder::ChooseTier(tiers, 5s).name, "5s");
  EXPECT_EQ(ladder::ChooseTier(tiers, 29s).name, "5s");
  EXPECT_EQ(ladder::ChooseTier(tiers, 30s).name, "30s");
  EXPECT_EQ(ladder::ChooseTier(tiers, 9min).name, "2m");
  EXPECT_EQ(ladder::ChooseTier(tiers, 11h).name, "1h");
  EXPECT_THROW(ladder::ParseTiers({"5s", "5000ms"}), std::invalid_argument);
  EXPECT_THROW(ladder::ParseTiers({"5x"}), std::invalid_argument);
}

TEST(LadderStep, WaitsUntilTheTierDelayOrTheDueTime) {
  auto tiers = ladder::ParseTiers({"1s", "2s"});
  const ladder::Tier& two = tiers[1];
  // Due in 10 s, held in the 2 s tier: release after 2 s, then hop (still 8 s to go).
  SysTime due = kT0 + 10s;
  LadderStep s = DecideLadderStep(two, kT0, due, kT0 + 1999ms);
  EXPECT_EQ(s.kind, LadderStep::Kind::kWait);
  EXPECT_EQ(s.release_at, kT0 + 2s);
  s = DecideLadderStep(two, kT0, due, kT0 + 2s);
  EXPECT_EQ(s.kind, LadderStep::Kind::kHop);
  // Due before the tier's delay ends: released exactly at the due time, to the target.
  due = kT0 + 1500ms;
  s = DecideLadderStep(two, kT0, due, kT0 + 1499ms);
  EXPECT_EQ(s.kind, LadderStep::Kind::kWait);
  EXPECT_EQ(s.release_at, due);
  s = DecideLadderStep(two, kT0, due, kT0 + 1500ms);
  EXPECT_EQ(s.kind, LadderStep::Kind::kToTarget);
  // Already overdue (a restart after a long stop): at once, to the target.
  s = DecideLadderStep(two, kT0 - 1h, kT0 - 1min, kT0);
  EXPECT_EQ(s.kind, LadderStep::Kind::kToTarget);
}

TEST(LadderStep, NeverReachesTheTargetBeforeTheDueTime) {
  auto tiers = ladder::ParseTiers({"5s", "30s", "2m", "10m", "1h"});
  // Walk a record through the ladder as the scheduler would, hop by hop, for many due times.
  for (std::chrono::seconds wait :
       std::initializer_list<std::chrono::seconds>{1s, 7s, 45s, 3min, 59min, 61min, 5h}) {
    SysTime now = kT0;
    SysTime due = kT0 + wait;
    const ladder::Tier* tier =
        &ladder::ChooseTier(tiers, std::chrono::duration_cast<std::chrono::milliseconds>(wait));
    SysTime produced = now;
    int hops = 0;
    while (true) {
      LadderStep s = DecideLadderStep(*tier, produced, due, now);
      if (s.kind == LadderStep::Kind::kWait) {
        ASSERT_GT(s.release_at, now);
        now = s.release_at;
        continue;
      }
      if (s.kind == LadderStep::Kind::kToTarget) break;
      ++hops;
      ASSERT_LT(hops, 100);
      tier = &ladder::ChooseTier(tiers, std::chrono::duration_cast<std::chrono::milliseconds>(due - now));
      produced = now;
    }
    EXPECT_EQ(now, due) << "wait " << wait.count();
  }
}

}  // namespace
}  // namespace pv::dispatcher
