#include "pv/workers/providers/smtp_provider.hpp"

#include <fmt/format.h>

#include "pv/config.hpp"
#include "pv/workers/providers/mime.hpp"

namespace pv::workers::providers {
namespace {

std::string ReplaceAll(std::string s, std::string_view from, std::string_view to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

std::string EnvelopeAddressError(std::string_view address) {
  // Line breaks first, wherever they are: they are the injection, and the message should say so.
  if (address.find_first_of("\r\n") != std::string_view::npos) return "contains a line break (CR or LF)";
  for (char c : address) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return fmt::format("contains the control character 0x{:02x}", u);
    if (c == '<' || c == '>') return "contains '<' or '>'";
  }
  return "";
}

SmtpSettings LoadSmtpSettings(const Config& config, const std::string& name) {
  SmtpSettings s;
  std::string p = "providers." + name + ".";
  s.common = LoadCommonSettings(config, name, "smtp", "smtp://127.0.0.1:25");
  s.common.timeout = config.GetMillis(p + "timeout_ms", std::chrono::milliseconds(30000));
  bool implicit = s.common.base_url.rfind("smtps://", 0) == 0;
  std::string tls = config.GetString(p + "tls", implicit ? "implicit" : "starttls");
  if (tls == "none") {
    s.tls = SmtpSettings::Tls::kNone;
  } else if (tls == "starttls") {
    s.tls = SmtpSettings::Tls::kStartTls;
  } else if (tls == "implicit") {
    s.tls = SmtpSettings::Tls::kImplicit;
  } else {
    throw ConfigError(
        fmt::format("providers.{}.tls: '{}' is not one of none, starttls, implicit", name, tls));
  }
  if (s.tls == SmtpSettings::Tls::kImplicit && !implicit) {
    throw ConfigError(fmt::format("providers.{}.tls: implicit TLS needs an smtps:// base_url", name));
  }
  s.username = config.GetString(p + "username", "");
  s.password = config.GetString(p + "password", "");
  s.helo = config.GetString(p + "helo", s.helo);
  s.message_id_domain = config.GetString(p + "message_id_domain", "");
  s.list_unsubscribe = config.GetString(p + "list_unsubscribe", "");
  s.list_unsubscribe_one_click = config.GetBool(p + "list_unsubscribe_one_click",
                                                s.list_unsubscribe.find("<https://") != std::string::npos);
  return s;
}

DeliveryResult SmtpResult(const TransferResult& r, const std::string& message_id) {
  if (r.curl_code == 0) return DeliveryResult::Sent(message_id);
  long code = r.status;
  std::string message = code > 0 ? fmt::format("SMTP {}: {}", code, r.error) : r.error;
  if (r.LoginDenied() || code == 530 || code == 534 || code == 535) {
    return DeliveryResult::Failed(ErrorKind::kBadCredentials, message);
  }
  if (code >= 500 && code < 600) {
    if (code == 550 || code == 551 || code == 553)
      return DeliveryResult::Failed(ErrorKind::kInvalidRecipient, message);
    if (code == 552 || code == 554) return DeliveryResult::Failed(ErrorKind::kRejectedContent, message);
    return DeliveryResult::Failed(ErrorKind::kBadRequest, message);
  }
  if (code >= 400 && code < 500) {
    return DeliveryResult::Failed(code == 421 ? ErrorKind::kServerError : ErrorKind::kTemporaryRejection,
                                  message);
  }
  if (r.curl_code == 64 /* CURLE_USE_SSL_FAILED: the server offers no STARTTLS */) {
    return DeliveryResult::Failed(ErrorKind::kNotConfigured, message);
  }
  return TransportFailure(r);
}

SmtpProvider::SmtpProvider(SmtpSettings settings, CurlLoop& loop)
    : settings_(std::move(settings)), loop_(loop) {
  url_ = settings_.common.base_url + "/" + settings_.helo;
}

void SmtpProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  EmailMessage m;
  m.from = std::string(send->ContentString("from"));
  m.to = send->address;
  m.reply_to = std::string(send->ContentString("reply_to"));
  m.subject = std::string(send->ContentString("subject"));
  m.text = std::string(send->ContentString("text"));
  m.html = std::string(send->ContentString("html"));
  std::string from_address = AddressOf(m.from);
  if (from_address.empty() || (m.text.empty() && m.html.empty())) {
    done(DeliveryResult::Failed(ErrorKind::kInvalidRecord, "email content needs from and text or html"));
    return;
  }
  // Checked before anything reaches libcurl: the rendered `from` may carry event data, and a record
  // (a replay, a hand-written one) may carry any address. Permanent: sending again cannot help.
  if (std::string why = EnvelopeAddressError(from_address); !why.empty()) {
    done(DeliveryResult::Failed(
        ErrorKind::kInvalidRecord,
        fmt::format("email content: the from address {} (refused for the SMTP envelope, MAIL FROM)", why)));
    return;
  }
  if (std::string why = EnvelopeAddressError(send->address); !why.empty()) {
    done(DeliveryResult::Failed(
        ErrorKind::kInvalidRecipient,
        fmt::format("recipient address {} (refused for the SMTP envelope, RCPT TO)", why)));
    return;
  }
  std::string domain =
      settings_.message_id_domain.empty() ? DomainOf(from_address) : settings_.message_id_domain;
  m.message_id = fmt::format("{}@{}", send->send_id, domain.empty() ? "pv.invalid" : domain);
  m.date = std::chrono::system_clock::now();
  if (!settings_.list_unsubscribe.empty()) {
    std::string v = ReplaceAll(settings_.list_unsubscribe, "{send_id}", send->send_id);
    v = ReplaceAll(v, "{campaign_id}", FormEncode(send->campaign_id));
    m.list_unsubscribe = ReplaceAll(v, "{email}", FormEncode(send->address));
    m.list_unsubscribe_one_click = settings_.list_unsubscribe_one_click;
  }
  auto req = RequestTo<SmtpRequest>(settings_.common, url_);
  req.require_starttls = settings_.tls == SmtpSettings::Tls::kStartTls;
  req.username = settings_.username;
  req.password = settings_.password;
  req.mail_from = from_address;
  req.recipients = {std::string(send->address)};
  req.message = BuildMimeMessage(m);
  loop_.Submit(std::move(req), [done = std::move(done), id = "<" + m.message_id + ">"](TransferResult&& r) {
    done(SmtpResult(r, id));
  });
}

}  // namespace pv::workers::providers
