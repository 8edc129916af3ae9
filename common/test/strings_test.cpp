#include "pv/strings.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace pv {
namespace {

TEST(StringsTest, EqualsIgnoreCaseIsAsciiOnly) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Type", "content-type"));
  EXPECT_FALSE(EqualsIgnoreCase("Content-Type", "content-typ"));
  EXPECT_FALSE(EqualsIgnoreCase("\xc3\x89", "\xc3\xa9"));  // É and é: not ASCII, not folded
}

TEST(StringsTest, ParseNumberTakesTheWholeStringOrNothing) {
  int n = 7;
  EXPECT_TRUE(ParseNumber("-42", n));
  EXPECT_EQ(n, -42);
  for (const char* bad : {"", " 1", "1 ", "+1", "1x", "99999999999"}) {
    EXPECT_FALSE(ParseNumber(bad, n)) << bad;
    EXPECT_EQ(n, -42) << "changed by " << bad;
  }
  double d = 0;
  EXPECT_TRUE(ParseNumber("2.5e3", d));
  EXPECT_EQ(d, 2500.0);
}

TEST(StringsTest, ParseDigitsTakesDigitsOnlyAndAtMostEighteen) {
  std::int64_t v = 5;
  EXPECT_TRUE(ParseDigits("0", v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(ParseDigits("999999999999999999", v));
  EXPECT_EQ(v, 999999999999999999);
  for (const char* bad : {"", "-1", "+1", " 1", "1.0", "1e3", "1000000000000000000"}) {
    EXPECT_FALSE(ParseDigits(bad, v)) << bad;
    EXPECT_EQ(v, 999999999999999999) << "changed by " << bad;
  }
}

}  // namespace
}  // namespace pv
