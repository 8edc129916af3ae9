#include "pv/workers/providers/mime.hpp"

#include <gtest/gtest.h>

#include "pv/ids.hpp"

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

// mime_address_fuzz: a subject with 36 or more UTF-8 continuation bytes in a row (invalid UTF-8, which
// event data may carry into a rendered subject) made EncodeHeaderText loop forever, growing its output.
TEST(MimeTest, HeaderEncodingOfInvalidUtf8Ends) {
  std::string subject = "Hi Ana, your order " + std::string(100, '\xb9');
  std::string enc = EncodeHeaderText(subject);
  EXPECT_EQ(enc.rfind("=?UTF-8?B?", 0), 0U);
  EXPECT_LT(enc.size(), 4 * subject.size());
  EXPECT_EQ(enc.find(std::string("=?UTF-8?B?") + "?="), std::string::npos);  // no empty word
}

// mime_address_fuzz: a '.' right after a soft line break opened a line unencoded (a lone "." line ends
// SMTP DATA unless the client dot-stuffs).
TEST(MimeTest, QuotedPrintableNeverOpensALineWithADot) {
  for (size_t n = 70; n < 80; ++n) {
    std::string qp = QuotedPrintable(std::string(n, 'a') + ".");
    EXPECT_EQ(qp.find("\r\n."), std::string::npos) << qp;
  }
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

// Lines of `message` that are delimiters of `boundary` ("--boundary" or "--boundary--" at a line start).
int Delimiters(const std::string& message, const std::string& boundary) {
  int n = 0;
  for (size_t at = message.find("\r\n--" + boundary); at != std::string::npos;
       at = message.find("\r\n--" + boundary, at + 1)) {
    ++n;
  }
  return n;
}

std::string BoundaryOf(const std::string& message) {
  const std::string marker = "boundary=\"";
  size_t at = message.find(marker);
  if (at == std::string::npos) return "";
  at += marker.size();
  return message.substr(at, message.find('"', at) - at);
}

// The boundary used to be "pv-alt-" + the first 24 hex of SHA-256(message id), and a client that sets
// Idempotency-Key can compute the message id: event data in the text part could then end the part
// and open an HTML part of its own (bypassing the template's HTML escaping). Now it is random, and
// never one that occurs in the content.
TEST(MimeTest, ContentCannotOpenAMimePart) {
  EmailMessage m;
  m.from = "a@b.co";
  m.to = "c@d.co";
  m.subject = "s";
  m.message_id = "0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6@b.co";
  std::string derived = "pv-alt-" + Sha256Hex(m.message_id).substr(0, 24);
  m.text = "Hello\n--" + derived + "\nContent-Type: text/html\n\n<script>alert(1)</script>\n";
  m.html = "<p>Hello</p>";
  std::string out = BuildMimeMessage(m);
  std::string boundary = BoundaryOf(out);
  ASSERT_FALSE(boundary.empty());
  EXPECT_NE(boundary, derived);
  EXPECT_EQ(Delimiters(out, boundary), 3);               // text, html, close: nothing from the content
  EXPECT_NE(BoundaryOf(BuildMimeMessage(m)), boundary);  // random, not a function of the message

  // A boundary that is given (tests set one) is not used when the content carries it.
  m.boundary = "BOUNDARY";
  m.html = "<p>x</p>\n--BOUNDARY\nContent-Type: text/plain\n\nforged\n";
  out = BuildMimeMessage(m);
  boundary = BoundaryOf(out);
  EXPECT_NE(boundary, "BOUNDARY");
  EXPECT_EQ(boundary.rfind("pv-alt-", 0), 0U) << boundary;
  EXPECT_EQ(Delimiters(out, boundary), 3);
  EXPECT_EQ(out.find("\r\n--" + boundary + "\r\nContent-Type: text/plain"),
            out.find("\r\n--" + boundary));  // the first delimiter opens the real text part
}

TEST(MimeTest, DateFormat) {
  EXPECT_EQ(FormatMailDate(std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000))),
            "Fri, 15 Jan 2027 08:00:00 +0000");
}

}  // namespace
}  // namespace pv::workers::providers
