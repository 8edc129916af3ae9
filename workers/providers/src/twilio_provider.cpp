#include "pv/workers/providers/twilio_provider.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include "pv/config.hpp"
#include "pv/json.hpp"
#include "pv/workers/sms_segments.hpp"

namespace pv::workers::providers {

TwilioSettings LoadTwilioSettings(const Config& config, const std::string& name) {
  TwilioSettings s;
  std::string p = "providers." + name + ".";
  s.common = LoadCommonSettings(config, name, "twilio", "https://api.twilio.com");
  s.account_sid = config.GetString(p + "account_sid", "");
  s.auth_token = config.GetString(p + "auth_token", "");
  s.api_key_sid = config.GetString(p + "api_key_sid", "");
  s.from = config.GetString(p + "from", "");
  s.messaging_service_sid = config.GetString(p + "messaging_service_sid", "");
  s.status_callback = config.GetString(p + "status_callback", "");
  s.idempotency_header = config.GetString(p + "idempotency_header", s.idempotency_header);
  if (s.account_sid.empty()) throw ConfigError(fmt::format("providers.{}.account_sid is required", name));
  if (s.from.empty() && s.messaging_service_sid.empty()) {
    throw ConfigError(fmt::format("providers.{}: set from or messaging_service_sid", name));
  }
  return s;
}

std::string TwilioForm(const Send& send, const TwilioSettings& s) {
  std::string form = "To=" + FormEncode(send.address);
  if (!s.messaging_service_sid.empty()) {
    form += "&MessagingServiceSid=" + FormEncode(s.messaging_service_sid);
  } else {
    form += "&From=" + FormEncode(s.from);
  }
  form += "&Body=" + FormEncode(send.ContentString("body"));
  if (!s.status_callback.empty()) form += "&StatusCallback=" + FormEncode(s.status_callback);
  return form;
}

DeliveryResult TwilioResult(const TransferResult& r) {
  if (r.status == 0) return TransportFailure(r);
  rapidjson::Document doc;
  ParseRecord(doc, r.body);
  bool json = !doc.HasParseError() && doc.IsObject();
  if (r.status >= 200 && r.status < 300) {
    auto sid = json ? FindString(doc, "sid") : std::nullopt;
    return DeliveryResult::Sent(sid ? std::string(*sid) : std::string());
  }
  ErrorKind kind = KindForHttpStatus(r.status);
  std::string detail;
  if (json) {
    if (const auto* code = FindMember(doc, "code"); code != nullptr && code->IsInt()) {
      int c = code->GetInt();
      detail = fmt::format("twilio {}", c);
      switch (c) {
        case 21211:  // invalid 'To' number
        case 21214:  // 'To' cannot be reached
        case 21610:  // recipient replied STOP
        case 21612:  // 'To' not reachable by this route
        case 21614:  // 'To' is not a mobile number
          kind = ErrorKind::kInvalidRecipient;
          break;
        case 21617:  // body too long
          kind = ErrorKind::kRejectedContent;
          break;
        case 20003:  // authentication failed
          kind = ErrorKind::kBadCredentials;
          break;
        case 20429:  // too many requests
          kind = ErrorKind::kRateLimited;
          break;
        default:
          break;
      }
    }
  }
  return HttpFailure(r, kind, detail);
}

TwilioProvider::TwilioProvider(TwilioSettings settings, CurlLoop& loop)
    : settings_(std::move(settings)),
      loop_(loop),
      headers_(std::make_shared<SharedHeaders>(std::vector<std::string>{
          "Content-Type: application/x-www-form-urlencoded", "Accept: application/json"})) {
  url_ = fmt::format("{}/2010-04-01/Accounts/{}/Messages.json", settings_.common.base_url,
                     FormEncode(settings_.account_sid));
}

int TwilioProvider::Cost(const Send& send) const {
  return std::max(1, CountSmsSegments(send.ContentString("body")).segments);
}

void TwilioProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  if (send->ContentString("body").empty()) {
    done(DeliveryResult::Failed(ErrorKind::kInvalidRecord, "text content needs a body"));
    return;
  }
  auto req = RequestTo<HttpRequest>(settings_.common, url_);
  req.shared_headers = headers_;
  req.keep_headers = kFailureHeaders;
  if (!settings_.idempotency_header.empty())
    req.headers.push_back(fmt::format("{}: {}", settings_.idempotency_header, send->send_id));
  req.body = TwilioForm(*send, settings_);
  req.basic_user = settings_.api_key_sid.empty() ? settings_.account_sid : settings_.api_key_sid;
  req.basic_password = settings_.auth_token;
  loop_.Submit(std::move(req), [done = std::move(done)](TransferResult&& r) { done(TwilioResult(r)); });
}

}  // namespace pv::workers::providers
