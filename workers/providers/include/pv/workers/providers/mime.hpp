// An email as an RFC 5322 / MIME message: multipart/alternative with a text and an HTML part
// (quoted-printable UTF-8), headers encoded per RFC 2047 when not ASCII, CRLF line ends.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pv::workers::providers {

struct EmailMessage {
  std::string from;      // "Demo Shop <orders@demo.example>" or "orders@demo.example"
  std::string to;        // address
  std::string reply_to;  // optional
  std::string subject;
  std::string text;        // optional (at least one of text, html)
  std::string html;        // optional
  std::string message_id;  // without angle brackets: "<send_id>@<domain>"
  std::chrono::system_clock::time_point date;
  std::string list_unsubscribe;             // header value, e.g. "<mailto:u@x?subject=..>, <https://x/u/..>"
  bool list_unsubscribe_one_click = false;  // adds List-Unsubscribe-Post (RFC 8058)
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // Empty: a random one. Whichever is used, a boundary found in the encoded text or HTML is replaced
  // by a random one that is not (content must never be able to end its part).
  std::string boundary;
};

std::string BuildMimeMessage(const EmailMessage& message);

// "Name <a@b>" -> "a@b"; a bare address is returned as is.
std::string AddressOf(std::string_view mailbox);
// The part after '@' of an address.
std::string DomainOf(std::string_view address);
// RFC 2047 B-encoded words (UTF-8) when `text` is not plain ASCII, else `text`; long values are
// split into several words on character boundaries, folded with CRLF SP.
std::string EncodeHeaderText(std::string_view text);
// A mailbox header value with an encoded display name when needed.
std::string EncodeMailbox(std::string_view mailbox);
// Quoted-printable (RFC 2045) with CRLF line ends and lines of at most 76 characters.
std::string QuotedPrintable(std::string_view text);
// "Thu, 26 Nov 2026 07:54:38 +0000"
std::string FormatMailDate(std::chrono::system_clock::time_point tp);

}  // namespace pv::workers::providers
