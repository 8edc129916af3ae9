// Send windows ("quiet hours"): a campaign may only send between two local times on some days, in
// the user's time zone (else the campaign's). Outside the window a send is deferred to the window's
// next opening through the delay ladder. Local times are converted with the IANA database (Howard
// Hinnant's date/tz over the system tzdata), so daylight-saving changes are handled: see
// send_window_test.cpp for the cases (an opening inside a skipped hour opens when the clocks jump;
// an opening inside a repeated hour opens at its first occurrence).
#pragma once

#include <date/tz.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pv/catalog.hpp"

namespace pv::dispatcher {

using TimePoint = std::chrono::system_clock::time_point;

// Whether `now` lies inside the window. A window whose end is before its start spans midnight; its
// part after midnight belongs to the day on which it opened (SendWindow::days names opening days).
bool InsideWindow(const SendWindow& window, const date::time_zone& zone, TimePoint now);

// nullopt when `now` is inside the window; else the first opening after `now`. Also nullopt when
// the window has no day (the catalog refuses that).
std::optional<TimePoint> NextWindowOpening(const SendWindow& window, const date::time_zone& zone,
                                           TimePoint now);

// Time zones by name, looked up once each (locate_zone searches the whole database).
class ZoneCache {
 public:
  // nullptr when the name is not a zone.
  const date::time_zone* Find(std::string_view name);

 private:
  std::unordered_map<std::string, const date::time_zone*> zones_;
};

}  // namespace pv::dispatcher
