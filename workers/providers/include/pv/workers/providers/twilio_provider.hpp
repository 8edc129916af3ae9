// The `twilio` provider: Twilio's Messages API (POST /2010-04-01/Accounts/{sid}/Messages.json,
// form-encoded To/From|MessagingServiceSid/Body, HTTP basic auth), answered 201 with the message
// sid. Twilio's error codes refine the status: 21211/21614/21610 are bad or opted-out recipients.
// The Messages API documents no idempotency key: `idempotency_header` (default Idempotency-Key: the
// send_id) is not relied on, and a request sent twice is an SMS sent (and billed) twice.
#pragma once

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {

struct TwilioSettings {
  CommonSettings common;  // base_url default https://api.twilio.com
  std::string account_sid;
  std::string auth_token;   // or an API key secret with api_key_sid
  std::string api_key_sid;  // optional: basic-auth user instead of the account sid
  std::string from;         // a number, or empty with messaging_service_sid
  std::string messaging_service_sid;
  std::string status_callback;                         // optional URL
  std::string idempotency_header = "Idempotency-Key";  // empty: not sent
};

TwilioSettings LoadTwilioSettings(const Config& config, const std::string& name);
std::string TwilioForm(const Send& send, const TwilioSettings& settings);
DeliveryResult TwilioResult(const TransferResult& result);

class TwilioProvider final : public Provider {
 public:
  TwilioProvider(TwilioSettings settings, CurlLoop& loop);
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "twilio"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;
  int Cost(const Send& send) const override;  // SMS segments
  bool RecordsMessageIds() const override { return true; }  // status callbacks name the MessageSid

 private:
  TwilioSettings settings_;
  CurlLoop& loop_;
  std::string url_;
  std::shared_ptr<const SharedHeaders> headers_;  // content type, accept
};

}  // namespace pv::workers::providers
