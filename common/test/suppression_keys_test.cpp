#include "pv/suppression_keys.hpp"

#include <gtest/gtest.h>

namespace pv {
namespace {

TEST(SuppressionKeys, Layout) {
  EXPECT_EQ(SuppressionKey(Channel::kEmail), "pv:suppress:email");
  EXPECT_EQ(SuppressionKey(Channel::kSms), "pv:suppress:text");
  EXPECT_EQ(SuppressionKey(Channel::kPush), "pv:suppress:push");
  EXPECT_EQ(SuppressedUserMember("demo", "U-1"), "user:demo:U-1");
  EXPECT_EQ(SuppressedAddressMember(Channel::kEmail, "Bob@Example.COM"), "address:bob@example.com");
  EXPECT_EQ(SuppressedAddressMember(Channel::kPush, "AbC"), "address:AbC");
}

// An unreadable reason reads as unknown; ours reads back field by field.
TEST(SuppressionKeys, WhyRoundTrip) {
  EXPECT_EQ(ParseSuppressionWhy("").reason, "unknown");
  SuppressionWhy why = ParseSuppressionWhy(SuppressionWhyJson("manual", "2026-12-05T10:00:00.000Z", "pvctl"));
  EXPECT_EQ(why.reason, "manual");
  EXPECT_EQ(why.at, "2026-12-05T10:00:00.000Z");
  EXPECT_EQ(why.source, "pvctl");
  EXPECT_EQ(SuppressionWhyJson("stop", "t", ""), R"({"reason":"stop","at":"t"})");
  EXPECT_EQ(SuppressionWhyKey(Channel::kSms), "pv:suppress:text:why");
}

}  // namespace
}  // namespace pv
