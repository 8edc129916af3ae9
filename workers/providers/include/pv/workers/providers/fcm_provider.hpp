// The `fcm` provider: Firebase Cloud Messaging HTTP v1 (POST /v1/projects/{project}/messages:send
// with an OAuth2 bearer token). The token comes from Google's service-account flow: a JWT signed
// RS256 with the service account's private key, exchanged at the token endpoint; it is cached until
// a minute before it expires, and sends that arrive while it is being fetched wait for it.
#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/providers/http.hpp"
#include "pv/workers/providers/jwt.hpp"

namespace pv::workers::providers {

struct FcmSettings {
  CommonSettings common;   // base_url default https://fcm.googleapis.com
  std::string project_id;  // default: the service account's
  std::string client_email;
  std::string private_key_id;
  std::string private_key_pem;
  std::string token_url;  // default: the service account's token_uri, else Google's
  std::string scope = "https://www.googleapis.com/auth/firebase.messaging";
};

// Reads providers.<name>.credentials_file (a service-account JSON key) or credentials_json (its
// content, e.g. from the environment), project_id, token_url. Throws ConfigError.
FcmSettings LoadFcmSettings(const Config& config, const std::string& name);
// Fills the key fields from a service-account JSON document. Throws ConfigError.
void ApplyServiceAccount(FcmSettings& settings, const std::string& json, const std::string& source);

// The v1 message. FCM documents no idempotency key for messages:send: a repeated request is a second
// message. android.notification.tag and apns.headers.apns-collapse-id (both from the send_id) make a
// repeat replace the first copy on the device instead of stacking beside it.
std::string FcmBody(const Send& send);
DeliveryResult FcmResult(const TransferResult& result);
// The FCM error code of an answer (details[].errorCode, else error.status); empty when none.
std::string FcmErrorCode(const TransferResult& result);
// Whether an answer says our OAuth2 token is no good (so it is dropped and fetched again): a 401,
// except THIRD_PARTY_AUTH_ERROR, which is about the APNs credentials stored in Firebase.
bool FcmTokenRejected(const TransferResult& result);

class FcmProvider final : public Provider {
 public:
  FcmProvider(FcmSettings settings, CurlLoop& loop);  // throws KeyError for a bad key
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "fcm"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;

 private:
  using Clock = std::chrono::steady_clock;
  struct Waiting {
    std::shared_ptr<const Send> send;
    Done done;
  };
  void FetchToken();
  void OnToken(TransferResult&& result);
  void SendWith(const std::shared_ptr<const Send>& send, const std::string& token, Done done);

  FcmSettings settings_;
  CurlLoop& loop_;
  PrivateKey key_;
  std::string send_url_;
  std::mutex mutex_;
  std::string token_;
  Clock::time_point token_expires_{};
  bool fetching_ = false;
  std::vector<Waiting> waiting_;
};

}  // namespace pv::workers::providers
