// The `sendgrid` provider: SendGrid's v3 Mail Send API (POST /v3/mail/send, bearer API key, JSON),
// answered 202 with the message id in X-Message-Id. The send_id travels as a custom argument (it
// comes back in SendGrid's event webhooks) and, when `idempotency_header` is set, as that header.
// SendGrid documents no idempotency key for mail send: nothing here relies on the header (a relay in
// front may honour it), and a request sent twice is a mail sent twice.
#pragma once

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {

struct SendGridSettings {
  CommonSettings common;  // base_url default https://api.sendgrid.com
  std::string api_key;
  std::string idempotency_header = "Idempotency-Key";  // empty: not sent; undocumented by SendGrid
  std::string list_unsubscribe;                        // like the smtp provider's
};

SendGridSettings LoadSendGridSettings(const Config& config, const std::string& name);
// The request body for one send.
std::string SendGridBody(const Send& send, const std::string& list_unsubscribe);
DeliveryResult SendGridResult(const TransferResult& result);

class SendGridProvider final : public Provider {
 public:
  SendGridProvider(SendGridSettings settings, CurlLoop& loop);
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "sendgrid"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;

 private:
  SendGridSettings settings_;
  CurlLoop& loop_;
  std::string url_;                                // base_url + /v3/mail/send
  std::shared_ptr<const SharedHeaders> headers_;  // authorization, content type
};

}  // namespace pv::workers::providers
