// The `apns` provider: Apple Push Notification service over HTTP/2 (POST /3/device/{token}) with
// token-based authentication: a JWT signed ES256 with the team's .p8 key, reused for 50 minutes
// (Apple refuses tokens older than an hour and too-frequent new ones). apns-id is the send_id (a
// UUID), so Apple's answers and our events name the same notification.
#pragma once

#include <chrono>
#include <mutex>

#include "pv/workers/curl_loop.hpp"
#include "pv/workers/provider.hpp"
#include "pv/workers/providers/http.hpp"
#include "pv/workers/providers/jwt.hpp"

namespace pv::workers::providers {

struct ApnsSettings {
  CommonSettings common;  // base_url default https://api.push.apple.com (sandbox: api.sandbox.push.apple.com)
  std::string team_id;
  std::string key_id;
  std::string key_pem;  // from key_file or key_pem
  std::string topic;    // the app's bundle id
  std::string push_type = "alert";
  int priority = 10;
  std::chrono::milliseconds token_ttl{std::chrono::minutes(50)};
};

ApnsSettings LoadApnsSettings(const Config& config, const std::string& name);
std::string ApnsBody(const Send& send);
DeliveryResult ApnsResult(const TransferResult& result);

class ApnsProvider final : public Provider {
 public:
  ApnsProvider(ApnsSettings settings, CurlLoop& loop);  // throws KeyError for a bad key
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "apns"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;

 private:
  using Clock = std::chrono::steady_clock;
  std::string Token();
  void Invalidate(const std::string& token);

  ApnsSettings settings_;
  CurlLoop& loop_;
  PrivateKey key_;
  std::mutex mutex_;
  std::string token_;
  Clock::time_point token_made_{};
};

}  // namespace pv::workers::providers
