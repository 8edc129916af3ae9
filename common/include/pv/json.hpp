// Small JSON helpers around RapidJSON: string escaping for hand-built lines, serialisation of a
// value, and RFC 3339 timestamps (the form every record and log line uses).
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pv {

// Appends `s` as a quoted JSON string, escaping quotes, backslashes and control characters.
void AppendJsonString(std::string& out, std::string_view s);
// The same with the escapes of RapidJSON's Writer (\b, \f, \u001F): for text that must stay
// byte-identical to what a Writer wrote before (the status store's entries).
void AppendJsonStringAsWriter(std::string& out, std::string_view s);
inline std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}
// Whether AppendJsonString(s) would escape a character of `s` (a control character, '"' or '\\').
bool NeedsJsonEscape(std::string_view s);
// In the text of a JSON document, the position of the quote that closes the string whose characters
// start at `i` (just after its opening quote); npos when the text ends first or holds a character no
// JSON string holds unescaped (a control character). Escapes are skipped whole: \" does not close.
size_t JsonStringEnd(std::string_view text, size_t i);
// Appends {"name":"value",...}.
void AppendJsonObject(std::string& out, const std::map<std::string, std::string>& values);

// Serialises a RapidJSON value compactly.
std::string ToJson(const rapidjson::Value& value);
// The same, appended to `out`, through a buffer and writer kept per thread (no allocation once warm).
void AppendJson(std::string& out, const rapidjson::Value& value);

// "2026-11-26T07:54:38.123Z" (UTC, milliseconds).
std::string FormatTimestamp(std::chrono::system_clock::time_point tp);

// The times pv reads from outside (record headers and timestamps, which any producer sets) are kept
// within +-kMaxUnixMillis of the epoch (1827 to 2112): system_clock counts nanoseconds in 64
// bits (years 1678 to 2261), and a time near that edge overflows, which is undefined behaviour, as soon
// as a delay is added to it. record_decoders_fuzz found both "4052-12-02T10:00:30Z" in pv-due-at and a
// record timestamp of 10^16 ms doing so.
inline constexpr std::int64_t kMaxUnixMillis = 4'500'000'000'000;

// Parses the form FormatTimestamp writes (and whole seconds, and a numeric offset such as +02:00).
// nullopt also for a time beyond kMaxUnixMillis.
std::optional<std::chrono::system_clock::time_point> ParseTimestamp(std::string_view s);

// Milliseconds since the Unix epoch.
inline std::int64_t ToUnixMillis(std::chrono::system_clock::time_point tp) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count();
}
inline std::int64_t NowUnixMillis() {
  return ToUnixMillis(std::chrono::system_clock::now());
}
// Clamped to +-kMaxUnixMillis.
inline std::chrono::system_clock::time_point FromUnixMillis(std::int64_t ms) {
  ms = ms > kMaxUnixMillis ? kMaxUnixMillis : (ms < -kMaxUnixMillis ? -kMaxUnixMillis : ms);
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

inline std::string_view AsStringView(const rapidjson::Value& v) {
  return {v.GetString(), v.GetStringLength()};
}

// Parses JSON from outside (a request body, a record) with bounded resources: nesting deeper than
// `max_depth` is refused by a linear scan before parsing, and the parse itself is RapidJSON's
// iterative one (no recursion that input can drive). Trailing commas are accepted, as in the seed's
// documented example. Returns an empty string on success, else a message naming the offset.
std::string ParseLimited(rapidjson::Document& doc, std::string_view text, int max_depth);

// The deepest nesting of arrays and objects in `text` (strings skipped), stopping early once it
// passes `stop_above`; `offset` gets where it first did.
int JsonDepth(std::string_view text, int stop_above, size_t* offset = nullptr);

// Records read from topics and answers read from providers are parsed by RapidJSON's recursive parser
// and then walked recursively (rendered, re-serialised), so their nesting is bounded first: a 1 MB
// record of '[' overflowed the stack of the dispatcher (and of every consumer of a topic), which then
// crashed again on the same record after each restart. Ingest accepts at most 1000 levels
// (ingest.max_json_depth) and a record adds none to its body's.
inline constexpr int kMaxRecordDepth = 1024;

// doc.Parse<kFlags>(text), except that text nested deeper than kMaxRecordDepth leaves `doc` with a
// parse error (that of an empty document) without being parsed. Each level takes a byte ('[' or '{'),
// so a text of at most kMaxRecordDepth bytes (most triggers and events) is not scanned for it.
template <unsigned kFlags = rapidjson::kParseDefaultFlags>
void ParseRecord(rapidjson::Document& doc, std::string_view text) {
  if (text.size() > static_cast<size_t>(kMaxRecordDepth) &&
      JsonDepth(text, kMaxRecordDepth) > kMaxRecordDepth) {
    doc.SetNull();
    doc.Parse<kFlags>("", 0);
    return;
  }
  doc.Parse<kFlags>(text.data(), text.size());
}

// ParseRecord over `text` itself (kParseInsituFlag): each string is decoded where it is, so the
// document's strings point into `text`, which the parse changes; none is copied into its allocator.
// As with ParseRecord (RapidJSON's UTF-8 input stream), a leading byte order mark is skipped, byte by
// byte, and a NUL byte ends the text.
// `text` holds `size` bytes and a NUL byte after them.
template <unsigned kFlags = rapidjson::kParseDefaultFlags>
void ParseRecordInPlace(rapidjson::Document& doc, char* text, size_t size) {
  if (size > static_cast<size_t>(kMaxRecordDepth) &&
      JsonDepth(std::string_view(text, size), kMaxRecordDepth) > kMaxRecordDepth) {
    doc.SetNull();
    doc.Parse<kFlags>("", 0);
    return;
  }
  char* start = text;
  for (unsigned char bom : {0xEF, 0xBB, 0xBF}) {
    if (static_cast<unsigned char>(*start) == bom) ++start;
  }
  doc.ParseInsitu<kFlags | rapidjson::kParseInsituFlag>(start);
}

template <unsigned kFlags = rapidjson::kParseDefaultFlags>
void ParseRecordInPlace(rapidjson::Document& doc, std::string& text) {
  ParseRecordInPlace<kFlags>(doc, text.data(), text.size());
}

// Member lookups that tolerate absence and wrong types.
const rapidjson::Value* FindMember(const rapidjson::Value& object, std::string_view name);
std::optional<std::string_view> FindString(const rapidjson::Value& object, std::string_view name);
// The string member `name`, or "" when it is absent or not a string.
std::string StringMember(const rapidjson::Value& object, std::string_view name);

// Appends `,"name":value` (value as a JSON string) to an object being written, nothing when `value` is
// empty: the optional fields of the records written by hand.
void AppendOptionalField(std::string& out, std::string_view name, std::string_view value);

}  // namespace pv
