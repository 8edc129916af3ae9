#include "pv/json.hpp"

#include <date/date.h>
#include <fmt/format.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <bit>
#include <cstdint>
#include <cstring>

namespace pv {

namespace {

// The bytes of the 8 at `p` that need an escape (a control character, '"' or '\\'), each flagged by its
// high bit: the "has a byte less than n" and "has a zero byte" word tests. A byte is flagged wrongly
// only above (after) one flagged rightly, so the lowest flag, and a word without one, are exact.
// Bytes of 0x80 and above (UTF-8) never match.
std::uint64_t EscapeFlags(const char* p) {
  constexpr std::uint64_t kOnes = 0x0101010101010101;
  constexpr std::uint64_t kHigh = 0x8080808080808080;
  std::uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  std::uint64_t quote = w ^ (kOnes * '"');
  std::uint64_t backslash = w ^ (kOnes * '\\');
  std::uint64_t control = (w - kOnes * 0x20) & ~w;
  return (control | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash)) & kHigh;
}

bool NeedsEscape(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\';
}

// The position of the first byte of `s` from `i` on that needs an escape, else s.size(). A word
// holding one goes straight to it (its lowest flag), instead of being tried again a byte further on.
size_t NextEscape(std::string_view s, size_t i) {
  for (; i + sizeof(std::uint64_t) <= s.size(); i += sizeof(std::uint64_t)) {
    std::uint64_t flags = EscapeFlags(s.data() + i);
    if (flags == 0) continue;
    if constexpr (std::endian::native == std::endian::little) return i + std::countr_zero(flags) / 8;
    while (!NeedsEscape(static_cast<unsigned char>(s[i]))) ++i;
    return i;
  }
  while (i < s.size() && !NeedsEscape(static_cast<unsigned char>(s[i]))) ++i;
  return i;
}

// `n` more bytes at the end of `out`, for the caller to fill: one size check instead of one per append.
char* AppendRoom(std::string& out, size_t n) {
  size_t at = out.size();
  out.resize(at + n);
  return out.data() + at;
}

// AppendJsonString, or with `kAsWriter` the escapes of RapidJSON's Writer: \b and \f in their short
// forms and upper-case hex digits.
template <bool kAsWriter>
void AppendEscaped(std::string& out, std::string_view s) {
  static constexpr const char* kHex = kAsWriter ? "0123456789ABCDEF" : "0123456789abcdef";
  size_t first = NextEscape(s, 0);
  if (first == s.size()) {
    // Nothing to escape (ids, names, timestamps: most strings of a record): one resize and a copy
    // instead of three appends.
    char* p = AppendRoom(out, s.size() + 2);
    *p = '"';
    if (!s.empty()) std::memcpy(p + 1, s.data(), s.size());
    p[s.size() + 1] = '"';
    return;
  }
  out += '"';
  // Runs of characters that need no escape are appended whole: every record's strings go through
  // here, and a character at a time was slower than RapidJSON's Writer (the dispatcher's send). The
  // runs are found 8 bytes at a time (the send's html and text: ~9,000 instructions per trigger of
  // the dispatcher's ~70,000 a byte at a time), from a word holding an escape straight to it (1,000
  // more per trigger).
  size_t run = 0;
  for (size_t i = first; i < s.size(); i = NextEscape(s, i + 1)) {
    auto c = static_cast<unsigned char>(s[i]);
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (kAsWriter && c == '\b') {
          out += "\\b";
        } else if (kAsWriter && c == '\f') {
          out += "\\f";
        } else {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  AppendEscaped<false>(out, s);
}

void AppendJsonStringAsWriter(std::string& out, std::string_view s) {
  AppendEscaped<true>(out, s);
}

bool NeedsJsonEscape(std::string_view s) {
  return NextEscape(s, 0) < s.size();
}

size_t JsonStringEnd(std::string_view text, size_t i) {
  // NextEscape stops at the three kinds of byte that can end a run: '"', '\\' and control characters.
  for (i = NextEscape(text, i); i < text.size(); i = NextEscape(text, i)) {
    if (text[i] == '"') return i;
    if (text[i] != '\\') return std::string_view::npos;
    i += 2;  // the backslash and the character it escapes (\uXXXX's digits need no escape)
  }
  return std::string_view::npos;
}

void AppendJsonObject(std::string& out, const std::map<std::string, std::string>& values) {
  out += '{';
  bool first = true;
  for (const auto& [name, value] : values) {
    if (!first) out += ',';
    first = false;
    AppendJsonString(out, name);
    out += ':';
    AppendJsonString(out, value);
  }
  out += '}';
}

std::string ToJson(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return {buffer.GetString(), buffer.GetSize()};
}

void AppendJson(std::string& out, const rapidjson::Value& value) {
  // RapidJSON's buffer takes a character without a capacity check (a Writer over a std::string cost
  // half as much again), and the writer keeps its level stack: neither allocates once warm.
  thread_local rapidjson::StringBuffer buffer;
  thread_local rapidjson::Writer<rapidjson::StringBuffer> writer;
  buffer.Clear();
  writer.Reset(buffer);
  value.Accept(writer);
  out.append(buffer.GetString(), buffer.GetSize());
}

std::string FormatTimestamp(std::chrono::system_clock::time_point tp) {
  auto ms = std::chrono::floor<std::chrono::milliseconds>(tp);
  auto day = std::chrono::floor<date::days>(ms);
  date::year_month_day ymd(day);
  date::hh_mm_ss<std::chrono::milliseconds> hms(ms - day);
  int year = static_cast<int>(ymd.year());
  if (year >= 0 && year <= 9999) {
    // Every record and event carries one: by hand, the digits straight into place (fmt's runtime
    // format string cost ~4,000 instructions a call, a tenth of a worker's send).
    std::string out = "0000-00-00T00:00:00.000Z";
    auto put = [&out](std::size_t end, unsigned value) {
      for (std::size_t i = end; value != 0; value /= 10) out[--i] = static_cast<char>('0' + value % 10);
    };
    put(4, static_cast<unsigned>(year));
    put(7, static_cast<unsigned>(ymd.month()));
    put(10, static_cast<unsigned>(ymd.day()));
    put(13, static_cast<unsigned>(hms.hours().count()));
    put(16, static_cast<unsigned>(hms.minutes().count()));
    put(19, static_cast<unsigned>(hms.seconds().count()));
    put(23, static_cast<unsigned>(hms.subseconds().count()));
    return out;
  }
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", year, static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(),
                     hms.seconds().count(), hms.subseconds().count());
}

std::optional<std::chrono::system_clock::time_point> ParseTimestamp(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.fff...](Z|+hh:mm|-hh:mm). Hand-parsed: date::parse trips a GCC 12
  // maybe-uninitialized warning inside date.h under -Werror.
  auto digits = [&s](size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      out = out * 10 + (s[i] - '0');
    }
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  if (!digits(0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
      !digits(8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(11, 2, h) ||
      s[13] != ':' || !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, sec)) {
    return std::nullopt;
  }
  size_t pos = 19;
  std::int64_t millis = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int scale = 100;
    size_t first = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      millis += (s[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == first) return std::nullopt;
  }
  std::int64_t offset_minutes = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh = 0, om = 0;
    if (!digits(pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' || !digits(pos + 4, 2, om) ||
        oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  date::year_month_day ymd{date::year(y), date::month(static_cast<unsigned>(mo)),
                           date::day(static_cast<unsigned>(d))};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  auto tp = date::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
            std::chrono::seconds(sec) + std::chrono::milliseconds(millis) -
            std::chrono::minutes(offset_minutes);
  // In milliseconds (no overflow for any 4-digit year) until it is known to fit in system_clock.
  std::int64_t since_epoch = tp.time_since_epoch().count();
  if (since_epoch > kMaxUnixMillis || since_epoch < -kMaxUnixMillis) return std::nullopt;
  return std::chrono::time_point_cast<std::chrono::system_clock::duration>(tp);
}

const rapidjson::Value* FindMember(const rapidjson::Value& object, std::string_view name) {
  if (!object.IsObject()) return nullptr;
  auto it = object.FindMember(rapidjson::Value(rapidjson::StringRef(name.data(), name.size())));
  return it == object.MemberEnd() ? nullptr : &it->value;
}

std::optional<std::string_view> FindString(const rapidjson::Value& object, std::string_view name) {
  const auto* v = FindMember(object, name);
  if (v == nullptr || !v->IsString()) return std::nullopt;
  return AsStringView(*v);
}

std::string StringMember(const rapidjson::Value& object, std::string_view name) {
  return std::string(FindString(object, name).value_or(std::string_view()));
}

void AppendOptionalField(std::string& out, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  out += ",\"";
  out += name;
  out += "\":";
  AppendJsonString(out, value);
}

}  // namespace pv

namespace pv {

int JsonDepth(std::string_view text, int stop_above, size_t* offset) {
  int depth = 0;
  int deepest = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    switch (c) {
      case '"': {
        // Most of a record is inside strings: jump from quote to quote (memchr) instead of looking at
        // every character. A quote ends the string unless an odd run of backslashes precedes it (each
        // backslash escapes the next character); the opening quote stops that run.
        size_t start = i + 1;
        while (true) {
          const void* quote = std::memchr(text.data() + start, '"', text.size() - start);
          if (quote == nullptr) return deepest;  // unterminated: nothing after it counts
          i = static_cast<size_t>(static_cast<const char*>(quote) - text.data());
          size_t backslashes = 0;
          while (text[i - 1 - backslashes] == '\\') ++backslashes;
          if (backslashes % 2 == 0) break;
          start = i + 1;
        }
        break;
      }
      case '[':
      case '{':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > stop_above) {
            if (offset != nullptr) *offset = i;
            return deepest;
          }
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::string ParseLimited(rapidjson::Document& doc, std::string_view text, int max_depth) {
  size_t where = 0;
  if (JsonDepth(text, max_depth, &where) > max_depth) {
    return fmt::format("JSON nested deeper than {} levels at offset {}", max_depth, where);
  }
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseTrailingCommasFlag;
  doc.Parse<kFlags>(text.data(), text.size());
  if (doc.HasParseError()) {
    return fmt::format("invalid JSON at offset {}: {}", doc.GetErrorOffset(),
                       rapidjson::GetParseError_En(doc.GetParseError()));
  }
  return {};
}

}  // namespace pv
