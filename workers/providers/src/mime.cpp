#include "pv/workers/providers/mime.hpp"

#include <fmt/format.h>

#include <ctime>

#include "pv/ids.hpp"
#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {
namespace {

bool IsAscii(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || (u < 0x20 && c != '\t')) return false;
  }
  return true;
}

// Header values must not carry line breaks (header injection): they become spaces.
std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return out;
}

// Writes "Name: value" folded at spaces so that lines stay within 78 characters where the value
// allows it (a single longer token, such as a URI, stays whole). Values that already carry folds
// (encoded words) are written as they are.
void Header(std::string& out, std::string_view name, std::string_view value) {
  std::string line = std::string(name) + ": ";
  if (value.find("\r\n") != std::string_view::npos || line.size() + value.size() <= 78) {
    out += line;
    out += value;
    out += "\r\n";
    return;
  }
  size_t length = line.size();
  out += line;
  size_t i = 0;
  while (i < value.size()) {
    size_t space = value.find(' ', i + 1);
    std::string_view word =
        value.substr(i, space == std::string_view::npos ? std::string_view::npos : space - i);
    if (length + word.size() > 78 && length > 1 && word.front() == ' ') {
      out += "\r\n";  // the word's leading space becomes the continuation line's indent
      length = 0;
    }
    out += word;
    length += word.size();
    i += word.size();
  }
  out += "\r\n";
}

// A part whose body is already quoted-printable.
void EncodedPart(std::string& out, std::string_view type, std::string_view encoded_body) {
  out += fmt::format("Content-Type: {}; charset=UTF-8\r\n", type);
  out += "Content-Transfer-Encoding: quoted-printable\r\n\r\n";
  out += encoded_body;
  out += "\r\n";
}

void Part(std::string& out, std::string_view type, std::string_view body) {
  EncodedPart(out, type, QuotedPrintable(body));
}

}  // namespace

std::string AddressOf(std::string_view mailbox) {
  auto lt = mailbox.rfind('<');
  auto gt = mailbox.rfind('>');
  if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
    return std::string(mailbox.substr(lt + 1, gt - lt - 1));
  }
  while (!mailbox.empty() && mailbox.front() == ' ') mailbox.remove_prefix(1);
  while (!mailbox.empty() && mailbox.back() == ' ') mailbox.remove_suffix(1);
  return std::string(mailbox);
}

std::string DomainOf(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(address.substr(at + 1));
}

std::string EncodeHeaderText(std::string_view text) {
  std::string clean = OneLine(text);
  if (IsAscii(clean)) return clean;
  // A header line holding encoded words stays within 76 characters (RFC 2047 2): 36 bytes of input
  // give 48 base64 characters, 60 with the "=?UTF-8?B?" framing, which leaves room for the header
  // name ("Subject: ") on the first line. Never split a UTF-8 sequence between words.
  std::string out;
  size_t i = 0;
  while (i < clean.size()) {
    size_t end = std::min(clean.size(), i + 36);
    while (end < clean.size() && end > i && (static_cast<unsigned char>(clean[end]) & 0xc0) == 0x80) --end;
    // Not UTF-8 (36 continuation bytes in a row, from event data): split anyway. Without this the loop
    // never moved on and grew `out` until memory ran out (mime_address_fuzz).
    if (end == i) end = std::min(clean.size(), i + 36);
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + Base64(std::string_view(clean).substr(i, end - i)) + "?=";
    i = end;
  }
  return out;
}

std::string EncodeMailbox(std::string_view mailbox) {
  std::string clean = OneLine(mailbox);
  auto lt = clean.rfind('<');
  if (lt == std::string::npos || lt == 0) return clean;
  std::string name = clean.substr(0, lt);
  while (!name.empty() && name.back() == ' ') name.pop_back();
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
  std::string address = clean.substr(lt);
  if (IsAscii(name)) {
    // Quote the display name when it has specials (RFC 5322 3.2.3).
    bool special = name.find_first_of("()<>[]:;@\\,.\"") != std::string::npos;
    if (!special) return name + " " + address;
    std::string quoted = "\"";
    for (char c : name) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    return quoted + "\" " + address;
  }
  return EncodeHeaderText(name) + " " + address;
}

std::string QuotedPrintable(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  size_t line = 0;
  auto emit = [&](std::string_view piece) {
    if (line + piece.size() > 75) {  // leave room for the soft break's '='
      out += "=\r\n";
      line = 0;
    }
    out += piece;
    line += piece.size();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') continue;  // CRLF handled at the LF
    if (c == '\n' || c == '\r') {
      out += "\r\n";
      line = 0;
      continue;
    }
    bool line_end = i + 1 == text.size() || text[i + 1] == '\n' || text[i + 1] == '\r';
    char buf[3];
    if ((c == ' ' || c == '\t') && !line_end) {
      buf[0] = static_cast<char>(c);
      emit(std::string_view(buf, 1));
    } else if (c >= 33 && c <= 126 && c != '=' && !(c == '.' && (line == 0 || line >= 75))) {
      // A '.' opening a line is encoded too, so the message never depends on SMTP dot-stuffing; that
      // includes the line a soft break opens (line >= 75: emit breaks first), which mime_address_fuzz
      // found written as a bare '.'.
      buf[0] = static_cast<char>(c);
      emit(std::string_view(buf, 1));
    } else {
      buf[0] = '=';
      buf[1] = kHex[c >> 4];
      buf[2] = kHex[c & 0xf];
      emit(std::string_view(buf, 3));
    }
  }
  return out;
}

std::string FormatMailDate(std::chrono::system_clock::time_point tp) {
  std::time_t t = std::chrono::system_clock::to_time_t(tp);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return buf;
}

std::string BuildMimeMessage(const EmailMessage& m) {
  std::string out;
  out.reserve(1024 + m.text.size() + m.html.size() * 11 / 10);
  Header(out, "From", EncodeMailbox(m.from));
  Header(out, "To", OneLine(m.to));
  if (!m.reply_to.empty()) Header(out, "Reply-To", EncodeMailbox(m.reply_to));
  Header(out, "Subject", EncodeHeaderText(m.subject));
  Header(out, "Date", FormatMailDate(m.date));
  Header(out, "Message-ID", "<" + OneLine(m.message_id) + ">");
  if (!m.list_unsubscribe.empty()) {
    Header(out, "List-Unsubscribe", OneLine(m.list_unsubscribe));
    if (m.list_unsubscribe_one_click) Header(out, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click");
  }
  for (const auto& [name, value] : m.extra_headers) Header(out, OneLine(name), EncodeHeaderText(value));
  Header(out, "MIME-Version", "1.0");
  bool both = !m.text.empty() && !m.html.empty();
  if (!both) {
    Part(out, m.html.empty() ? "text/plain" : "text/html", m.html.empty() ? m.text : m.html);
    return out;
  }
  // The parts are encoded first so the boundary can be checked against what goes on the wire.
  std::string text = QuotedPrintable(m.text);
  std::string html = QuotedPrintable(m.html);
  std::string boundary = m.boundary;
  // Random, and absent from both parts: a boundary anyone can compute (it was derived from the message
  // id, which a client that sets Idempotency-Key can compute) lets event data in the text part end it
  // and open a part of its own (an HTML part that bypasses the template's escaping). Quoted-printable
  // leaves "--" and hex alone, so the check must be made, not assumed; a collision with 128 random bits
  // only happens when the content was made to contain this very boundary, so trying again is enough.
  while (boundary.empty() || text.find(boundary) != std::string::npos ||
         html.find(boundary) != std::string::npos) {
    boundary = "pv-alt-" + RandomHex(16);
  }
  Header(out, "Content-Type", fmt::format("multipart/alternative; boundary=\"{}\"", boundary));
  out += "\r\n";
  out += "This is a multi-part message in MIME format.\r\n";
  out += "--" + boundary + "\r\n";
  EncodedPart(out, "text/plain", text);
  out += "--" + boundary + "\r\n";
  EncodedPart(out, "text/html", html);
  out += "--" + boundary + "--\r\n";
  return out;
}

}  // namespace pv::workers::providers
