#include "pv/workers/providers/apns_provider.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <cctype>

#include "pv/config.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"

namespace pv::workers::providers {

ApnsSettings LoadApnsSettings(const Config& config, const std::string& name) {
  ApnsSettings s;
  std::string p = "providers." + name + ".";
  s.common = LoadCommonSettings(config, name, "apns", "https://api.push.apple.com");
  s.team_id = config.GetString(p + "team_id", "");
  s.key_id = config.GetString(p + "key_id", "");
  s.topic = config.GetString(p + "topic", "");
  s.push_type = config.GetString(p + "push_type", s.push_type);
  s.priority = static_cast<int>(config.GetInt(p + "priority", s.priority));
  s.token_ttl = config.GetMillis(p + "token_ttl_ms", s.token_ttl);
  s.key_pem = InlineOrFileSetting(config, name, "key_pem", "key_file");
  for (const auto& [field, value] :
       {std::pair{"team_id", s.team_id}, {"key_id", s.key_id}, {"topic", s.topic}}) {
    if (value.empty()) throw ConfigError(fmt::format("providers.{}.{} is required", name, field));
  }
  ValidateApnsSettings(s, name);
  return s;
}

void ValidateApnsSettings(const ApnsSettings& s, const std::string& name) {
  std::string p = "providers." + name + ".";
  if (s.push_type != "alert" && s.push_type != "background") {
    throw ConfigError(
        fmt::format("{}push_type: '{}' is not supported: use alert or background", p, s.push_type));
  }
  if (s.push_type == "background" && s.priority != 5) {
    // Apple answers 400 BadPriority to a background push with any other priority.
    throw ConfigError(
        fmt::format("{}priority: {} with push_type background; Apple accepts only 5 for background pushes", p,
                    s.priority));
  }
  if (s.priority != 10 && s.priority != 5 && s.priority != 1) {
    throw ConfigError(fmt::format("{}priority: {}; Apple accepts 10 (now), 5 (power-friendly) or 1 (lowest)",
                                  p, s.priority));
  }
  if (s.token_ttl < kApnsMinTokenTtl || s.token_ttl > kApnsMaxTokenTtl) {
    throw ConfigError(fmt::format(
        "{}token_ttl_ms: {} ms is outside Apple's {}-{} minutes ({}-{} ms): sooner is refused with "
        "TooManyProviderTokenUpdates, later with ExpiredProviderToken",
        p, s.token_ttl.count(), kApnsMinTokenTtl.count(), kApnsMaxTokenTtl.count(),
        std::chrono::milliseconds(kApnsMinTokenTtl).count(),
        std::chrono::milliseconds(kApnsMaxTokenTtl).count()));
  }
}

std::string ApnsBody(const Send& send, bool background) {
  std::string out;
  if (background) {
    out = R"({"aps":{"content-available":1})";
  } else {
    out = R"({"aps":{"alert":{"title":)";
    AppendJsonString(out, send.ContentString("title"));
    out += R"(,"body":)";
    AppendJsonString(out, send.ContentString("body"));
    out += '}';
    if (auto sound = send.ContentString("sound"); !sound.empty()) {
      out += R"(,"sound":)";
      AppendJsonString(out, sound);
    }
    if (const auto* badge = send.ContentMember("badge"); badge != nullptr && badge->IsInt()) {
      out += fmt::format(R"(,"badge":{})", badge->GetInt());
    }
    out += '}';
  }
  // Custom data goes beside "aps", where the app reads it.
  if (const auto* data = send.ContentMember("data"); data != nullptr && data->IsObject()) {
    for (const auto& m : data->GetObject()) {
      if (AsStringView(m.name) == "aps") continue;
      out += ',';
      AppendJsonString(out, AsStringView(m.name));
      out += ':';
      out += ToJson(m.value);
    }
  }
  out += '}';
  return out;
}

std::string ApnsCollapseId(std::string_view send_id) {
  if (send_id.size() <= kApnsMaxCollapseIdBytes) return std::string(send_id);
  return Sha256Hex(send_id);
}

namespace {

// apns-id must be a canonical UUID (else 400 BadMessageId); send_ids are, but a record from
// elsewhere may carry another shape, and then Apple picks the id.
bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : std::isxdigit(static_cast<unsigned char>(s[i])) == 0) return false;
  }
  return true;
}

// The answer's headers ApnsResult reads (HttpFailure: retry-after).
constexpr std::string_view kAnswerHeaders[] = {"apns-id", "retry-after"};

}  // namespace

DeliveryResult ApnsResult(const TransferResult& r) {
  if (r.status == 0) return TransportFailure(r);
  if (r.status == 200) {
    auto id = r.Header("apns-id");
    return DeliveryResult::Sent(id ? std::string(*id) : std::string());
  }
  std::string reason;
  rapidjson::Document doc;
  ParseRecord(doc, r.body);
  if (!doc.HasParseError() && doc.IsObject()) {
    if (auto v = FindString(doc, "reason")) reason = std::string(*v);
  }
  ErrorKind kind = KindForHttpStatus(r.status);
  if (reason == "DeviceTokenNotForTopic") {
    kind = ErrorKind::kInvalidRecipient;  // a token of another app: ours may still be good elsewhere
  } else if (reason == "Unregistered" || reason == "BadDeviceToken" || r.status == 410) {
    // BadDeviceToken: the token is not (or no longer) valid for the environment; like Unregistered,
    // sending to it again can never succeed, so the dispatcher's feedback suppresses it.
    kind = ErrorKind::kUnregistered;
  } else if (reason == "BadTopic" || reason == "MissingTopic" || reason == "TopicDisallowed" ||
             reason == "BadCertificate" || reason == "BadCertificateEnvironment" ||
             reason == "MissingProviderToken") {
    kind = ErrorKind::kNotConfigured;
  } else if (reason == "BadPriority" || reason == "InvalidPushType" || reason == "BadCollapseId") {
    // Settings of ours, the same for every send of this provider: an operator fixes them.
    kind = ErrorKind::kBadSetting;
  } else if (reason == "InvalidProviderToken" || reason == "ExpiredProviderToken") {
    kind = ErrorKind::kBadCredentials;
  } else if (reason == "PayloadTooLarge") {
    kind = ErrorKind::kRejectedContent;
  } else if (reason == "TooManyRequests" || reason == "TooManyProviderTokenUpdates") {
    kind = ErrorKind::kRateLimited;
  }
  return HttpFailure(r, kind, reason);
}

ApnsProvider::ApnsProvider(ApnsSettings settings, CurlLoop& loop, Now now)
    : settings_(std::move(settings)),
      loop_(loop),
      now_(std::move(now)),
      key_(LoadPrivateKeyPem(settings_.key_pem)) {
  Token();  // fail at start, not on the first send, when the key is not a P-256 key
}

std::string ApnsProvider::Token() {
  std::lock_guard lock(mutex_);
  auto now = now_();
  if (!token_.empty()) {
    auto age = now - token_made_;
    // A rejected token is kept until Apple lets us sign again: re-signing sooner is refused with
    // TooManyProviderTokenUpdates, and every send meanwhile fails as bad_credentials (retried).
    bool renew = token_rejected_ ? age >= kApnsMinResignInterval : age >= settings_.token_ttl;
    if (!renew) return token_;
  }
  long long iat =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::string header = R"({"alg":"ES256","kid":)";
  AppendJsonString(header, settings_.key_id);
  header += '}';
  std::string claims = R"({"iss":)";
  AppendJsonString(claims, settings_.team_id);
  claims += fmt::format(R"(,"iat":{}}})", iat);
  token_ = SignJwt(JwtAlgorithm::kEs256, header, claims, key_.get());
  token_made_ = now;
  token_rejected_ = false;
  return token_;
}

void ApnsProvider::Rejected(const std::string& token) {
  std::lock_guard lock(mutex_);
  if (token_ == token) token_rejected_ = true;
}

void ApnsProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  bool background = settings_.push_type == "background";
  if (!background && send->ContentString("title").empty() && send->ContentString("body").empty()) {
    done(DeliveryResult::Failed(ErrorKind::kInvalidRecord, "push content needs a title or a body"));
    return;
  }
  std::string token = Token();
  auto req = RequestTo<HttpRequest>(settings_.common,
                                    settings_.common.base_url + "/3/device/" + FormEncode(send->address));
  req.http2 = true;
  req.headers = {"authorization: bearer " + token,
                 "apns-topic: " + settings_.topic,
                 "apns-push-type: " + settings_.push_type,
                 "apns-priority: " + std::to_string(settings_.priority),
                 "apns-collapse-id: " + ApnsCollapseId(send->send_id),
                 "content-type: application/json"};
  if (IsUuid(send->send_id)) req.headers.push_back(fmt::format("apns-id: {}", send->send_id));
  req.keep_headers = kAnswerHeaders;
  req.body = ApnsBody(*send, background);
  loop_.Submit(std::move(req), [this, token, done = std::move(done)](TransferResult&& r) {
    DeliveryResult result = ApnsResult(r);
    if (!result.ok && result.kind == ErrorKind::kBadCredentials) Rejected(token);
    done(std::move(result));
  });
}

}  // namespace pv::workers::providers
