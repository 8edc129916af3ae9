#include "pv/json.hpp"

#include <gtest/gtest.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>
#include <random>

namespace pv {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

std::string Quoted(std::string_view s) {
  std::string out;
  AppendJsonString(out, s);
  return out;
}

TEST(JsonTest, AppendJsonStringEscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(Quoted(""), R"("")");
  EXPECT_EQ(Quoted("plain text"), R"("plain text")");
  EXPECT_EQ(Quoted(R"(He said "hi")"), R"("He said \"hi\"")");
  EXPECT_EQ(Quoted(R"(C:\path\)"), R"("C:\\path\\")");
  EXPECT_EQ(Quoted("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(Quoted(std::string_view("\x00\x01\x1f", 3)), R"("\u0000\u0001\u001f")");
  EXPECT_EQ(Quoted("\b\f"), R"("\u0008\u000c")");
  // Not control characters: DEL, '/', and UTF-8 pass through unchanged.
  EXPECT_EQ(Quoted("\x7f/ é ✓"), "\"\x7f/ é ✓\"");
}

TEST(JsonTest, AppendJsonStringAsWriterEscapesAsRapidJsonsWriter) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  all += "\x7f/ é ✓";
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  w.String(all.data(), static_cast<rapidjson::SizeType>(all.size()));
  std::string out;
  AppendJsonStringAsWriter(out, all);
  EXPECT_EQ(out, std::string(buffer.GetString(), buffer.GetSize()));
}

TEST(JsonTest, AppendJsonStringAppends) {
  std::string out = "{\"k\":";
  AppendJsonString(out, "v\"");
  EXPECT_EQ(out, R"({"k":"v\"")");
}

TEST(JsonTest, AppendJsonStringOutputParsesBackToTheInput) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  all += "é日本";
  std::string doc = Quoted(all);
  rapidjson::Document parsed;
  parsed.Parse(doc.data(), doc.size());
  ASSERT_FALSE(parsed.HasParseError()) << doc;
  ASSERT_TRUE(parsed.IsString());
  EXPECT_EQ(AsStringView(parsed), all);
}

// The JSON string of `s` as AppendJsonString writes it (\n, \r, \t; other control bytes as \u00xx in
// lower case), escaped a byte at a time: the reference its word-at-a-time loop is compared with.
std::string EscapedByteAtATime(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n' || c == '\r' || c == '\t') {
      out += c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char u[7];
      std::snprintf(u, sizeof(u), "\\u%04x", static_cast<unsigned>(c));
      out += u;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

// The escapes are found 8 bytes at a time: every character that needs one, at every position of a
// string longer than a word (and next to UTF-8 bytes, which never do), gives the character-at-a-time
// answer.
TEST(JsonTest, AppendJsonStringEscapesAtEveryPositionOfLongStrings) {
  const std::string specials[] = {"\"", "\\", std::string(1, '\0'), "\n", "\x1f"};
  for (const std::string& base :
       {std::string(37, 'a'), std::string("\xc3\xa9\xe6\x97\xa5 text and more text \x7f\xff")}) {
    for (const std::string& special : specials) {
      for (size_t at = 0; at <= base.size(); ++at) {
        std::string s = base;
        s.insert(at, special);
        EXPECT_EQ(Quoted(s), EscapedByteAtATime(s)) << "at " << at;
        s.insert(at / 2, special);
        EXPECT_EQ(Quoted(s), EscapedByteAtATime(s)) << "at " << at << " and " << at / 2;
      }
    }
  }
}

// Random strings of every byte value, at every length up to a few words and every start within a
// word: both escapers give the byte-at-a-time answer (AppendJsonStringAsWriter's: RapidJSON's Writer).
TEST(JsonTest, EscapersAgreeWithOneByteAtATimeOnRandomBytes) {
  std::mt19937 random(13);
  const std::string alphabet =
      std::string("\"\\\n\r\t\b\f\x01\x1f\x20\x21\x5b\x5d\x7f\x80\xa2\xdc\xff", 18) + "ab";
  for (int round = 0; round < 3000; ++round) {
    std::string s(random() % 40, 'x');
    const unsigned dirt = random() % 4;  // 0: clean; else about one byte in 2, 8 or 32 from the alphabet
    for (char& c : s) {
      if (dirt != 0 && random() % (dirt == 1 ? 2 : dirt == 2 ? 8 : 32) == 0)
        c = alphabet[random() % alphabet.size()];
    }
    for (size_t from = 0; from < std::min<size_t>(8, s.size() + 1); ++from) {
      std::string_view part = std::string_view(s).substr(from);
      EXPECT_EQ(Quoted(part), EscapedByteAtATime(part));
      std::string as_writer;
      AppendJsonStringAsWriter(as_writer, part);
      rapidjson::StringBuffer buffer;
      rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
      w.String(part.data(), static_cast<rapidjson::SizeType>(part.size()));
      EXPECT_EQ(as_writer, std::string(buffer.GetString(), buffer.GetSize()));
    }
  }
}

TEST(JsonTest, JsonStringEndSkipsEscapesAndRefusesControlCharacters) {
  EXPECT_EQ(JsonStringEnd(R"("abc",1)", 1), 4u);
  EXPECT_EQ(JsonStringEnd(R"("")", 1), 1u);
  EXPECT_EQ(JsonStringEnd(R"("a\"b\\",1)", 1), 7u);  // \" does not close, \\ before " does not escape it
  EXPECT_EQ(JsonStringEnd(R"("\u0022x")", 1), 8u);
  std::string long_text = "\"" + std::string(40, 'x') + "\\\"" + std::string(13, 'y') + "\"";
  EXPECT_EQ(JsonStringEnd(long_text, 1), long_text.size() - 1);
  EXPECT_EQ(JsonStringEnd(R"("unclosed)", 1), std::string_view::npos);
  EXPECT_EQ(JsonStringEnd(R"("ends in an escape\)", 1), std::string_view::npos);
  EXPECT_EQ(JsonStringEnd(std::string_view("\"a\nb\"", 5), 1), std::string_view::npos);  // a raw line break
}

TEST(JsonTest, FormatTimestampIsUtcWithMilliseconds) {
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(0)), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(1795679678123)), "2026-11-26T07:54:38.123Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(1709251199999)), "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(-1)), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(981173106007)), "2001-02-03T04:05:06.007Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(-4'500'000'000'000)), "1827-05-27T16:00:00.000Z");
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(4'500'000'000'000)), "2112-08-07T08:00:00.000Z");
  // Sub-millisecond parts are cut, not rounded.
  EXPECT_EQ(FormatTimestamp(FromUnixMillis(1795679678123) + std::chrono::microseconds(999)),
            "2026-11-26T07:54:38.123Z");
}

TEST(JsonTest, ParseTimestampRoundTrips) {
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<std::int64_t> ms(-2208988800000LL, 4102444800000LL);  // 1900 .. 2100
  for (int i = 0; i < 1000; ++i) {
    auto tp = FromUnixMillis(ms(rng));
    std::string text = FormatTimestamp(tp);
    auto parsed = ParseTimestamp(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, tp) << text;
  }
  auto now = system_clock::now();
  EXPECT_EQ(ParseTimestamp(FormatTimestamp(now)), std::chrono::floor<milliseconds>(now));
}

// record_decoders_fuzz: a pv-due-at in year 4052 overflowed system_clock's nanoseconds (undefined
// behaviour) in ParseTimestamp, and so did a record timestamp of 10^16 ms in FromUnixMillis.
TEST(JsonTest, TimesBeyondWhatTheClockHoldsAreRefusedOrClamped) {
  EXPECT_EQ(ParseTimestamp("4052-12-02T10:00:30.250Z"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("9999-12-31T23:59:59.999Z"), std::nullopt);
  EXPECT_EQ(ParseTimestamp("0001-01-01T00:00:00Z"), std::nullopt);
  EXPECT_TRUE(ParseTimestamp("2100-01-01T00:00:00Z").has_value());
  EXPECT_EQ(FromUnixMillis(10'000'000'000'000'000), FromUnixMillis(kMaxUnixMillis));
  EXPECT_EQ(FromUnixMillis(INT64_MIN), FromUnixMillis(-kMaxUnixMillis));
  EXPECT_EQ(ToUnixMillis(FromUnixMillis(kMaxUnixMillis) + std::chrono::hours(24 * 365)),
            kMaxUnixMillis + 24LL * 365 * 3600 * 1000);
}

TEST(JsonTest, ParseTimestampAcceptsSecondsFractionsAndOffsets) {
  const auto base = FromUnixMillis(1795679678000);  // 2026-11-26T07:54:38Z
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38Z"), base);
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38.123Z"), base + milliseconds(123));
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38.5Z"), base + milliseconds(500));
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38.123456789Z"), base + milliseconds(123));
  EXPECT_EQ(ParseTimestamp("2026-11-26t07:54:38z"), base);
  EXPECT_EQ(ParseTimestamp("2026-11-26 07:54:38Z"), base);
  EXPECT_EQ(ParseTimestamp("2026-11-26T09:54:38.123+02:00"), base + milliseconds(123));
  EXPECT_EQ(ParseTimestamp("2026-11-26T02:24:38-05:30"), base);
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38+00:00"), base);
  EXPECT_EQ(ParseTimestamp("2026-11-26T07:54:38-00:00"), base);
  // An offset that crosses midnight and a year.
  EXPECT_EQ(ParseTimestamp("2027-01-01T01:00:00+02:00"), ParseTimestamp("2026-12-31T23:00:00Z"));
}

TEST(JsonTest, ParseTimestampRejectsInvalidInput) {
  for (const char* bad : {
           "",
           "2026-11-26",
           "2026-11-26T07:54",
           "2026-11-26T07:54:38",        // no zone
           "2026-11-26T07:54:38.Z",      // empty fraction
           "2026-11-26T07:54:38.123",    // no zone after fraction
           "2026-11-26T07:54:38ZZ",      // trailing junk
           "2026-11-26T07:54:38Z ",      // trailing blank
           " 2026-11-26T07:54:38Z",      // leading blank
           "2026-11-26T07:54:38+0200",   // offset without colon
           "2026-11-26T07:54:38+02",     // short offset
           "2026-11-26T07:54:38+02:0",   // short offset minutes
           "2026-11-26T07:54:38+25:00",  // offset hour out of range
           "2026-11-26T07:54:38+02:60",  // offset minute out of range
           "2026/11/26T07:54:38Z",
           "2026-11-26X07:54:38Z",
           "2026-13-01T00:00:00Z",  // month 13
           "2026-00-01T00:00:00Z",  // month 0
           "2026-02-29T00:00:00Z",  // not a leap year
           "2026-04-31T00:00:00Z",
           "2026-11-26T24:00:00Z",
           "2026-11-26T07:60:00Z",
           "2026-11-26T07:54:61Z",
           "2026-1-26T07:54:38Z",
           "20x6-11-26T07:54:38Z",
           "2026-11-26T07:54:38.12aZ",
           "1795679678123",
       }) {
    EXPECT_FALSE(ParseTimestamp(bad).has_value()) << "accepted: '" << bad << "'";
  }
  EXPECT_TRUE(ParseTimestamp("2024-02-29T00:00:00Z").has_value());
}

TEST(JsonTest, FindMemberAndFindStringTolerateAbsenceAndWrongTypes) {
  rapidjson::Document doc;
  doc.Parse(R"({"s":"text","n":5,"o":{"inner":"x"},"e":""})");
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(FindString(doc, "s"), "text");
  EXPECT_EQ(FindString(doc, "e"), "");
  EXPECT_FALSE(FindString(doc, "n").has_value());
  EXPECT_FALSE(FindString(doc, "missing").has_value());
  ASSERT_NE(FindMember(doc, "n"), nullptr);
  EXPECT_EQ(FindMember(doc, "n")->GetInt(), 5);
  EXPECT_EQ(FindMember(doc, "missing"), nullptr);
  ASSERT_NE(FindMember(doc, "o"), nullptr);
  EXPECT_EQ(FindString(*FindMember(doc, "o"), "inner"), "x");
  // Not an object: nothing found, no assertion.
  EXPECT_EQ(FindMember(doc["s"], "x"), nullptr);
  EXPECT_FALSE(FindString(doc["n"], "x").has_value());
}

TEST(JsonTest, ToJsonIsCompact) {
  rapidjson::Document doc;
  doc.Parse(R"({ "a" : [1, 2, {"b": "c\"d"}], "e": null })");
  ASSERT_FALSE(doc.HasParseError());
  EXPECT_EQ(ToJson(doc), R"({"a":[1,2,{"b":"c\"d"}],"e":null})");
  std::string out = "x";
  AppendJson(out, doc["a"]);
  EXPECT_EQ(out, R"(x[1,2,{"b":"c\"d"}])");
}

TEST(JsonTest, JsonDepthSkipsStringsAndTheirEscapes) {
  EXPECT_EQ(JsonDepth(R"({"a":[{}],"b":"[[[{{"})", 10), 3);
  EXPECT_EQ(JsonDepth(R"({"a\"[[":"\\",[[]]})", 10), 3);  // \" escaped; "\\" ends at its quote
  EXPECT_EQ(JsonDepth(R"(["\\\", [[]]])", 10), 1);        // \\\" escapes the quote: all a string
  EXPECT_EQ(JsonDepth(R"(["\\", [[]]])", 10), 3);         // \\" ends it
  EXPECT_EQ(JsonDepth(R"(["abc\)", 10), 1);               // unterminated string
  size_t offset = 0;
  EXPECT_EQ(JsonDepth(R"(["[[[",[[["x"]]]])", 2, &offset), 3);
  EXPECT_EQ(offset, 8u);
}

TEST(JsonTest, ParseRecordRefusesWhatNestsDeeperThanAnyRecord) {
  rapidjson::Document doc;
  std::string ok = std::string(kMaxRecordDepth, '[') + std::string(kMaxRecordDepth, ']');
  ParseRecord(doc, ok);
  EXPECT_FALSE(doc.HasParseError());
  ParseRecord(doc, "[" + ok + "]");
  EXPECT_TRUE(doc.HasParseError());
  ParseRecord(doc, std::string(1 << 20, '['));  // overflowed the stack before
  EXPECT_TRUE(doc.HasParseError());
  ParseRecord<rapidjson::kParseFullPrecisionFlag>(doc, R"({"a":[1.5]})");
  EXPECT_FALSE(doc.HasParseError());
}

}  // namespace
}  // namespace pv
