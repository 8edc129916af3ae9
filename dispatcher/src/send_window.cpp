#include "pv/dispatcher/send_window.hpp"

namespace pv::dispatcher {
namespace {

// Monday = bit 0 ... Sunday = bit 6, as in SendWindow::days.
bool OpensOn(const SendWindow& window, date::local_days day) {
  unsigned index = (date::weekday(day).c_encoding() + 6) % 7;
  return (window.days >> index) & 1U;
}

}  // namespace

bool InsideWindow(const SendWindow& window, const date::time_zone& zone, TimePoint now) {
  auto local = zone.to_local(now);
  auto today = date::floor<date::days>(local);
  auto minute = std::chrono::duration_cast<std::chrono::minutes>(local - today).count();
  if (window.start_minute < window.end_minute) {
    return OpensOn(window, today) && minute >= window.start_minute && minute < window.end_minute;
  }
  // Spans midnight: the evening part opened today, the morning part opened yesterday.
  if (minute >= window.start_minute) return OpensOn(window, today);
  if (minute < window.end_minute) return OpensOn(window, today - date::days(1));
  return false;
}

std::optional<TimePoint> NextWindowOpening(const SendWindow& window, const date::time_zone& zone,
                                           TimePoint now) {
  if (InsideWindow(window, zone, now)) return std::nullopt;
  std::optional<TimePoint> best;
  auto consider = [&](TimePoint t) {
    if (t > now && (!best || t < *best) && InsideWindow(window, zone, t)) best = t;
  };
  // The opening on each day from today for eight days (today's may have passed; the same weekday next
  // week may be the only one). An opening in a repeated hour (clocks back) has two instants: the
  // first, and the second for a `now` between them. One in a skipped hour (clocks forward) maps to the
  // instant of the jump; it is kept only if the window is open then (a window lying wholly inside the
  // skipped hour does not open that day).
  auto today = date::floor<date::days>(zone.to_local(now));
  for (int k = 0; k <= 7; ++k) {
    date::local_days day = today + date::days(k);
    if (!OpensOn(window, day)) continue;
    auto opening_local = day + std::chrono::minutes(window.start_minute);
    consider(zone.to_sys(opening_local, date::choose::earliest));
    consider(zone.to_sys(opening_local, date::choose::latest));
  }
  // The clocks going back can also put the local time inside the window without passing its start.
  // Compared in seconds: a zone without further transitions (UTC, Asia/Tokyo) ends its last period at
  // date's "forever" (year 32767), which overflows TimePoint's nanoseconds when converted to it (undefined
  // behaviour on every deferral in such a zone; record_decoders_fuzz and the sanitized suite found it under
  // UBSan).
  auto horizon = date::floor<std::chrono::seconds>(now + date::days(9));
  TimePoint t = now;
  for (int i = 0; i < 8; ++i) {
    date::sys_info info = zone.get_info(date::floor<std::chrono::seconds>(t));
    if (info.end >= horizon) break;
    t = info.end;
    consider(t);
  }
  return best;
}

const date::time_zone* ZoneCache::Find(std::string_view name) {
  auto it = zones_.find(std::string(name));
  if (it != zones_.end()) return it->second;
  const date::time_zone* zone = nullptr;
  try {
    zone = date::locate_zone(name);
  } catch (const std::exception&) {
    zone = nullptr;
  }
  zones_.emplace(std::string(name), zone);
  return zone;
}

}  // namespace pv::dispatcher
