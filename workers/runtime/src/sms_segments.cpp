#include "pv/workers/sms_segments.hpp"

#include <vector>

namespace pv::workers {
namespace {

// GSM 03.38 basic character set, as Unicode code points.
constexpr char32_t kBasic[] = {
    U'@', U'£', U'$', U'¥', U'è',  U'é', U'ù', U'ì', U'ò', U'Ç', U'\n', U'Ø', U'ø', U'\r', U'Å', U'å', U'Δ',
    U'_', U'Φ', U'Γ', U'Λ', U'Ω',  U'Π', U'Ψ', U'Σ', U'Θ', U'Ξ', U'Æ',  U'æ', U'ß', U'É',  U' ', U'!', U'"',
    U'#', U'¤', U'%', U'&', U'\'', U'(', U')', U'*', U'+', U',', U'-',  U'.', U'/', U':',  U';', U'<', U'=',
    U'>', U'?', U'¡', U'Ä', U'Ö',  U'Ñ', U'Ü', U'§', U'¿', U'ä', U'ö',  U'ñ', U'ü', U'à'};
// The extension table: each takes an escape plus the character, two septets.
constexpr char32_t kExtension[] = {U'^', U'{', U'}', U'\\', U'[', U'~', U']', U'|', U'€', U'\f'};

int Septets(char32_t c) {
  if ((c >= U'0' && c <= U'9') || (c >= U'A' && c <= U'Z') || (c >= U'a' && c <= U'z')) return 1;
  for (char32_t b : kBasic) {
    if (b == c) return 1;
  }
  for (char32_t e : kExtension) {
    if (e == c) return 2;
  }
  return 0;
}

// Decodes UTF-8; an invalid byte becomes U+FFFD.
std::vector<char32_t> Decode(std::string_view s) {
  std::vector<char32_t> out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) {
      out.push_back(0xfffd);
      ++i;
      continue;
    }
    char32_t c = len == 1 ? b : len == 2 ? (b & 0x1f) : len == 3 ? (b & 0x0f) : (b & 0x07);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      auto cb = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cb & 0xc0) != 0x80) ok = false;
      c = (c << 6) | (cb & 0x3f);
    }
    if (!ok) {
      out.push_back(0xfffd);
      ++i;
      continue;
    }
    out.push_back(c);
    i += static_cast<size_t>(len);
  }
  return out;
}

}  // namespace

SmsSegments CountSmsSegments(std::string_view text) {
  SmsSegments r;
  std::vector<char32_t> chars = Decode(text);
  int septets = 0;
  for (char32_t c : chars) {
    int n = Septets(c);
    if (n == 0) {
      r.gsm7 = false;
      break;
    }
    septets += n;
  }
  if (r.gsm7) {
    r.units = septets;
    r.segments = septets == 0 ? 0 : septets <= 160 ? 1 : (septets + 152) / 153;
  } else {
    int units = 0;
    for (char32_t c : chars) units += c > 0xffff ? 2 : 1;
    r.units = units;
    r.segments = units <= 70 ? 1 : (units + 66) / 67;
  }
  return r;
}

}  // namespace pv::workers
