#include "pv/workers/providers/http.hpp"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <ctime>

#include "pv/config.hpp"
#include "pv/files.hpp"
#include "pv/json.hpp"
#include "pv/strings.hpp"

namespace pv::workers::providers {

CommonSettings LoadCommonSettings(const Config& config, const std::string& name, const std::string& type,
                                  const std::string& default_base_url) {
  CommonSettings s;
  std::string p = "providers." + name + ".";
  s.name = name;
  s.type = type;
  s.base_url = TrimSlash(config.GetString(p + "base_url", default_base_url));
  s.timeout = config.GetMillis(p + "timeout_ms", s.timeout);
  s.connect_timeout = config.GetMillis(p + "connect_timeout_ms", s.connect_timeout);
  s.tls.ca_file = config.GetString(p + "ca_file", "");
  s.tls.verify = config.GetBool(p + "tls_verify", true);
  return s;
}

std::string InlineOrFileSetting(const Config& config, const std::string& name, std::string_view inline_key,
                                std::string_view file_key, std::string* source) {
  std::string p = "providers." + name + ".";
  std::string text = config.GetString(p + std::string(inline_key), "");
  if (source != nullptr) *source = p + std::string(inline_key);
  if (!text.empty()) return text;
  std::string file = config.GetString(p + std::string(file_key), "");
  if (file.empty()) throw ConfigError(fmt::format("providers.{}: set {} or {}", name, file_key, inline_key));
  std::optional<std::string> read = ReadFile(file);
  if (!read) throw ConfigError(fmt::format("providers.{}.{}: cannot read {}", name, file_key, file));
  if (source != nullptr) *source = file;
  return std::move(*read);
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now) {
  // A day at most, whichever form: a provider's (or a proxy's) Retry-After of years must not park a
  // send in the delay ladder for years. provider_answer_fuzz found "999999999" (31 years) and any far
  // date passing uncapped, and a date past 2262 overflowing system_clock.
  constexpr std::chrono::milliseconds kMax = std::chrono::hours(24);
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  bool digits = true;
  for (char c : value) digits = digits && c >= '0' && c <= '9';
  if (digits) {
    if (value.size() > 9) return kMax;
    long long seconds = 0;
    ParseNumber(value, seconds);  // digits only, at most 9: cannot fail
    return std::min(kMax, std::chrono::milliseconds(seconds * 1000));
  }
  // IMF-fixdate: "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  std::string text(value);
  if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
  // Compared in seconds first: only a time within a day of now is converted to system_clock.
  std::time_t at = timegm(&tm);
  std::time_t now_s = std::chrono::system_clock::to_time_t(now);
  if (at <= now_s) return std::chrono::milliseconds(0);
  if (at - now_s >= 24 * 3600) return kMax;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::from_time_t(at) - now);
  return std::clamp(ms, std::chrono::milliseconds(0), kMax);
}

DeliveryResult TransportFailure(const TransferResult& r) {
  if (r.request_sent) {
    // Sent whole, then silence or a broken connection: the provider may have accepted it.
    return DeliveryResult::Failed(ErrorKind::kUnknownOutcome, "request sent, no answer: " + r.error);
  }
  if (r.TimedOut()) return DeliveryResult::Failed(ErrorKind::kTimeout, r.error);
  if (r.curl_code == 60 /* CURLE_PEER_FAILED_VERIFICATION */ ||
      r.curl_code == 77 /* CURLE_SSL_CACERT_BADFILE */) {
    return DeliveryResult::Failed(ErrorKind::kNotConfigured, "TLS: " + r.error);
  }
  if (r.curl_code == 43 /* CURLE_BAD_FUNCTION_ARGUMENT: a header with a line break, Http1Client */) {
    return DeliveryResult::Failed(ErrorKind::kBadRequest, r.error);
  }
  if (r.curl_code == 3 /* CURLE_URL_MALFORMAT */ || r.curl_code == 1 /* CURLE_UNSUPPORTED_PROTOCOL */) {
    return DeliveryResult::Failed(ErrorKind::kNotConfigured, r.error);
  }
  return DeliveryResult::Failed(ErrorKind::kConnection, r.error);
}

ErrorKind KindForHttpStatus(long status) {
  if (status == 401) return ErrorKind::kBadCredentials;
  if (status == 403) return ErrorKind::kForbidden;
  if (status == 404 || status == 405) return ErrorKind::kNotConfigured;
  if (status == 408) return ErrorKind::kTimeout;
  if (status == 413) return ErrorKind::kRejectedContent;
  if (status == 429) return ErrorKind::kRateLimited;
  // A gateway gave up waiting for the service behind it, which may still have acted on the request.
  if (status == 504) return ErrorKind::kUnknownOutcome;
  if (status >= 500) return ErrorKind::kServerError;
  if (status >= 400) return ErrorKind::kBadRequest;
  return ErrorKind::kServerError;  // 1xx/3xx where a 2xx was expected
}

DeliveryResult HttpFailure(const TransferResult& r, ErrorKind kind, std::string_view detail) {
  // The detail is the provider's own code or reason (APNs "reason", FCM "errorCode"): answer data, so
  // bounded like the body (provider_answer_fuzz: a 60 KB reason went whole into the event and the
  // DLQ record's pv-error header).
  detail = detail.substr(0, 100);
  std::string body = r.body.substr(0, 300);
  for (char& c : body) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string message = detail.empty() ? fmt::format("HTTP {}: {}", r.status, body)
                                       : fmt::format("HTTP {}: {}: {}", r.status, detail, body);
  std::optional<std::chrono::milliseconds> retry_after;
  if (auto h = r.Header("retry-after")) retry_after = ParseRetryAfter(*h);
  return DeliveryResult::Failed(kind, std::move(message), retry_after);
}

std::string Base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Base64Url(std::string_view data) {
  std::string out = Base64(data);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string FormEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else if (c == ' ') {
      out += '+';
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

std::string TrimSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace pv::workers::providers
