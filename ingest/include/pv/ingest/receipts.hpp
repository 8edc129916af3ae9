// Delivery receipts from providers, on the public API port (docs/api.md "Provider receipts"):
//
//   POST /api/providers/sendgrid/events   SendGrid's Event Webhook: a JSON array of events, signed
//                                         with ECDSA P-256 / SHA-256 over timestamp + body
//   POST /api/providers/twilio/status     Twilio message status callbacks (form-encoded)
//   POST /api/providers/twilio/inbound    inbound SMS (STOP / START keywords)
//
// Each request is verified against the provider's secret in the config (receipts.*), then every event
// worth acting on becomes one normalised record on pv.receipts, keyed by its receipt id; the answer
// is 2xx only once the broker acknowledged every record (the trigger API's rule). A missing or bad
// signature, or a SendGrid timestamp older than receipts.max_age_seconds, is 401 and publishes
// nothing. The parsers and verifiers below take outside data: fuzz/receipt_fuzz.cpp drives them.
#pragma once

#include <openssl/evp.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "pv/ingest/http_front.hpp"
#include "pv/metrics.hpp"
#include "pv/records.hpp"

namespace pv {
class Config;
}
namespace pv::kafka {
class Producer;
}

namespace pv::ingest::receipts {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// receipts.sendgrid.<name>.public_key: the "verification key" SendGrid shows for the signed Event
// Webhook (base64 of a DER SubjectPublicKeyInfo, P-256).
struct SendGridAccount {
  std::string name;
  std::shared_ptr<EVP_PKEY> key;
};

// receipts.twilio.<name>.auth_token and .public_url: Twilio signs the URL it called, which a proxy in
// front of ingest may rewrite; public_url (scheme://host[:port][/prefix]) is what Twilio was given,
// and the request's path and query are appended to it.
struct TwilioAccount {
  std::string name;
  std::string auth_token;
  std::string public_url;
};

struct ReceiptOptions {
  std::vector<SendGridAccount> sendgrid;
  std::vector<TwilioAccount> twilio;
  std::string topic = "pv.receipts";  // receipts.topic
  // SendGrid's signed timestamp may be this far from now, either way (receipts.max_age_seconds).
  std::chrono::seconds max_age{300};
  size_t max_events = 1000;  // events in one SendGrid request (receipts.max_events) → 413
  size_t max_params = 200;   // fields in one Twilio form → 400
  int max_json_depth = 16;   // SendGrid's events are flat

  // Throws ConfigError naming a bad setting (a public key that is not a P-256 key, an account
  // without its secret).
  static ReceiptOptions FromConfig(const Config& config);
};

// Loads a base64 DER SubjectPublicKeyInfo of a P-256 key; nullptr and `error` when it is not one.
std::shared_ptr<EVP_PKEY> LoadSendGridKey(std::string_view base64_der, std::string& error);

// One receipt as pv.receipts carries it (AppendReceipt writes the record).
using Receipt = ReceiptRecord;

struct Parsed {
  std::vector<Receipt> receipts;
  size_t ignored = 0;     // events understood and not acted on (opens, clicks, "sending", ...)
  std::string error;      // non-empty: the request is malformed (400), nothing is published
  bool too_many = false;  // with error: over max_events (413)
};

// SendGrid's Event Webhook body: a JSON array of event objects.
Parsed ParseSendGridEvents(std::string_view body, const ReceiptOptions& options);

using FormParams = std::vector<std::pair<std::string, std::string>>;
// application/x-www-form-urlencoded, '+' and %XX decoded; false with `error` when malformed or over
// `max_params` fields.
bool ParseForm(std::string_view body, size_t max_params, FormParams& out, std::string& error);
// A status callback (MessageSid, MessageStatus, ErrorCode, To) and an inbound message (MessageSid,
// From, Body), already verified.
Parsed ParseTwilioStatus(const FormParams& params);
Parsed ParseTwilioInbound(const FormParams& params);

// ECDSA over `timestamp` + `body` with the account's key; `signature` is base64 DER.
bool VerifySendGrid(EVP_PKEY* key, std::string_view timestamp, std::string_view body,
                    std::string_view signature);
// base64(HMAC-SHA1(auth_token, url + every name and value, sorted by name)).
std::string TwilioSignature(std::string_view auth_token, std::string_view url, const FormParams& params);

std::string Base64Encode(std::string_view data);
// Standard alphabet, padding optional; nullopt on any other character.
std::optional<std::string> Base64Decode(std::string_view text);

// The three routes, for ingest's front (server.cpp hands every /api/providers/ request here).
class ReceiptEndpoints {
 public:
  ReceiptEndpoints(ReceiptOptions options, kafka::Producer& producer, metrics::Registry& registry,
                   int retry_after_seconds);
  ~ReceiptEndpoints();
  ReceiptEndpoints(const ReceiptEndpoints&) = delete;
  ReceiptEndpoints& operator=(const ReceiptEndpoints&) = delete;

  static bool Matches(std::string_view target);
  std::variant<http::Response, std::unique_ptr<http::Exchange>> OnHead(const http::RequestHead& head);

  enum class Route { kSendGrid = 0, kTwilioStatus, kTwilioInbound, kCount };
  // What became of one request, in pv_ingest_receipt_requests_total{route,result}; and events in
  // pv_ingest_receipts_total{provider,result} (published, ignored).
  void CountRequest(Route route, std::string_view result);
  void CountReceipts(Route route, std::string_view result, size_t n);

 private:
  class BodyExchange;
  class Publication;
  friend class BodyExchange;
  friend class Publication;

  ReceiptOptions options_;
  kafka::Producer& producer_;
  int retry_after_seconds_;
  metrics::Family<metrics::Counter>* requests_ = nullptr;
  metrics::Family<metrics::Counter>* receipts_ = nullptr;
};

}  // namespace pv::ingest::receipts
