#include "pv/validate.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pv::validate {
namespace {

TEST(ValidateTest, ValidEmails) {
  for (const std::string& s : {
           std::string("user@example.com"), std::string("first.last+tag@sub.example.co.uk"),
           std::string("o'brien@example.ie"), std::string("a@b.cd"), std::string("USER_1@EXAMPLE.COM"),
           std::string("x-y@my-domain.example"), std::string("!#$%&'*+-/=?^_`{|}~@example.org"),
           std::string("user@123.example.com"), std::string(64, 'a') + "@example.com",
           std::string(63, 'a') + "@" + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
               std::string(58, 'd') + ".com",  // 254 bytes
       }) {
    EXPECT_TRUE(IsEmail(s)) << "rejected: " << s;
  }
}

TEST(ValidateTest, InvalidEmails) {
  for (const std::string& s : {
           std::string(""),
           std::string("plain"),
           std::string("@example.com"),
           std::string("user@"),
           std::string("user@localhost"),
           std::string("user@example.c"),
           std::string("user@example.c0m"),
           std::string("user@1.2.3.4"),
           std::string(".user@example.com"),
           std::string("user.@example.com"),
           std::string("us..er@example.com"),
           std::string("user@-example.com"),
           std::string("user@example-.com"),
           std::string("user@exa_mple.com"),
           std::string("user@example..com"),
           std::string("user@.example.com"),
           std::string("user@example.com."),
           std::string("us er@example.com"),
           std::string("a@b@example.com"),
           std::string("\"quoted\"@example.com"),
           std::string("user@exam ple.com"),
           std::string("user@example.com\n"),
           std::string("<user@example.com>"),
           std::string("Name <user@example.com>"),
           std::string(65, 'a') + "@example.com",
           "user@" + std::string(64, 'a') + ".com",  // label over 63
           std::string(64, 'a') + "@" + std::string(63, 'b') + "." + std::string(63, 'c') + "." +
               std::string(58, 'd') + ".com",  // 255 bytes
       }) {
    EXPECT_FALSE(IsEmail(s)) << "accepted: " << s;
  }
}

TEST(ValidateTest, E164Numbers) {
  for (const char* s : {"+14155552671", "+442071838750", "+12", "+123456789012345", "+5511987654321"}) {
    EXPECT_TRUE(IsE164(s)) << "rejected: " << s;
  }
  for (const char* s : {"", "+", "+1", "14155552671", "+04155552671", "+1234567890123456", "+1 415 555 2671",
                        "+1-415-555-2671", "++14155552671", "+1415555267a", "+(415)5552671", " +14155552671",
                        "+14155552671 "}) {
    EXPECT_FALSE(IsE164(s)) << "accepted: " << s;
  }
}

TEST(ValidateTest, ProjectNames) {
  for (const std::string& s : std::vector<std::string>{"demo", "a", "acme-eu_2", "0", std::string(64, 'p')}) {
    EXPECT_TRUE(IsProjectName(s)) << "rejected: " << s;
  }
  for (const std::string& s : std::vector<std::string>{"", "Demo", "acme:eu", "a b", "a.b", "a/b", "ñ",
                                                       std::string(65, 'p'), std::string("a\0b", 3)}) {
    EXPECT_FALSE(IsProjectName(s)) << "accepted: " << s;
  }
}

TEST(ValidateTest, LanguageTags) {
  for (const char* s : {"en", "pt-BR", "zh-Hant-TW", "es-419", "fil", "sr-Latn", "sr-Latn-RS", "en-US-posix",
                        "sl-rozaj", "de-DE-1901x", "EN", "en-us"}) {
    EXPECT_TRUE(IsLanguageTag(s)) << "rejected: " << s;
  }
  for (const char* s : {"",           "en_US",        "e",       "toolonglang",  "pt-BRR",
                        "en-",        "-en",          "en--US",  "en-US-",       "1a",
                        "e1",         "en-12",        "en-1234", "en-Latn-Latn", "en-US-US",
                        "zh-TW-Hant", "en-abcdefghi", "en US",   "en-U$",        "abcd"}) {
    EXPECT_FALSE(IsLanguageTag(s)) << "accepted: " << s;
  }
  EXPECT_FALSE(IsLanguageTag("en-" + std::string(40, 'a')));
}

TEST(ValidateTest, TimeZones) {
  WarmUpTimeZones();
  for (const char* s : {"America/Chicago", "UTC", "Europe/Berlin", "Asia/Kolkata",
                        "America/Argentina/Buenos_Aires", "Australia/Lord_Howe"}) {
    EXPECT_TRUE(IsTimeZone(s)) << "rejected: " << s;
  }
  for (const char* s : {"", "Mars/Base", "America/Chicag", "America/Chicago ", "America", "../../etc/passwd",
                        "/etc/localtime", "+02:00"}) {
    EXPECT_FALSE(IsTimeZone(s)) << "accepted: " << s;
  }
  EXPECT_FALSE(IsTimeZone(std::string(65, 'A')));
}

}  // namespace
}  // namespace pv::validate
