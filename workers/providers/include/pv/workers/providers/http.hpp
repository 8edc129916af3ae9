// What the HTTP providers share: reading an HTTP answer as a delivery result, Retry-After,
// encodings (base64, base64url, form encoding, JSON strings) and the settings every provider has.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"

namespace pv {
class Config;
}

namespace pv::workers::providers {

// Settings every provider reads under providers.<name>.
struct CommonSettings {
  std::string name;
  std::string type;
  std::string base_url;
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds connect_timeout{5000};
  TlsOptions tls;
};

// Reads providers.<name>.{base_url, timeout_ms, connect_timeout_ms, ca_file, tls_verify} with the
// given default base URL.
CommonSettings LoadCommonSettings(const Config& config, const std::string& name, const std::string& type,
                                  const std::string& default_base_url);

// A request (HttpRequest or SmtpRequest) to `url` with the provider's timeouts and TLS settings.
template <typename Request>
Request RequestTo(const CommonSettings& settings, std::string url) {
  Request req;
  req.url = std::move(url);
  req.timeout = settings.timeout;
  req.connect_timeout = settings.connect_timeout;
  req.tls = settings.tls;
  return req;
}

// A secret given inline or in a file: providers.<name>.<inline_key>, or else the contents of the file
// providers.<name>.<file_key> names; a ConfigError when neither is set or the file cannot be read.
// `source`, when given, is set to where the text came from (the setting's name or the file's path).
std::string InlineOrFileSetting(const Config& config, const std::string& name, std::string_view inline_key,
                                std::string_view file_key, std::string* source = nullptr);

// "Retry-After: 120" or an HTTP date; nullopt when absent or unreadable.
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// A transfer that failed below HTTP (no status): timeout or connection problem.
DeliveryResult TransportFailure(const TransferResult& result);

// The kind of an HTTP error status, for providers without anything more specific to say:
// 401 bad credentials, 403 forbidden, 404 not configured (wrong base URL or account), 408 timeout,
// 413 rejected content, 429 rate limited, 5xx server error, other 4xx bad request.
ErrorKind KindForHttpStatus(long status);

// Failure from an HTTP answer: kind from `kind`, message with the status and a bounded excerpt of
// the body, Retry-After from the headers.
DeliveryResult HttpFailure(const TransferResult& result, ErrorKind kind, std::string_view detail = {});
// The answer header HttpFailure reads: what a provider that reads no other header keeps
// (HttpRequest::keep_headers).
inline constexpr std::string_view kFailureHeaders[] = {"retry-after"};

std::string Base64(std::string_view data);
std::string Base64Url(std::string_view data);  // no padding (JWT)
// application/x-www-form-urlencoded component.
std::string FormEncode(std::string_view s);
// Removes a trailing '/'.
std::string TrimSlash(std::string s);

}  // namespace pv::workers::providers
