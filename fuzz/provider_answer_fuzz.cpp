// What a provider answered, mapped to a delivery outcome by the code each provider runs when its
// transfer finishes (workers/providers): SendGridResult, TwilioResult, FcmResult, ApnsResult,
// SmtpResult, and under them HttpFailure, KindForHttpStatus, TransportFailure and ParseRetryAfter.
// Also an FCM service-account document (ApplyServiceAccount), which is read from outside too, and
// the whole input as the bytes of an HTTP/1.1 answer on the wire (Http1Response, the native client's
// parser): read whole and split in two, it must give the same answer, within its limits.
// Fields split at 0x1e (fuzz_support.hpp):
//
//   curl code|status|headers ("name: value" lines)|libcurl error text|body
//
// Invariants: a send is only reported delivered on a 2xx status (HTTP providers) or a finished
// transfer (SMTP); a failure always has a kind the worker's tables know and a
// message of bounded size (it travels in pv.events and in the DLQ record's pv-error header); a
// Retry-After is never negative and never more than a day.
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"
#include "pv/config.hpp"
#include "pv/workers/errors.hpp"
#include "pv/workers/http1_response.hpp"
#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"
#include "pv/workers/providers/http.hpp"
#include "pv/workers/providers/sendgrid_provider.hpp"
#include "pv/workers/providers/smtp_provider.hpp"
#include "pv/workers/providers/twilio_provider.hpp"

namespace {

using pv::fuzz::Check;
namespace p = pv::workers::providers;

// A provider's message in an event: the status, a detail and a 300-byte excerpt of the body.
constexpr size_t kMaxError = 1024;

void CheckResult(const pv::workers::DeliveryResult& result, const pv::workers::TransferResult& r, bool http,
                 const char* provider) {
  if (result.ok) {
    // An HTTP status says whether the provider took the send, even when the body then timed out.
    Check(http ? (r.status >= 200 && r.status < 300) : r.curl_code == 0, "a failed transfer reported sent",
          provider);
    return;
  }
  (void)pv::workers::DispositionOf(pv::workers::ClassOf(result.kind));
  Check(!pv::workers::ErrorKindName(result.kind).empty(), "a failure kind without a name", provider);
  Check(result.error.size() <= kMaxError + r.error.size(), "an unbounded error message", result.error.substr(0, 200));
  if (result.retry_after) {
    Check(result.retry_after->count() >= 0 && *result.retry_after <= std::chrono::hours(24),
          "a Retry-After out of range", provider);
  }
}

// The input as an answer on the wire, read whole then in two pieces: the same answer both ways.
void CheckWire(std::string_view wire) {
  using State = pv::workers::Http1Response::State;
  static constexpr std::string_view kKeep[] = {"retry-after"};
  pv::workers::Http1Limits limits;
  limits.max_body = 4096;
  pv::workers::Http1Response whole(limits);
  pv::workers::Http1Response split(limits);
  whole.Reset(kKeep);
  split.Reset(kKeep);
  std::size_t used = 0;
  State a = whole.Feed(wire, used);
  Check(used <= wire.size(), "the parser took more than it was given");
  if (a == State::kMore) a = whole.Eof();
  std::size_t at = wire.empty() ? 0 : static_cast<unsigned char>(wire[0]) * wire.size() / 256;
  std::size_t first = 0;
  std::size_t second = 0;
  State b = split.Feed(wire.substr(0, at), first);
  if (b == State::kMore) b = split.Feed(wire.substr(at), second);
  if (b == State::kMore) b = split.Eof();
  Check(a == b && whole.status() == split.status() && whole.body() == split.body() &&
            whole.headers() == split.headers() && whole.error() == split.error(),
        "an answer read differently when split");
  Check(whole.body().size() <= limits.max_body, "an answer body over its cap");
  Check(whole.headers().size() <= limits.max_headers, "more headers kept than allowed");
  if (a == State::kDone) Check(whole.status() >= 200 && whole.status() <= 999, "a final answer with a bad status");
  if (a == State::kError) Check(!whole.error().empty() && whole.error().size() < 200, "a bad parse error message");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  pv::fuzz::Budget budget("provider answer");
  CheckWire(std::string_view(reinterpret_cast<const char*>(data), size));
  pv::fuzz::Fields in(data, size);
  pv::workers::TransferResult r;
  r.curl_code = static_cast<int>(in.Int() % 100);
  r.status = static_cast<long>(in.Int() % 1000);
  std::string_view headers = in.Next();
  while (!headers.empty()) {
    size_t end = headers.find('\n');
    std::string_view line = headers.substr(0, end);
    headers = end == std::string_view::npos ? std::string_view() : headers.substr(end + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.emplace_back(std::move(name), std::string(value));
  }
  r.error = in.Next();
  r.body = in.Rest();

  // A transfer without an HTTP status is a transport failure for every HTTP provider.
  CheckResult(p::SendGridResult(r), r, true, "sendgrid");
  CheckResult(p::TwilioResult(r), r, true, "twilio");
  CheckResult(p::FcmResult(r), r, true, "fcm");
  CheckResult(p::ApnsResult(r), r, true, "apns");
  CheckResult(p::SmtpResult(r, "m-1@pv"), r, false, "smtp");
  CheckResult(p::HttpFailure(r, p::KindForHttpStatus(r.status)), r, true, "http");
  if (auto h = r.Header("retry-after")) {
    auto after = p::ParseRetryAfter(*h);
    Check(!after || (after->count() >= 0 && *after <= std::chrono::hours(24)), "a Retry-After out of range", *h);
  }
  try {
    p::FcmSettings settings;
    p::ApplyServiceAccount(settings, r.body, "fuzz");
  } catch (const pv::ConfigError&) {
  }
  return 0;
}
