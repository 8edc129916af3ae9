// Field checks shared by ingest (what a trigger may carry) and the dispatcher (what it relies on).
#pragma once

#include <string_view>

namespace pv::validate {

// A deliverable address: local@domain, local part ≤ 64 bytes of atext/dots (no leading, trailing or
// doubled dot), domain of ≥ 2 LDH labels with an alphabetic TLD, whole ≤ 254 bytes.
bool IsEmail(std::string_view s);
// E.164: '+', a non-zero digit, then 1 to 14 more digits.
bool IsE164(std::string_view s);
// A BCP 47 language tag of the common shapes: language (2-3 letters) [-Script (4 letters)]
// [-Region (2 letters or 3 digits)] [-variant (5-8 alphanumerics)]*. "en", "pt-BR", "zh-Hant-TW".
bool IsLanguageTag(std::string_view s);
// A project name: 1 to 64 of [a-z0-9_-]. Projects are joined with other parts by ':' in Redis
// members ("user:<project>:<external_id>" in the suppression sets) and appear in keys, records and
// metrics: a ':' or any other character would make those ambiguous across projects.
bool IsProjectName(std::string_view s);
// The rule above, for error messages.
inline constexpr std::string_view kProjectNameRule = "1 to 64 of a-z, 0-9, '_' and '-'";
// A zone of the IANA time zone database installed on the machine (tzdata).
bool IsTimeZone(std::string_view s);
// Loads the time zone database now (first use costs a few milliseconds); throws when tzdata is missing.
void WarmUpTimeZones();

}  // namespace pv::validate
