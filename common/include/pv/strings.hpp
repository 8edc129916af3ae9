// Small string helpers shared by every component (one definition, not a copy per file).
#pragma once

#include <cctype>
#include <string_view>

namespace pv {

// ASCII case-insensitive equality (HTTP field names, locale tags, Kafka API names).
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace pv
