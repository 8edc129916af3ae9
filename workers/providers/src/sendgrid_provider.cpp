#include "pv/workers/providers/sendgrid_provider.hpp"

#include <fmt/format.h>

#include "pv/config.hpp"
#include "pv/json.hpp"
#include "pv/workers/providers/mime.hpp"

namespace pv::workers::providers {
namespace {

void AppendMailbox(std::string& out, std::string_view mailbox) {
  out += R"({"email":)";
  AppendJsonString(out, AddressOf(mailbox));
  auto lt = mailbox.rfind('<');
  if (lt != std::string_view::npos && lt > 0) {
    std::string_view name = mailbox.substr(0, lt);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') name = name.substr(1, name.size() - 2);
    if (!name.empty()) {
      out += R"(,"name":)";
      AppendJsonString(out, name);
    }
  }
  out += '}';
}

// The answer's headers SendGridResult reads (HttpFailure: retry-after).
constexpr std::string_view kAnswerHeaders[] = {"x-message-id", "retry-after"};

}  // namespace

SendGridSettings LoadSendGridSettings(const Config& config, const std::string& name) {
  SendGridSettings s;
  std::string p = "providers." + name + ".";
  s.common = LoadCommonSettings(config, name, "sendgrid", "https://api.sendgrid.com");
  s.api_key = config.GetString(p + "api_key", "");
  s.idempotency_header = config.GetString(p + "idempotency_header", s.idempotency_header);
  s.list_unsubscribe = config.GetString(p + "list_unsubscribe", "");
  return s;
}

std::string SendGridBody(const Send& send, const std::string& list_unsubscribe) {
  std::string out;
  // The body is the record's content and ids in other clothes: the value's size, and room for the
  // names around them, saves growing it (and copying the html) two or three times.
  out.reserve(send.value.size() + 256 + list_unsubscribe.size());
  out += R"({"personalizations":[{"to":[{"email":)";
  AppendJsonString(out, send.address);
  // Back in every Event Webhook event beside SendGrid's own fields: the feedback pipeline maps the
  // event to its send and trigger with them (ingest/src/receipts.cpp).
  out += R"(}],"custom_args":{"send_id":)";
  AppendJsonString(out, send.send_id);
  if (!send.trigger_id.empty()) {
    out += R"(,"trigger_id":)";
    AppendJsonString(out, send.trigger_id);
  }
  out += R"(,"campaign_id":)";
  AppendJsonString(out, send.campaign_id);
  out += R"(}}],"from":)";
  AppendMailbox(out, send.ContentString("from"));
  if (auto reply_to = send.ContentString("reply_to"); !reply_to.empty()) {
    out += R"(,"reply_to":)";
    AppendMailbox(out, reply_to);
  }
  // The subject, text and html are copied as the record escaped them (Send::AppendString), not
  // decoded and escaped again: most of a send's bytes, and the body's largest cost (callgrind).
  out += R"(,"subject":)";
  send.AppendContentString(out, "subject");
  out += R"(,"content":[)";
  bool first = true;
  // SendGrid requires text/plain before text/html.
  for (const char* type : {"text", "html"}) {
    auto value = send.ContentString(type);
    if (value.empty()) continue;
    if (!first) out += ',';
    first = false;
    out += type == std::string_view("text") ? R"({"type":"text/plain","value":)"
                                            : R"({"type":"text/html","value":)";
    send.AppendString(out, value);
    out += '}';
  }
  out += ']';
  if (!list_unsubscribe.empty()) {
    std::string v = list_unsubscribe;
    for (size_t pos = v.find("{send_id}"); pos != std::string::npos; pos = v.find("{send_id}")) {
      v.replace(pos, 9, send.send_id);
    }
    out += R"(,"headers":{"List-Unsubscribe":)";
    AppendJsonString(out, v);
    out += '}';
  }
  out += '}';
  return out;
}

DeliveryResult SendGridResult(const TransferResult& r) {
  if (r.status == 0) return TransportFailure(r);
  if (r.status >= 200 && r.status < 300) {
    auto id = r.Header("x-message-id");
    return DeliveryResult::Sent(id ? std::string(*id) : std::string());
  }
  ErrorKind kind = KindForHttpStatus(r.status);
  if (r.status == 400 && r.body.find("personalizations") != std::string::npos &&
      r.body.find(".email") != std::string::npos) {
    kind = ErrorKind::kInvalidRecipient;
  }
  return HttpFailure(r, kind);
}

SendGridProvider::SendGridProvider(SendGridSettings settings, CurlLoop& loop)
    : settings_(std::move(settings)),
      loop_(loop),
      url_(settings_.common.base_url + "/v3/mail/send"),
      headers_(std::make_shared<SharedHeaders>(std::vector<std::string>{
          "Authorization: Bearer " + settings_.api_key, "Content-Type: application/json"})) {}

void SendGridProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  if (send->ContentString("from").empty() ||
      (send->ContentString("text").empty() && send->ContentString("html").empty())) {
    done(DeliveryResult::Failed(ErrorKind::kInvalidRecord, "email content needs from and text or html"));
    return;
  }
  auto req = RequestTo<HttpRequest>(settings_.common, url_);
  req.shared_headers = headers_;
  req.keep_headers = kAnswerHeaders;
  if (!settings_.idempotency_header.empty())
    req.headers.push_back(fmt::format("{}: {}", settings_.idempotency_header, send->send_id));
  req.body = SendGridBody(*send, settings_.list_unsubscribe);
  loop_.Submit(std::move(req), [done = std::move(done)](TransferResult&& r) { done(SendGridResult(r)); });
}

}  // namespace pv::workers::providers
