#include "pv/ids.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <charconv>
#include <chrono>
#include <memory>
#include <random>
#include <stdexcept>

#include "pv/json.hpp"

namespace pv {
namespace {

constexpr size_t kUuidChars = 36;

// The 36 characters of the UUID in `b`, into `text`: written into a buffer and copied once (an append
// per digit cost ~1,400 instructions per id).
void FormatUuidInto(const unsigned char* b, char* text) {
  static constexpr char kHex[] = "0123456789abcdef";
  char* t = text;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *t++ = '-';
    *t++ = kHex[b[i] >> 4];
    *t++ = kHex[b[i] & 0xf];
  }
}

std::string FormatUuid(const unsigned char* b) {
  char text[kUuidChars];
  FormatUuidInto(b, text);
  return std::string(text, sizeof(text));
}

void MarkUuidV8(std::array<unsigned char, 32>& d) {
  d[6] = static_cast<unsigned char>((d[6] & 0x0f) | 0x80);  // version 8
  d[8] = static_cast<unsigned char>((d[8] & 0x3f) | 0x80);  // RFC 4122 variant
}

std::string UuidV8FromDigest(std::array<unsigned char, 32> d) {
  MarkUuidV8(d);
  return FormatUuid(d.data());
}

std::uint64_t ThreadRandom() {
  // Ids need uniqueness, not secrecy: a per-thread generator seeded from the CSPRNG is enough and
  // keeps the request path free of syscalls.
  thread_local std::mt19937_64 engine = [] {
    std::uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof(seed)) != 1) seed = std::random_device{}();
    return std::mt19937_64(seed);
  }();
  return engine();
}

}  // namespace

std::array<unsigned char, 32> Sha256(std::string_view data) {
  // The implementation fetched once and a context per thread: EVP_Digest(..., EVP_sha256()) fetched
  // one and allocated a context on every call, about as much work as hashing a 300-byte record.
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(),
                                                                            EVP_MD_CTX_free);
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (md == nullptr || ctx == nullptr || EVP_DigestInit_ex(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto d = Sha256(data);
  std::string out;
  out.reserve(64);
  for (unsigned char c : d) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::string NewTriggerId() {
  auto ms = static_cast<std::uint64_t>(ToUnixMillis(std::chrono::system_clock::now()));
  std::uint64_t r1 = ThreadRandom();
  std::uint64_t r2 = ThreadRandom();
  unsigned char b[16];
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  b[6] = static_cast<unsigned char>(0x70 | ((r1 >> 8) & 0x0f));  // version 7
  b[7] = static_cast<unsigned char>(r1);
  b[8] = static_cast<unsigned char>(0x80 | ((r1 >> 16) & 0x3f));  // variant
  for (int i = 9; i < 16; ++i) b[i] = static_cast<unsigned char>(r2 >> (8 * (i - 9)));
  return FormatUuid(b);
}

std::string DerivedTriggerId(std::string_view project, std::string_view campaign_id,
                             std::string_view idempotency_key, int index) {
  // Length-prefixed fields, so ("a","bc") and ("ab","c") never collide.
  std::string material =
      fmt::format("pv-trigger-v1|{}:{}|{}:{}|{}:{}|{}", project.size(), project, campaign_id.size(),
                  campaign_id, idempotency_key.size(), idempotency_key, index);
  return UuidV8FromDigest(Sha256(material));
}

void AppendSendIdFor(std::string& out, std::string_view trigger_id, std::string_view channel) {
  // The digest of "pv-send-v1|<length>:<trigger_id>|<channel>", the material in a buffer on the stack
  // (a trigger id is at most 64 bytes where pv stores it; a longer one spills to the heap) and the
  // id written straight into `out`: the status feeder derives one per event.
  constexpr std::string_view kPrefix = "pv-send-v1|";
  fmt::basic_memory_buffer<char, 128> material;
  char length[20];
  char* end = std::to_chars(length, length + sizeof(length), trigger_id.size()).ptr;
  material.append(kPrefix.data(), kPrefix.data() + kPrefix.size());
  material.append(length, end);
  material.push_back(':');
  material.append(trigger_id.data(), trigger_id.data() + trigger_id.size());
  material.push_back('|');
  material.append(channel.data(), channel.data() + channel.size());
  auto digest = Sha256(std::string_view(material.data(), material.size()));
  MarkUuidV8(digest);
  char text[kUuidChars];
  FormatUuidInto(digest.data(), text);
  out.append(text, sizeof(text));
}

std::string SendIdFor(std::string_view trigger_id, std::string_view channel) {
  std::string id;
  id.reserve(kUuidChars);
  AppendSendIdFor(id, trigger_id, channel);
  return id;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomHex(size_t n) {
  std::string bytes(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("system random generator failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

}  // namespace pv
