#include "pv/dispatcher/send_window.hpp"

#include <gtest/gtest.h>

#include "pv/json.hpp"

namespace pv::dispatcher {
namespace {

TimePoint At(const char* rfc3339) {
  auto t = ParseTimestamp(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(TimePoint{});
}

std::string Next(const SendWindow& w, const char* zone, const char* now) {
  auto t = NextWindowOpening(w, *date::locate_zone(zone), At(now));
  return t ? FormatTimestamp(*t) : "inside";
}

SendWindow Window(int start_h, int start_m, int end_h, int end_m, std::uint8_t days = 0x7f) {
  return SendWindow{start_h * 60 + start_m, end_h * 60 + end_m, days};
}

// New York, 2026: clocks go forward on Sunday 8 March at 02:00 EST (07:00Z) to 03:00 EDT, and back on
// Sunday 1 November at 02:00 EDT (06:00Z) to 01:00 EST.

TEST(SendWindow, InsideAndOutsideInLocalTime) {
  SendWindow w = Window(9, 0, 21, 0);
  EXPECT_EQ(Next(w, "America/New_York", "2026-06-10T13:00:00Z"), "inside");  // 09:00 EDT, start is inclusive
  EXPECT_EQ(Next(w, "America/New_York", "2026-06-11T00:59:59Z"), "inside");  // 20:59:59 EDT
  EXPECT_EQ(Next(w, "America/New_York", "2026-06-11T01:00:00Z"),
            "2026-06-11T13:00:00.000Z");  // end exclusive
  EXPECT_EQ(Next(w, "America/New_York", "2026-06-10T12:59:00Z"), "2026-06-10T13:00:00.000Z");
  EXPECT_EQ(Next(w, "Asia/Kolkata", "2026-06-10T03:00:00Z"),
            "2026-06-10T03:30:00.000Z");  // 08:30 IST (+05:30)
}

// A zone whose last period never ends (UTC, Asia/Tokyo): its end was converted to nanoseconds and
// overflowed (undefined behaviour, seen under UBSan by record_decoders_fuzz; scripts/fuzz builds with it).
TEST(SendWindow, NextOpeningInAZoneWithoutTransitions) {
  SendWindow w = Window(9, 0, 21, 0);
  EXPECT_EQ(Next(w, "UTC", "2026-12-02T22:00:00Z"), "2026-12-03T09:00:00.000Z");
  EXPECT_EQ(Next(w, "Asia/Tokyo", "2026-12-02T13:00:00Z"), "2026-12-03T00:00:00.000Z");  // 22:00 JST
}

TEST(SendWindow, NextOpeningAcrossSpringForward) {
  SendWindow w = Window(9, 0, 21, 0);
  // Saturday 22:00 EST; Sunday 09:00 is EDT (13:00Z), not 14:00Z as a fixed offset would say.
  EXPECT_EQ(Next(w, "America/New_York", "2026-03-08T03:00:00Z"), "2026-03-08T13:00:00.000Z");
  // The day before, the same local time is an hour later in UTC.
  EXPECT_EQ(Next(w, "America/New_York", "2026-03-07T03:00:00Z"), "2026-03-07T14:00:00.000Z");
  // An opening in the skipped hour opens when the clocks jump (03:00 EDT = 07:00Z).
  EXPECT_EQ(Next(Window(2, 30, 4, 0), "America/New_York", "2026-03-08T06:00:00Z"),
            "2026-03-08T07:00:00.000Z");
  EXPECT_EQ(Next(Window(2, 30, 4, 0), "America/New_York", "2026-03-08T07:00:00Z"), "inside");
  // A window wholly inside the skipped hour does not open that day.
  EXPECT_EQ(Next(Window(2, 0, 2, 45), "America/New_York", "2026-03-08T06:00:00Z"),
            "2026-03-09T06:00:00.000Z");
}

TEST(SendWindow, NextOpeningAcrossFallBack) {
  // 01:30 happens twice on 1 November: 05:30Z (EDT) and 06:30Z (EST).
  SendWindow w = Window(1, 30, 3, 0);
  EXPECT_EQ(Next(w, "America/New_York", "2026-11-01T04:00:00Z"), "2026-11-01T05:30:00.000Z");
  EXPECT_EQ(Next(w, "America/New_York", "2026-11-01T05:45:00Z"), "inside");
  // 06:15Z is 01:15 EST, before the window by the clock on the wall; it opens again at 01:30 EST.
  EXPECT_EQ(Next(w, "America/New_York", "2026-11-01T06:15:00Z"), "2026-11-01T06:30:00.000Z");
  // Clocks going back into a window reopen it at the transition: 01:45 EDT, then 01:00 EST at 06:00Z.
  EXPECT_EQ(Next(Window(0, 30, 1, 30), "America/New_York", "2026-11-01T05:45:00Z"),
            "2026-11-01T06:00:00.000Z");
  // A normal evening window after the change: 09:00 EST = 14:00Z.
  EXPECT_EQ(Next(Window(9, 0, 21, 0), "America/New_York", "2026-11-01T03:00:00Z"),
            "2026-11-01T14:00:00.000Z");
}

TEST(SendWindow, DaysOfWeekAndWindowsOverMidnight) {
  constexpr std::uint8_t kFriday = 1U << 4;
  constexpr std::uint8_t kMonday = 1U << 0;
  // Friday 22:00 to 06:00, UTC. 2026-06-12 is a Friday.
  SendWindow night = Window(22, 0, 6, 0, kFriday);
  EXPECT_EQ(Next(night, "UTC", "2026-06-12T23:00:00Z"), "inside");
  EXPECT_EQ(Next(night, "UTC", "2026-06-13T05:59:00Z"), "inside");  // Saturday morning: opened Friday
  EXPECT_EQ(Next(night, "UTC", "2026-06-13T23:00:00Z"), "2026-06-19T22:00:00.000Z");
  EXPECT_EQ(Next(night, "UTC", "2026-06-12T05:00:00Z"),
            "2026-06-12T22:00:00.000Z");  // Thursday's night: closed
  // Weekdays only: Saturday goes to Monday.
  EXPECT_EQ(Next(Window(9, 0, 17, 0, kMonday), "Europe/Berlin", "2026-06-13T10:00:00Z"),
            "2026-06-15T07:00:00.000Z");
  // Today's opening passed: same weekday next week.
  EXPECT_EQ(Next(Window(9, 0, 10, 0, kMonday), "UTC", "2026-06-15T11:00:00Z"), "2026-06-22T09:00:00.000Z");
  // Until midnight (24:00).
  EXPECT_EQ(Next(Window(20, 0, 24, 0), "UTC", "2026-06-15T23:59:59Z"), "inside");
}

TEST(SendWindow, ZoneCache) {
  ZoneCache cache;
  EXPECT_NE(cache.Find("America/Sao_Paulo"), nullptr);
  EXPECT_EQ(cache.Find("America/Sao_Paulo"), cache.Find("America/Sao_Paulo"));
  EXPECT_EQ(cache.Find("Mars/Olympus"), nullptr);
}

}  // namespace
}  // namespace pv::dispatcher
