#include "pv/workers/providers/fcm_provider.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <optional>

#include "pv/config.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/workers/providers/apns_provider.hpp"

namespace pv::workers::providers {

void ApplyServiceAccount(FcmSettings& s, const std::string& json, const std::string& source) {
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (doc.HasParseError() || !doc.IsObject()) throw ConfigError(fmt::format("{}: not a JSON object", source));
  auto field = [&](const char* name, bool required) {
    auto v = FindString(doc, name);
    if (!v && required) throw ConfigError(fmt::format("{}: service account key lacks '{}'", source, name));
    return v ? std::string(*v) : std::string();
  };
  s.client_email = field("client_email", true);
  s.private_key_pem = field("private_key", true);
  s.private_key_id = field("private_key_id", false);
  if (s.project_id.empty()) s.project_id = field("project_id", false);
  if (s.token_url.empty()) s.token_url = field("token_uri", false);
}

FcmSettings LoadFcmSettings(const Config& config, const std::string& name) {
  FcmSettings s;
  std::string p = "providers." + name + ".";
  s.common = LoadCommonSettings(config, name, "fcm", "https://fcm.googleapis.com");
  s.project_id = config.GetString(p + "project_id", "");
  s.token_url = config.GetString(p + "token_url", "");
  std::string source;
  std::string json = InlineOrFileSetting(config, name, "credentials_json", "credentials_file", &source);
  ApplyServiceAccount(s, json, source);
  if (s.token_url.empty()) s.token_url = "https://oauth2.googleapis.com/token";
  if (s.project_id.empty()) throw ConfigError(fmt::format("providers.{}.project_id is required", name));
  return s;
}

std::string FcmBody(const Send& send) {
  std::string out = R"({"message":{"token":)";
  AppendJsonString(out, send.address);
  out += R"(,"notification":{"title":)";
  AppendJsonString(out, send.ContentString("title"));
  out += R"(,"body":)";
  AppendJsonString(out, send.ContentString("body"));
  out += '}';
  // FCM data values must be strings.
  if (const auto* data = send.ContentMember("data");
      data != nullptr && data->IsObject() && data->MemberCount() > 0) {
    out += R"(,"data":{)";
    bool first = true;
    for (const auto& m : data->GetObject()) {
      if (!first) out += ',';
      first = false;
      AppendJsonString(out, AsStringView(m.name));
      out += ':';
      AppendJsonString(out, m.value.IsString() ? std::string(AsStringView(m.value)) : ToJson(m.value));
    }
    out += '}';
  }
  auto sound = send.ContentString("sound");
  const auto* badge = send.ContentMember("badge");
  bool has_badge = badge != nullptr && badge->IsInt();
  // A repeated send replaces rather than stacks: Android shows one notification per tag, iOS one per
  // apns-collapse-id. Not android.collapse_key: FCM stores at most four collapse keys per offline
  // device and keeps any four, so a unique key per send would lose pushes to a phone offline for a
  // while (non-collapsible messages are kept up to 100), to guard against a rare duplicate.
  out += R"(,"android":{"notification":{"tag":)";
  AppendJsonString(out, send.send_id);
  if (!sound.empty()) {
    out += R"(,"sound":)";
    AppendJsonString(out, sound);
  }
  out += R"(}},"apns":{"headers":{"apns-collapse-id":)";
  AppendJsonString(out, ApnsCollapseId(send.send_id));
  out += '}';
  if (!sound.empty() || has_badge) {
    out += R"(,"payload":{"aps":{)";
    if (!sound.empty()) {
      out += R"("sound":)";
      AppendJsonString(out, sound);
    }
    if (has_badge) out += fmt::format(R"({}"badge":{})", sound.empty() ? "" : ",", badge->GetInt());
    out += "}}";
  }
  out += "}}}";
  return out;
}

std::string FcmErrorCode(const TransferResult& r) {
  rapidjson::Document doc;
  doc.Parse(r.body.c_str());
  if (doc.HasParseError() || !doc.IsObject()) return {};
  std::string code;
  if (const auto* error = FindMember(doc, "error"); error != nullptr && error->IsObject()) {
    if (const auto* details = FindMember(*error, "details"); details != nullptr && details->IsArray()) {
      for (const auto& d : details->GetArray()) {
        if (auto c = d.IsObject() ? FindString(d, "errorCode") : std::nullopt) code = std::string(*c);
      }
    }
    if (code.empty()) {
      if (auto st = FindString(*error, "status")) code = std::string(*st);
    }
  }
  return code;
}

bool FcmTokenRejected(const TransferResult& r) {
  // THIRD_PARTY_AUTH_ERROR comes with a 401 too, but it is about the APNs certificate or key stored
  // in Firebase, not our OAuth token: a new token would not help and costs a round trip per send.
  return r.status == 401 && FcmErrorCode(r) != "THIRD_PARTY_AUTH_ERROR";
}

DeliveryResult FcmResult(const TransferResult& r) {
  if (r.status == 0) return TransportFailure(r);
  rapidjson::Document doc;
  ParseRecord(doc, r.body);
  bool json = !doc.HasParseError() && doc.IsObject();
  if (r.status >= 200 && r.status < 300) {
    auto name = json ? FindString(doc, "name") : std::nullopt;
    return DeliveryResult::Sent(name ? std::string(*name) : std::string());
  }
  ErrorKind kind = KindForHttpStatus(r.status);
  std::string code = json ? FcmErrorCode(r) : std::string();
  if (code == "UNREGISTERED") {
    kind = ErrorKind::kUnregistered;
  } else if (code == "SENDER_ID_MISMATCH") {
    kind = ErrorKind::kInvalidRecipient;
  } else if (code == "INVALID_ARGUMENT") {
    kind = r.body.find("registration token") != std::string::npos ? ErrorKind::kInvalidRecipient
                                                                  : ErrorKind::kBadRequest;
  } else if (code == "QUOTA_EXCEEDED") {
    kind = ErrorKind::kRateLimited;
  } else if (code == "UNAVAILABLE" || code == "INTERNAL") {
    kind = ErrorKind::kServerError;
  } else if (code == "THIRD_PARTY_AUTH_ERROR") {
    kind = ErrorKind::kBadCredentials;
  }
  return HttpFailure(r, kind, code);
}

FcmProvider::FcmProvider(FcmSettings settings, CurlLoop& loop)
    : settings_(std::move(settings)), loop_(loop), key_(LoadPrivateKeyPem(settings_.private_key_pem)) {
  send_url_ = fmt::format("{}/v1/projects/{}/messages:send", settings_.common.base_url, settings_.project_id);
  // Fail at start, not on the first send, when the key cannot sign RS256 (an EC key, say).
  SignJwt(JwtAlgorithm::kRs256, R"({"alg":"RS256"})", "{}", key_.get());
}

void FcmProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  if (send->ContentString("title").empty() && send->ContentString("body").empty()) {
    done(DeliveryResult::Failed(ErrorKind::kInvalidRecord, "push content needs a title or a body"));
    return;
  }
  std::string token;
  {
    std::lock_guard lock(mutex_);
    if (!token_.empty() && Clock::now() < token_expires_) {
      token = token_;
    } else {
      waiting_.push_back({send, std::move(done)});
      if (fetching_) return;
      fetching_ = true;
    }
  }
  if (!token.empty()) {
    SendWith(send, token, std::move(done));
    return;
  }
  FetchToken();
}

void FcmProvider::FetchToken() {
  auto now = std::chrono::system_clock::now();
  long long iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::string header = R"({"alg":"RS256","typ":"JWT")";
  if (!settings_.private_key_id.empty()) {
    header += R"(,"kid":)";
    AppendJsonString(header, settings_.private_key_id);
  }
  header += '}';
  std::string claims = R"({"iss":)";
  AppendJsonString(claims, settings_.client_email);
  claims += R"(,"scope":)";
  AppendJsonString(claims, settings_.scope);
  claims += R"(,"aud":)";
  AppendJsonString(claims, settings_.token_url);
  claims += fmt::format(R"(,"iat":{},"exp":{}}})", iat, iat + 3600);
  auto req = RequestTo<HttpRequest>(settings_.common, settings_.token_url);
  req.headers = {"Content-Type: application/x-www-form-urlencoded"};
  req.keep_headers = kFailureHeaders;
  req.body = "grant_type=" + FormEncode("urn:ietf:params:oauth:grant-type:jwt-bearer") +
             "&assertion=" + SignJwt(JwtAlgorithm::kRs256, header, claims, key_.get());
  loop_.Submit(std::move(req), [this](TransferResult&& r) { OnToken(std::move(r)); });
}

void FcmProvider::OnToken(TransferResult&& r) {
  std::string token;
  long long expires_in = 0;
  std::optional<DeliveryResult> failure;
  if (r.status == 0) {
    failure = TransportFailure(r);
  } else if (r.status >= 200 && r.status < 300) {
    rapidjson::Document doc;
    ParseRecord(doc, r.body);
    if (!doc.HasParseError() && doc.IsObject()) {
      if (auto t = FindString(doc, "access_token")) token = std::string(*t);
      if (const auto* e = FindMember(doc, "expires_in"); e != nullptr && e->IsInt64())
        expires_in = e->GetInt64();
    }
    if (token.empty())
      failure = DeliveryResult::Failed(ErrorKind::kServerError, "token endpoint: no access_token");
  } else {
    // 400 invalid_grant / 401 invalid_client: the key is wrong or revoked.
    ErrorKind kind = r.status == 400 || r.status == 401 || r.status == 403 ? ErrorKind::kBadCredentials
                                                                           : KindForHttpStatus(r.status);
    failure = HttpFailure(r, kind, "OAuth2 token");
  }
  std::vector<Waiting> waiting;
  {
    std::lock_guard lock(mutex_);
    fetching_ = false;
    waiting.swap(waiting_);
    if (!failure) {
      token_ = token;
      // Renew a minute early, so no send goes out with a token about to expire.
      auto lifetime = std::chrono::seconds(std::max(60LL, expires_in > 0 ? expires_in : 3600) - 60);
      token_expires_ = Clock::now() + lifetime;
    }
  }
  if (failure) {
    pv::log::Warn("fcm_token_failed", {{"provider", settings_.common.name}, {"error", failure->error}});
    for (auto& w : waiting) w.done(*failure);
    return;
  }
  pv::log::Debug("fcm_token", {{"provider", settings_.common.name}, {"expires_in", expires_in}});
  for (auto& w : waiting) SendWith(w.send, token, std::move(w.done));
}

void FcmProvider::SendWith(const std::shared_ptr<const Send>& send, const std::string& token, Done done) {
  auto req = RequestTo<HttpRequest>(settings_.common, send_url_);
  req.headers = {"Authorization: Bearer " + token, "Content-Type: application/json"};
  req.keep_headers = kFailureHeaders;
  req.body = FcmBody(*send);
  loop_.Submit(std::move(req), [this, token, done = std::move(done)](TransferResult&& r) {
    if (FcmTokenRejected(r)) {
      // The token was revoked or expired early: drop it, so the retry fetches a new one.
      std::lock_guard lock(mutex_);
      if (token_ == token) token_.clear();
    }
    done(FcmResult(r));
  });
}

}  // namespace pv::workers::providers
