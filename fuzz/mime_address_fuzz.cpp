// The email as the smtp provider writes it (workers/providers/src/mime.cpp: BuildMimeMessage,
// RFC 2047 EncodeHeaderText, EncodeMailbox, QuotedPrintable, AddressOf) and the address validators
// (common/src/validate.cpp), on hostile rendered fields. Fields split at 0x1e (fuzz_support.hpp):
//
//   from|to|reply_to|subject|text|html|message_id|list_unsubscribe|extra header value|boundary|rest
//
// Invariants: the message has CRLF line ends only, and its header section only the headers pv writes
// (no field can inject one: every other line is a folded continuation); with two parts, exactly two
// "--boundary" lines and one closing line, whatever the content; quoted-printable decodes back to the
// text (line ends as CRLF) in lines of at most 76 characters; RFC 2047 words decode back to the header
// text (CR/LF as spaces), and are at most 75 characters; an address a validator accepts has the shape
// it promises (validate.hpp), and IsProjectName is exactly [a-z0-9_-]{1,64}.
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "pv/validate.hpp"
#include "pv/workers/providers/mime.hpp"

namespace {

using pv::fuzz::Check;
namespace mime = pv::workers::providers;

std::vector<std::string_view> Lines(std::string_view s) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find("\r\n", start);
    if (end == std::string_view::npos) {
      out.push_back(s.substr(start));
      break;
    }
    out.push_back(s.substr(start, end - start));
    start = end + 2;
  }
  return out;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string DecodeQuotedPrintable(std::string_view qp) {
  std::string out;
  for (size_t i = 0; i < qp.size(); ++i) {
    if (qp[i] != '=') {
      out += qp[i];
      continue;
    }
    if (qp.compare(i + 1, 2, "\r\n") == 0) {
      i += 2;  // soft line break
      continue;
    }
    Check(i + 2 < qp.size() && Hex(qp[i + 1]) >= 0 && Hex(qp[i + 2]) >= 0, "a bad quoted-printable escape",
          qp.substr(i, 8));
    out += static_cast<char>(Hex(qp[i + 1]) * 16 + Hex(qp[i + 2]));
    i += 2;
  }
  return out;
}

std::string CrlfLineEnds(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' || s[i] == '\n') {
      if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += "\r\n";
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string DecodeBase64(std::string_view b64) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned bits = 0;
  int count = 0;
  for (char c : b64) {
    if (c == '=') break;
    size_t v = kAlphabet.find(c);
    Check(v != std::string::npos, "not base64", b64);
    bits = (bits << 6) | static_cast<unsigned>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xff);
    }
  }
  return out;
}

std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  return out;
}

void CheckHeaderText(std::string_view input) {
  std::string encoded = mime::EncodeHeaderText(input);
  // Plain text is kept as it is (even when it looks like an encoded word).
  if (encoded == OneLine(input)) return;
  Check(encoded.rfind("=?UTF-8?B?", 0) == 0, "header text neither kept nor encoded", encoded);
  std::string decoded;
  size_t pos = 0;
  while (pos < encoded.size()) {
    if (pos > 0) {
      Check(encoded.compare(pos, 3, "\r\n ") == 0, "encoded words not folded with CRLF SP", encoded);
      pos += 3;
    }
    Check(encoded.compare(pos, 10, "=?UTF-8?B?") == 0, "not an encoded word", encoded.substr(pos, 80));
    size_t end = encoded.find("?=", pos + 10);
    Check(end != std::string::npos, "an unterminated encoded word", encoded);
    Check(end + 2 - pos <= 75, "an encoded word longer than 75 characters", encoded.substr(pos, end + 2 - pos));
    decoded += DecodeBase64(std::string_view(encoded).substr(pos + 10, end - pos - 10));
    pos = end + 2;
  }
  Check(decoded == OneLine(input), "RFC 2047 words do not decode to the text", encoded);
}

void CheckQuotedPrintable(std::string_view text) {
  std::string qp = mime::QuotedPrintable(text);
  for (std::string_view line : Lines(qp)) {
    Check(line.size() <= 76, "a quoted-printable line longer than 76", line);
    for (char c : line) {
      auto u = static_cast<unsigned char>(c);
      Check(u < 0x80 && u != '\r' && u != '\n', "a raw byte in quoted-printable", line);
    }
    Check(line.empty() || line.front() != '.', "a quoted-printable line opens with '.'", line);
  }
  Check(DecodeQuotedPrintable(qp) == CrlfLineEnds(text), "quoted-printable does not decode to the text", qp);
}

void CheckMessage(const mime::EmailMessage& m) {
  std::string out = mime::BuildMimeMessage(m);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == '\n') Check(i > 0 && out[i - 1] == '\r', "a bare LF in the message", out);
    if (out[i] == '\r') Check(i + 1 < out.size() && out[i + 1] == '\n', "a bare CR in the message", out);
  }
  static const std::set<std::string_view> kHeaders = {
      "From",       "To",           "Reply-To",     "Subject",
      "Date",       "Message-ID",   "List-Unsubscribe", "List-Unsubscribe-Post",
      "X-Campaign", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};
  auto lines = Lines(out);
  size_t i = 0;
  std::string boundary;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    std::string_view line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') continue;
    size_t colon = line.find(": ");
    Check(colon != std::string_view::npos && kHeaders.count(line.substr(0, colon)) != 0,
          "a header pv does not write", line);
  }
  // The Content-Type header is folded before its boundary parameter when it is long.
  if (size_t b = out.find("\r\nContent-Type: multipart/alternative;"); b != std::string::npos && b < out.find("\r\n\r\n")) {
    size_t open = out.find("boundary=\"", b);
    size_t close = open == std::string::npos ? open : out.find('"', open + 10);
    if (close != std::string::npos) boundary = out.substr(open + 10, close - open - 10);
  }
  if (m.text.empty() || m.html.empty()) return;
  Check(!boundary.empty(), "two parts without a boundary", out);
  int opens = 0;
  int closes = 0;
  for (; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line == "--" + boundary) {
      ++opens;
    } else if (line == "--" + boundary + "--") {
      ++closes;
    } else {
      // The preamble is pv's own text; what matters is that no content line opens with the delimiter.
      Check(line.rfind("--" + boundary, 0) != 0, "the content holds the boundary", line);
    }
  }
  Check(opens == 2 && closes == 1, "the content changed the message's parts", out);
}

bool Between(char c, char lo, char hi) {
  return c >= lo && c <= hi;
}

void CheckValidators(std::string_view s) {
  if (pv::validate::IsEmail(s)) {
    size_t at = s.find('@');
    Check(s.size() <= 254 && at != std::string_view::npos && at <= 64 && s.find('@', at + 1) == std::string_view::npos,
          "IsEmail accepted a bad shape", s);
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      Check(u > 0x20 && u < 0x7f && c != '<' && c != '>' && c != ',' && c != '"', "IsEmail accepted a special", s);
    }
    Check(mime::AddressOf(s) == s && mime::DomainOf(s) == s.substr(at + 1), "an address does not read back", s);
  }
  if (pv::validate::IsE164(s)) {
    bool shape = s.size() >= 3 && s.size() <= 16 && s[0] == '+' && Between(s[1], '1', '9');
    for (size_t i = 1; i < s.size(); ++i) shape = shape && Between(s[i], '0', '9');
    Check(shape, "IsE164 accepted a bad shape", s);
  }
  bool project = !s.empty() && s.size() <= 64;
  for (char c : s) project = project && (Between(c, 'a', 'z') || Between(c, '0', '9') || c == '_' || c == '-');
  Check(pv::validate::IsProjectName(s) == project, "IsProjectName is not [a-z0-9_-]{1,64}", s);
  if (pv::validate::IsLanguageTag(s)) {
    for (char c : s) {
      Check(Between(c, 'a', 'z') || Between(c, 'A', 'Z') || Between(c, '0', '9') || c == '-',
            "IsLanguageTag accepted a special", s);
    }
  }
  if (s.size() < 64) (void)pv::validate::IsTimeZone(s);
}

bool IsBoundaryText(std::string_view s) {
  if (s.empty() || s.size() > 70) return false;
  for (char c : s) {
    if (!(Between(c, 'a', 'z') || Between(c, 'A', 'Z') || Between(c, '0', '9') ||
          std::string_view("'()+_,-./:=?").find(c) != std::string_view::npos)) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pv::fuzz::Budget budget("mime");
  pv::fuzz::Fields in(data, size);
  mime::EmailMessage m;
  m.from = in.Next();
  m.to = in.Next();
  m.reply_to = in.Next();
  m.subject = in.Next();
  m.text = in.Next();
  m.html = in.Next();
  m.message_id = in.Next();
  m.list_unsubscribe = in.Next();
  m.list_unsubscribe_one_click = !m.list_unsubscribe.empty() && m.list_unsubscribe.size() % 2 == 0;
  std::string_view extra = in.Next();
  if (!extra.empty()) m.extra_headers.emplace_back("X-Campaign", std::string(extra));
  std::string_view boundary = in.Next();
  if (IsBoundaryText(boundary)) m.boundary = boundary;  // configured, never from a send: RFC 2046 bchars
  m.date = std::chrono::system_clock::time_point(std::chrono::seconds(1764668078));
  CheckMessage(m);

  for (std::string_view field : {std::string_view(m.from), std::string_view(m.subject), extra}) {
    CheckHeaderText(field);
    (void)mime::EncodeMailbox(field);
  }
  CheckQuotedPrintable(m.text);
  CheckQuotedPrintable(m.html);
  for (std::string_view field : {std::string_view(m.to), std::string_view(m.reply_to), in.Rest()}) {
    CheckValidators(field);
    CheckValidators(mime::AddressOf(field));
  }
  return 0;
}
