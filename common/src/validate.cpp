#include "pv/validate.hpp"

#include <date/tz.h>

#include <exception>
#include <string>

namespace pv::validate {
namespace {

bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsAlnum(char c) {
  return IsAlpha(c) || IsDigit(c);
}

// RFC 5322 atext: letters, digits and these symbols.
bool IsAtext(char c) {
  return IsAlnum(c) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

}  // namespace

bool IsEmail(std::string_view s) {
  if (s.size() > 254) return false;
  size_t at = s.rfind('@');
  if (at == std::string_view::npos || at == 0 || at > 64) return false;
  std::string_view local = s.substr(0, at);
  std::string_view domain = s.substr(at + 1);
  if (local.front() == '.' || local.back() == '.') return false;
  char prev = 0;
  for (char c : local) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!IsAtext(c)) {
      return false;
    }
    prev = c;
  }
  if (domain.empty() || domain.size() > 253) return false;
  int labels = 0;
  std::string_view last_label;
  while (true) {
    size_t dot = domain.find('.');
    std::string_view label = domain.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!IsAlnum(c) && c != '-') return false;
    }
    ++labels;
    last_label = label;
    if (dot == std::string_view::npos) break;
    domain.remove_prefix(dot + 1);
  }
  if (labels < 2 || last_label.size() < 2) return false;
  for (char c : last_label) {
    if (!IsAlpha(c)) return false;
  }
  return true;
}

bool IsProjectName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || IsDigit(c) || c == '_' || c == '-')) return false;
  }
  return true;
}

bool IsE164(std::string_view s) {
  if (s.size() < 3 || s.size() > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9') return false;
  for (size_t i = 2; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}

bool IsLanguageTag(std::string_view s) {
  if (s.empty() || s.size() > 35) return false;
  int position = 0;  // 0 language, 1 script allowed, 2 region allowed, 3 variants only
  while (true) {
    size_t dash = s.find('-');
    std::string_view part = s.substr(0, dash);
    bool all_alpha = !part.empty();
    bool all_digit = !part.empty();
    bool all_alnum = !part.empty();
    for (char c : part) {
      all_alpha = all_alpha && IsAlpha(c);
      all_digit = all_digit && IsDigit(c);
      all_alnum = all_alnum && IsAlnum(c);
    }
    if (position == 0) {
      if (!all_alpha || part.size() < 2 || part.size() > 3) return false;
      position = 1;
    } else if (position <= 1 && all_alpha && part.size() == 4) {
      position = 2;
    } else if ((position <= 2 && ((all_alpha && part.size() == 2) || (all_digit && part.size() == 3))) ||
               (all_alnum && part.size() >= 5 && part.size() <= 8)) {
      position = 3;  // a region, or a variant (variants may follow a region or each other)
    } else {
      return false;
    }
    if (dash == std::string_view::npos) return true;
    s.remove_prefix(dash + 1);
  }
}

bool IsTimeZone(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  // The zone found last on this thread: most requests name the same few zones, and locate_zone
  // costs a search and an allocation. The database does not change while the process runs.
  thread_local std::string last_found;
  if (s == last_found) return true;
  try {
    if (date::locate_zone(s) == nullptr) return false;
  } catch (const std::exception&) {
    return false;
  }
  last_found.assign(s);
  return true;
}

void WarmUpTimeZones() {
  (void)date::get_tzdb();
}

}  // namespace pv::validate
