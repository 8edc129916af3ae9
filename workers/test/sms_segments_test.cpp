#include "pv/workers/sms_segments.hpp"

#include <gtest/gtest.h>

#include <string>

namespace pv::workers {
namespace {

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

TEST(SmsSegmentsTest, Gsm7Boundaries) {
  EXPECT_EQ(CountSmsSegments("").segments, 0);
  EXPECT_EQ(CountSmsSegments(Repeat("a", 160)).segments, 1);
  EXPECT_EQ(CountSmsSegments(Repeat("a", 161)).segments, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("a", 306)).segments, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("a", 307)).segments, 3);
  SmsSegments s = CountSmsSegments("123456 is your Demo verification code.");
  EXPECT_TRUE(s.gsm7);
  EXPECT_EQ(s.units, 38);
}

TEST(SmsSegmentsTest, Gsm7AccentsAndExtensionCharacters) {
  // é, ñ, £ are in the basic set (ú is not); € and { take two septets.
  SmsSegments s = CountSmsSegments("Café ñoño £5");
  EXPECT_TRUE(s.gsm7);
  EXPECT_EQ(s.units, 12);
  EXPECT_EQ(CountSmsSegments("€").units, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("€", 80)).segments, 1);  // 160 septets
  EXPECT_EQ(CountSmsSegments(Repeat("€", 81)).segments, 2);
}

TEST(SmsSegmentsTest, Ucs2WhenAnyCharacterIsOutsideGsm7) {
  // "á" is not in GSM-7 (only à, é, ...), so the whole text goes as UCS-2.
  SmsSegments s = CountSmsSegments("Tu código: 1234");
  EXPECT_FALSE(s.gsm7);
  EXPECT_EQ(s.units, 15);
  EXPECT_EQ(s.segments, 1);
  EXPECT_EQ(CountSmsSegments(Repeat("ó", 70)).segments, 1);
  EXPECT_EQ(CountSmsSegments(Repeat("ó", 71)).segments, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("ó", 134)).segments, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("ó", 135)).segments, 3);
  // Outside the BMP: two UTF-16 units each.
  EXPECT_EQ(CountSmsSegments("🚚").units, 2);
  EXPECT_EQ(CountSmsSegments(Repeat("🚚", 35)).segments, 1);
  EXPECT_EQ(CountSmsSegments(Repeat("🚚", 36)).segments, 2);
}

TEST(SmsSegmentsTest, InvalidUtf8CountsAsUcs2Units) {
  SmsSegments s = CountSmsSegments(std::string("ab\xff", 3));
  EXPECT_FALSE(s.gsm7);
  EXPECT_EQ(s.units, 3);
}

}  // namespace
}  // namespace pv::workers
