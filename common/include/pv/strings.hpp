// Small string helpers shared by every component (one definition, not a copy per file).
#pragma once

#include <cctype>
#include <charconv>
#include <cstdint>
#include <string_view>
#include <system_error>

namespace pv {

// ASCII case-insensitive equality (HTTP field names, locale tags, Kafka API names).
// Inline ASCII folding, not std::tolower: that is a call into libc per character (and the program
// never leaves the "C" locale, where both agree), and ingest compares every request's field names.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// `text` as a whole number (decimal, an optional '-', nothing around it; for a floating-point T also a
// fraction and exponent): false, `out` unchanged, when it is empty, holds anything else or does not fit.
template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return false;
  out = value;
  return true;
}

// `text` as a non-negative count of digits only (no sign, no spaces; at most 18, so it fits):
// milliseconds of a record's version header and the like.
inline bool ParseDigits(std::string_view text, std::int64_t& out) {
  if (text.empty() || text.size() > 18) return false;
  std::int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

}  // namespace pv
