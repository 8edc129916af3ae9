// The `smtp` provider: delivers an email to an SMTP server (a relay, or a service's SMTP endpoint)
// with libcurl: STARTTLS or implicit TLS (smtps://), AUTH, a multipart/alternative message with
// Message-ID <send_id@domain> (so the receiving side can see a redelivered message is the same one),
// Date, Reply-To and, when configured, List-Unsubscribe.
//
// SMTP replies decide the error: 5xx mailbox errors (550, 551, 553) are permanent invalid
// recipients, 552/554 rejected content, 530/535 bad credentials, 4xx temporary.
#pragma once

#include <string>
#include <string_view>

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/providers/http.hpp"

namespace pv::workers::providers {

struct SmtpSettings {
  CommonSettings common;  // base_url: smtp://host:port or smtps://host:port
  enum class Tls { kNone, kStartTls, kImplicit } tls = Tls::kStartTls;
  std::string username;
  std::string password;
  std::string helo = "localhost";
  std::string message_id_domain;  // default: the From address's domain
  // May contain {send_id}, {campaign_id}, {email} (the recipient, form-encoded).
  std::string list_unsubscribe;
  bool list_unsubscribe_one_click = false;
};

SmtpSettings LoadSmtpSettings(const Config& config, const std::string& name);

// Why `address` cannot go into MAIL FROM or RCPT TO, or "" when it can. The envelope is a command line
// of the SMTP dialogue: a CR or LF there ends the command and lets the rest be read as new commands
// (another RCPT TO, a DATA of its own), and other control characters or angle brackets break the
// <address> framing. Such an address is refused, never cleaned: stripping would send from or to an
// address nobody wrote.
std::string EnvelopeAddressError(std::string_view address);

// Maps a finished SMTP transfer to a delivery result.
DeliveryResult SmtpResult(const TransferResult& result, const std::string& message_id);

class SmtpProvider final : public Provider {
 public:
  SmtpProvider(SmtpSettings settings, CurlLoop& loop);
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "smtp"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;

 private:
  SmtpSettings settings_;
  CurlLoop& loop_;
  std::string url_;
};

}  // namespace pv::workers::providers
