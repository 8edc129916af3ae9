#include "pv/ingest/receipts.hpp"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <map>

#include "publication.hpp"
#include "pv/config.hpp"
#include "pv/ids.hpp"
#include "pv/ingest/trigger.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/log.hpp"
#include "pv/strings.hpp"

namespace pv::ingest::receipts {
namespace {

using Clock = std::chrono::steady_clock;

// By Route: each route's path, and its name in metrics and logs.
constexpr std::string_view kPaths[] = {"/api/providers/sendgrid/events", "/api/providers/twilio/status",
                                       "/api/providers/twilio/inbound"};
constexpr const char* kRouteNames[] = {"sendgrid_events", "twilio_status", "twilio_inbound", "other"};
constexpr std::string_view kSignatureHeader = "X-Twilio-Email-Event-Webhook-Signature";
constexpr std::string_view kTimestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp";

const char* RouteName(ReceiptEndpoints::Route route) {
  return kRouteNames[static_cast<int>(route)];
}

std::vector<std::string> SectionNames(const Config& config, const std::string& key) {
  std::vector<std::string> names;
  YAML::Node section = config.Node(key);
  if (section && section.IsMap()) {
    for (const auto& entry : section) names.push_back(entry.first.as<std::string>());
  } else if (section && !section.IsNull()) {
    throw ConfigError(fmt::format("{}: must be a mapping of provider names to settings", key));
  }
  return names;
}

std::string StringOf(const rapidjson::Value& object, std::string_view name) {
  const rapidjson::Value* v = FindMember(object, name);
  if (v == nullptr) return {};
  if (v->IsString()) return std::string(AsStringView(*v));
  if (v->IsInt64()) return std::to_string(v->GetInt64());
  return {};
}

// The custom argument `name` of a SendGrid event: SendGrid puts custom_args beside the event's own
// fields; a nested "custom_args" object is read too.
std::string CustomArg(const rapidjson::Value& event, std::string_view name) {
  std::string v = StringOf(event, name);
  if (!v.empty()) return v;
  const rapidjson::Value* args = FindMember(event, "custom_args");
  return args != nullptr && args->IsObject() ? StringOf(*args, name) : std::string();
}

std::string UnixSecondsToText(const rapidjson::Value* v) {
  if (v == nullptr || !v->IsInt64()) return {};
  std::int64_t seconds = v->GetInt64();
  if (seconds <= 0 || seconds > kMaxUnixMillis / 1000) return {};
  return FormatTimestamp(FromUnixMillis(seconds * 1000));
}

// The value of `name`, else of `old_name` (Twilio's older names: SmsSid, SmsStatus), else nullptr.
const std::string* Param(const FormParams& params, std::string_view name, std::string_view old_name = {}) {
  for (const auto& [k, v] : params)
    if (k == name) return &v;
  return old_name.empty() ? nullptr : Param(params, old_name);
}

std::string Upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool FormDecode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]);
      int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += c;
    }
  }
  return true;
}

}  // namespace

// ---- configuration ----

std::shared_ptr<EVP_PKEY> LoadSendGridKey(std::string_view base64_der, std::string& error) {
  std::string text(base64_der);
  // Tolerate a PEM block pasted whole.
  for (std::string_view marker : {"-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"}) {
    if (auto pos = text.find(marker); pos != std::string::npos) text.erase(pos, marker.size());
  }
  text.erase(std::remove_if(text.begin(), text.end(), [](unsigned char c) { return std::isspace(c); }),
             text.end());
  auto der = Base64Decode(text);
  if (!der || der->empty()) {
    error = "not base64";
    return nullptr;
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  EVP_PKEY* raw = d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size()));
  if (raw == nullptr) {
    error = "not a DER SubjectPublicKeyInfo";
    return nullptr;
  }
  std::shared_ptr<EVP_PKEY> key(raw, PkeyDeleter());
  if (EVP_PKEY_base_id(raw) != EVP_PKEY_EC || EVP_PKEY_get_bits(raw) != 256) {
    error = "not a P-256 (prime256v1) EC key";
    return nullptr;
  }
  return key;
}

ReceiptOptions ReceiptOptions::FromConfig(const Config& config) {
  ReceiptOptions o;
  o.topic = config.GetString("receipts.topic", o.topic);
  o.max_age = std::chrono::seconds(config.GetInt("receipts.max_age_seconds", o.max_age.count(), 1, 86400));
  o.max_events = static_cast<size_t>(
      config.GetInt("receipts.max_events", static_cast<std::int64_t>(o.max_events), 1, 100000));
  for (const auto& name : SectionNames(config, "receipts.sendgrid")) {
    std::string key = "receipts.sendgrid." + name + ".public_key";
    std::string value = config.GetString(key, "");
    if (value.empty()) throw ConfigError(fmt::format("{} is required", key));
    std::string error;
    auto pkey = LoadSendGridKey(value, error);
    if (!pkey) throw ConfigError(fmt::format("{}: {}", key, error));
    o.sendgrid.push_back({name, std::move(pkey)});
  }
  for (const auto& name : SectionNames(config, "receipts.twilio")) {
    std::string p = "receipts.twilio." + name + ".";
    TwilioAccount account{name, config.GetString(p + "auth_token", ""),
                          config.GetString(p + "public_url", "")};
    if (account.auth_token.empty()) throw ConfigError(fmt::format("{}auth_token is required", p));
    while (!account.public_url.empty() && account.public_url.back() == '/') account.public_url.pop_back();
    if (account.public_url.rfind("http://", 0) != 0 && account.public_url.rfind("https://", 0) != 0) {
      throw ConfigError(
          fmt::format("{}public_url is required: the scheme and host Twilio calls (https://pv.example.com), "
                      "which it signs",
                      p));
    }
    o.twilio.push_back(std::move(account));
  }
  return o;
}

// ---- encoding ----

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()), static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> count) & 0xFF);
    }
  }
  if (count >= 6) return std::nullopt;  // a lone trailing character carries no whole byte
  return out;
}

// ---- parsing ----

Parsed ParseSendGridEvents(std::string_view body, const ReceiptOptions& options) {
  // The receipt type of each SendGrid event but bounce.
  static const std::map<std::string, std::string, std::less<>> kSendGridTypes = {
      {"delivered", "delivered"},   {"dropped", "undelivered"},      {"deferred", "provider_deferred"},
      {"spamreport", "complained"}, {"unsubscribe", "unsubscribed"}, {"group_unsubscribe", "unsubscribed"}};
  Parsed out;
  auto fail = [&out](std::string error) {  // one bad event refuses the whole request
    out.error = std::move(error);
    out.receipts.clear();
    return std::move(out);
  };
  rapidjson::Document doc;
  if (std::string error = ParseLimited(doc, body, options.max_json_depth); !error.empty()) return fail(error);
  if (!doc.IsArray()) return fail("the body must be a JSON array of events");
  if (doc.Size() > options.max_events) {
    out.too_many = true;
    return fail(fmt::format("{} events; at most {} per request (receipts.max_events)", doc.Size(),
                            options.max_events));
  }
  for (rapidjson::SizeType i = 0; i < doc.Size(); ++i) {
    const rapidjson::Value& e = doc[i];
    if (!e.IsObject()) return fail(fmt::format("events[{}] is not an object", i));
    std::string event = StringOf(e, "event");
    Receipt r;
    if (event == "bounce") {
      // "blocked" is SendGrid's soft bounce (the receiving server refused this time); "bounce" is hard.
      r.type = StringOf(e, "type") == "blocked" ? "undelivered" : "bounced";
      r.error_code = StringOf(e, "status");
    } else if (auto type = kSendGridTypes.find(event); type != kSendGridTypes.end()) {
      r.type = type->second;
    } else {
      ++out.ignored;  // processed, open, click, group_resubscribe, and what SendGrid adds later
      continue;
    }
    r.provider_type = "sendgrid";
    r.address = StringOf(e, "email");
    r.reason = StringOf(e, "reason");
    if (r.reason.empty()) r.reason = StringOf(e, "response");
    if (r.reason.size() > 1024) r.reason.resize(1024);
    r.message_id = StringOf(e, "sg_message_id");
    r.send_id = CustomArg(e, "send_id");
    r.trigger_id = CustomArg(e, "trigger_id");
    r.campaign_id = CustomArg(e, "campaign_id");
    r.occurred_at = UnixSecondsToText(FindMember(e, "timestamp"));
    std::string event_id = StringOf(e, "sg_event_id");
    // Without SendGrid's event id, the event itself names the receipt: a repeat has the same one.
    r.receipt_id = "sendgrid:" + (event_id.empty() ? Sha256Hex(ToJson(e)) : event_id);
    if (r.address.empty() && r.send_id.empty()) {
      return fail(fmt::format("events[{}] ({}) has neither email nor send_id", i, event));
    }
    out.receipts.push_back(std::move(r));
  }
  return out;
}

bool ParseForm(std::string_view body, size_t max_params, FormParams& out, std::string& error) {
  out.clear();
  while (!body.empty()) {
    size_t amp = body.find('&');
    std::string_view pair = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (pair.empty()) continue;
    if (out.size() >= max_params) {
      error = fmt::format("more than {} form fields", max_params);
      return false;
    }
    size_t eq = pair.find('=');
    std::string name;
    std::string value;
    if (!FormDecode(pair.substr(0, eq), name) ||
        !FormDecode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), value)) {
      error = "malformed percent-encoding in the form";
      return false;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return true;
}

Parsed ParseTwilioStatus(const FormParams& params) {
  Parsed out;
  const std::string* sid = Param(params, "MessageSid", "SmsSid");
  const std::string* status = Param(params, "MessageStatus", "SmsStatus");
  if (sid == nullptr || sid->empty() || status == nullptr || status->empty()) {
    out.error = "MessageSid and MessageStatus are required";
    return out;
  }
  const std::string* error_code = Param(params, "ErrorCode");
  Receipt r;
  if (*status == "delivered") {
    r.type = "delivered";
  } else if (*status == "undelivered" || *status == "failed") {
    // 30005: unknown or inactive number; 30006: a landline or an unreachable carrier. Both will
    // never take an SMS: a hard bounce. Every other code may pass next time.
    bool hard = error_code != nullptr && (*error_code == "30005" || *error_code == "30006");
    r.type = hard ? "bounced" : "undelivered";
  } else {
    ++out.ignored;  // queued, sending, sent, accepted, scheduled, read, canceled, ...
    return out;
  }
  r.provider_type = "twilio";
  r.message_id = *sid;
  r.receipt_id = "twilio:" + *sid + ":" + *status;
  if (const std::string* to = Param(params, "To")) r.address = *to;
  if (error_code != nullptr) r.error_code = *error_code;
  r.reason = *status;
  out.receipts.push_back(std::move(r));
  return out;
}

Parsed ParseTwilioInbound(const FormParams& params) {
  Parsed out;
  const std::string* sid = Param(params, "MessageSid", "SmsSid");
  const std::string* from = Param(params, "From");
  const std::string* body = Param(params, "Body");
  if (sid == nullptr || sid->empty() || from == nullptr || from->empty() || body == nullptr) {
    out.error = "MessageSid, From and Body are required";
    return out;
  }
  // Twilio's default opt-out and opt-in keywords: the whole message, any case.
  static const std::vector<std::string> kStop = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL",
                                                 "END",  "QUIT",    "OPTOUT",      "REVOKE"};
  static const std::vector<std::string> kStart = {"START", "UNSTOP", "YES"};
  std::string keyword = Upper(Trim(*body));
  Receipt r;
  if (std::find(kStop.begin(), kStop.end(), keyword) != kStop.end()) {
    r.type = "stop";
  } else if (std::find(kStart.begin(), kStart.end(), keyword) != kStart.end()) {
    r.type = "start";
  } else {
    ++out.ignored;  // any other reply: not ours to read
    return out;
  }
  r.provider_type = "twilio";
  r.message_id = *sid;
  r.receipt_id = "twilio:" + *sid;
  r.address = *from;
  r.reason = keyword;
  out.receipts.push_back(std::move(r));
  return out;
}

// ---- signatures ----

bool VerifySendGrid(EVP_PKEY* key, std::string_view timestamp, std::string_view body,
                    std::string_view signature) {
  auto der = Base64Decode(signature);
  if (!der || der->empty()) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr) return false;
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerifyUpdate(ctx, timestamp.data(), timestamp.size()) == 1 &&
            EVP_DigestVerifyUpdate(ctx, body.data(), body.size()) == 1 &&
            EVP_DigestVerifyFinal(ctx, reinterpret_cast<const unsigned char*>(der->data()), der->size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

std::string TwilioSignature(std::string_view auth_token, std::string_view url, const FormParams& params) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(params.size());
  for (const auto& p : params) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->first < b->first; });
  std::string data(url);
  for (const auto* p : sorted) {
    data += p->first;
    data += p->second;
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha1(), auth_token.data(), static_cast<int>(auth_token.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len) == nullptr) {
    return {};
  }
  return Base64Encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

// ---- the endpoints ----

// The records of one request on their way to the broker; the last report answers (as the trigger
// API's Publication does: 2xx only when every record was acknowledged).
class ReceiptEndpoints::Publication final : public CountedPublication {
 public:
  Publication(ReceiptEndpoints& owner, Route route, int records, http::Response success,
              http::Responder responder)
      : CountedPublication(records),
        owner_(owner),
        route_(route),
        records_(records),
        success_(std::move(success)),
        responder_(std::move(responder)) {}

 private:
  void Finish(rd_kafka_resp_err_t first) override {
    if (first == RD_KAFKA_RESP_ERR_NO_ERROR) {
      owner_.CountReceipts(route_, "published", static_cast<size_t>(records_));
      owner_.CountRequest(route_, "published");
      responder_.Send(std::move(success_));
    } else {
      owner_.CountRequest(route_, "broker_failed");
      log::Warn("receipts_publish_failed",
                {{"route", RouteName(route_)}, {"records", records_}, {"error", rd_kafka_err2name(first)}});
      // The provider retries a failed webhook (SendGrid for 72 h, Twilio per its callback settings).
      responder_.Send(
          Unavailable("the message broker did not acknowledge in time; retry", owner_.retry_after_seconds_));
    }
  }

  ReceiptEndpoints& owner_;
  Route route_;
  int records_;
  http::Response success_;
  http::Responder responder_;
};

// A receipt request whose head passed: verifies the body's signature, parses, publishes.
class ReceiptEndpoints::BodyExchange final : public http::Exchange {
 public:
  BodyExchange(ReceiptEndpoints& owner, Route route, std::string signature, std::string timestamp,
               std::string target)
      : owner_(owner),
        route_(route),
        signature_(std::move(signature)),
        timestamp_(std::move(timestamp)),
        target_(std::move(target)) {}

  void OnBody(std::string body, http::Responder responder) override {
    const ReceiptOptions& o = owner_.options_;
    Parsed parsed;
    std::string provider;
    if (route_ == Route::kSendGrid) {
      for (const auto& account : o.sendgrid) {
        if (VerifySendGrid(account.key.get(), timestamp_, body, signature_)) {
          provider = account.name;
          break;
        }
      }
      if (provider.empty()) return Refuse(401, "unverified", "the signature does not verify", responder);
      parsed = ParseSendGridEvents(body, o);
    } else {
      FormParams params;
      std::string error;
      if (!ParseForm(body, o.max_params, params, error)) return Refuse(400, "invalid", error, responder);
      for (const auto& account : o.twilio) {
        std::string expected = TwilioSignature(account.auth_token, account.public_url + target_, params);
        if (!expected.empty() && ConstantTimeEquals(expected, signature_)) {
          provider = account.name;
          break;
        }
      }
      if (provider.empty()) return Refuse(401, "unverified", "X-Twilio-Signature does not verify", responder);
      parsed = route_ == Route::kTwilioStatus ? ParseTwilioStatus(params) : ParseTwilioInbound(params);
    }
    if (!parsed.error.empty()) {
      return Refuse(parsed.too_many ? 413 : 400, parsed.too_many ? "too_many_events" : "invalid",
                    parsed.error, responder);
    }
    if (parsed.ignored > 0) owner_.CountReceipts(route_, "ignored", parsed.ignored);
    http::Response success;
    success.status = 204;
    if (route_ == Route::kTwilioInbound) {
      // Twilio reads the answer as TwiML: an empty <Response> sends no reply to the user.
      success.status = 200;
      success.content_type = "text/xml";
      success.body = R"(<?xml version="1.0" encoding="UTF-8"?><Response></Response>)";
    }
    if (parsed.receipts.empty()) {
      owner_.CountRequest(route_, "nothing_to_publish");
      return responder.Send(std::move(success));
    }
    std::string received_at = FormatTimestamp(std::chrono::system_clock::now());
    std::vector<std::string> records;
    records.reserve(parsed.receipts.size());
    for (auto& r : parsed.receipts) {
      r.provider = provider;
      AppendReceipt(records.emplace_back(), r, received_at);
    }
    auto* publication = new Publication(  // NOLINT(cppcoreguidelines-owning-memory): freed by its last report
        owner_, route_, static_cast<int>(records.size()), std::move(success), std::move(responder));
    CountedPublication::ProduceAll(
        publication, records.size(), [&](size_t i, kafka::DeliveryHandler* handler) {
          return owner_.producer_.Produce(o.topic, parsed.receipts[i].receipt_id, records[i], {}, handler);
        });
  }

 private:
  void Refuse(int status, std::string_view result, std::string_view message, http::Responder& responder) {
    owner_.CountRequest(route_, result);
    log::Warn("receipt_refused", {{"route", RouteName(route_)}, {"status", status}, {"reason", message}});
    responder.Send(Error(status, message));
  }

  ReceiptEndpoints& owner_;
  Route route_;
  std::string signature_;
  std::string timestamp_;
  std::string target_;
};

ReceiptEndpoints::ReceiptEndpoints(ReceiptOptions options, kafka::Producer& producer,
                                   metrics::Registry& registry, int retry_after_seconds)
    : options_(std::move(options)), producer_(producer), retry_after_seconds_(retry_after_seconds) {
  requests_ = &registry.AddCounter("pv_ingest_receipt_requests_total",
                                   "Provider receipt requests by route and result (published, unverified, "
                                   "stale, invalid, ...)",
                                   {"route", "result"});
  receipts_ = &registry.AddCounter("pv_ingest_receipts_total",
                                   "Receipts in provider requests by route and result (published, ignored)",
                                   {"route", "result"});
}

ReceiptEndpoints::~ReceiptEndpoints() = default;

void ReceiptEndpoints::CountRequest(Route route, std::string_view result) {
  requests_->With({RouteName(route), std::string(result)}).Inc();
}

void ReceiptEndpoints::CountReceipts(Route route, std::string_view result, size_t n) {
  receipts_->With({RouteName(route), std::string(result)}).Inc(static_cast<double>(n));
}

bool ReceiptEndpoints::Matches(std::string_view target) {
  return target.substr(0, 15) == "/api/providers/";
}

std::variant<http::Response, std::unique_ptr<http::Exchange>> ReceiptEndpoints::OnHead(
    const http::RequestHead& head) {
  std::string_view target = head.target();
  std::string_view path = target.substr(0, target.find('?'));
  auto found = std::find(std::begin(kPaths), std::end(kPaths), path);
  auto route = static_cast<Route>(found - std::begin(kPaths));  // kCount: none
  bool configured = route == Route::kSendGrid ? !options_.sendgrid.empty() : !options_.twilio.empty();
  if (route == Route::kCount || !configured) {
    // An unconfigured provider's route does not exist: nothing could verify what it is sent.
    return Error(404, "no such endpoint");
  }
  auto refuse = [&](int status, std::string_view result, std::string_view message) {
    CountRequest(route, result);
    if (status == 401) log::Warn("receipt_refused", {{"route", RouteName(route)}, {"reason", message}});
    return Error(status, message);
  };
  if (head.method() != "POST") {
    http::Response r = refuse(405, "method", "method not allowed (use POST)");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  std::string_view expected_type =
      route == Route::kSendGrid ? "application/json" : "application/x-www-form-urlencoded";
  if (!EqualsIgnoreCase(MediaType(head.Header("Content-Type").value_or("")), expected_type)) {
    return refuse(415, "content_type", fmt::format("Content-Type must be {}", expected_type));
  }
  if (auto encoding = head.Header("Content-Encoding"); encoding && *encoding != "identity") {
    return refuse(415, "content_type", "Content-Encoding is not supported; send the body uncompressed");
  }
  if (!head.has_body()) return refuse(400, "invalid", "the request has no body");
  std::string signature;
  std::string timestamp;
  if (route == Route::kSendGrid) {
    auto sig = head.Header(kSignatureHeader);
    auto ts = head.Header(kTimestampHeader);
    if (!sig || sig->empty() || !ts || ts->empty()) {
      return refuse(401, "unverified", fmt::format("missing {} or {}", kSignatureHeader, kTimestampHeader));
    }
    std::int64_t seconds = 0;
    auto [end, ec] = std::from_chars(ts->data(), ts->data() + ts->size(), seconds);
    if (ec != std::errc() || end != ts->data() + ts->size()) {
      return refuse(401, "unverified", fmt::format("{} is not a Unix time", kTimestampHeader));
    }
    // Checked before the signature: a captured request replayed later is refused however valid.
    std::int64_t now = ToUnixMillis(std::chrono::system_clock::now()) / 1000;
    std::int64_t age = now - seconds;
    if (age > options_.max_age.count() || -age > options_.max_age.count()) {
      return refuse(401, "stale",
                    fmt::format("{} is {} s from now; at most {} s is accepted", kTimestampHeader, age,
                                options_.max_age.count()));
    }
    signature.assign(*sig);
    timestamp.assign(*ts);
  } else {
    auto sig = head.Header("X-Twilio-Signature");
    if (!sig || sig->empty()) return refuse(401, "unverified", "missing X-Twilio-Signature");
    signature.assign(*sig);
  }
  return std::make_unique<BodyExchange>(*this, route, std::move(signature), std::move(timestamp),
                                        std::string(target));
}

}  // namespace pv::ingest::receipts
