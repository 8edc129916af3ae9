#include "pv/workers/providers/mime.hpp"

#include <gtest/gtest.h>

namespace pv::workers::providers {
namespace {

TEST(MimeTest, QuotedPrintable) {
  EXPECT_EQ(QuotedPrintable("plain text"), "plain text");
  EXPECT_EQ(QuotedPrintable("a=b"), "a=3Db");
  EXPECT_EQ(QuotedPrintable("é"), "=C3=A9");
  EXPECT_EQ(QuotedPrintable("line \nnext"), "line=20\r\nnext");  // trailing space encoded
  EXPECT_EQ(QuotedPrintable("a\r\nb\nc"), "a\r\nb\r\nc");
  EXPECT_EQ(QuotedPrintable(".dot\n.again"), "=2Edot\r\n=2Eagain");
  std::string long_line(200, 'x');
  std::string qp = QuotedPrintable(long_line);
  size_t start = 0;
  while (start < qp.size()) {
    size_t end = qp.find("\r\n", start);
    if (end == std::string::npos) end = qp.size();
    EXPECT_LE(end - start, 76U);
    start = end + 2;
  }
}

TEST(MimeTest, HeaderEncoding) {
  EXPECT_EQ(EncodeHeaderText("Hello"), "Hello");
  EXPECT_EQ(EncodeHeaderText("Olá"), "=?UTF-8?B?T2zDoQ==?=");
  EXPECT_EQ(EncodeHeaderText("two\r\nlines"), "two  lines");  // no header injection
  std::string long_text;
  for (int i = 0; i < 20; ++i) long_text += "ñandú ";
  std::string enc = EncodeHeaderText(long_text);
  EXPECT_NE(enc.find("\r\n =?UTF-8?B?"), std::string::npos);
  EXPECT_EQ(EncodeMailbox("Demo Shop <a@b.co>"), "Demo Shop <a@b.co>");
  EXPECT_EQ(EncodeMailbox("Shop, Inc. <a@b.co>"), "\"Shop, Inc.\" <a@b.co>");
  EXPECT_EQ(EncodeMailbox("Ñandú <a@b.co>"), "=?UTF-8?B?w5FhbmTDug==?= <a@b.co>");
  EXPECT_EQ(AddressOf("Demo <a@b.co>"), "a@b.co");
  EXPECT_EQ(AddressOf(" a@b.co "), "a@b.co");
  EXPECT_EQ(DomainOf("a@b.co"), "b.co");
}

TEST(MimeTest, SinglePartWhenOnlyTextOrHtml) {
  EmailMessage m;
  m.from = "a@b.co";
  m.to = "c@d.co";
  m.subject = "s";
  m.text = "hello";
  m.message_id = "id@b.co";
  std::string out = BuildMimeMessage(m);
  EXPECT_NE(out.find("Content-Type: text/plain; charset=UTF-8\r\n"), std::string::npos);
  EXPECT_EQ(out.find("multipart"), std::string::npos);
  EXPECT_NE(out.find("Message-ID: <id@b.co>\r\n"), std::string::npos);
  EXPECT_EQ(out.find("List-Unsubscribe"), std::string::npos);
  m.html = "<p>x</p>";
  m.boundary = "BOUNDARY";
  out = BuildMimeMessage(m);
  EXPECT_NE(out.find("Content-Type: multipart/alternative; boundary=\"BOUNDARY\"\r\n"), std::string::npos);
  EXPECT_NE(out.find("\r\n--BOUNDARY\r\nContent-Type: text/plain"), std::string::npos);
  EXPECT_NE(out.find("\r\n--BOUNDARY\r\nContent-Type: text/html"), std::string::npos);
  EXPECT_NE(out.find("\r\n--BOUNDARY--\r\n"), std::string::npos);
}

TEST(MimeTest, DateFormat) {
  EXPECT_EQ(FormatMailDate(std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))),
            "Fri, 15 Jan 2027 08:00:00 +0000");
}

}  // namespace
}  // namespace pv::workers::providers
