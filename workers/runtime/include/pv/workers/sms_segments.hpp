// How many SMS segments a text takes, which is what carriers bill and what SMS rate limits count.
// GSM-7 (the GSM 03.38 default alphabet, extension characters counting twice): 160 characters in
// one segment, 153 per segment when concatenated. Anything else goes as UCS-2: 70 UTF-16 code units,
// 67 per segment when concatenated.
#pragma once

#include <string_view>

namespace pv::workers {

struct SmsSegments {
  bool gsm7 = true;
  int units = 0;     // septets (GSM-7) or UTF-16 code units (UCS-2)
  int segments = 0;  // 0 for an empty text
};

// `text` is UTF-8; invalid bytes count as one UCS-2 unit each.
SmsSegments CountSmsSegments(std::string_view text);

}  // namespace pv::workers
