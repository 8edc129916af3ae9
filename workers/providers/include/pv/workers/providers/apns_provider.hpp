// The `apns` provider: Apple Push Notification service over HTTP/2 (POST /3/device/{token}) with
// token-based authentication: a JWT signed ES256 with the team's .p8 key, reused for `token_ttl`
// (Apple wants a new one at most every 20 and at least every 60 minutes).
//
// What Apple promises, and what it does not: `apns-id` (the send_id when it is a UUID) is only an id
// that Apple echoes in its answer; APNs does not deduplicate by it, so a request repeated after an
// unknown outcome is delivered twice. `apns-collapse-id` (derived from the send_id) makes the device
// show the second copy in place of the first instead of beside it; a background push carries no
// notification to replace, so a repeat wakes the app twice.
#pragma once

#include <chrono>
#include <functional>
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

// Apple's limits, checked at load so a wrong setting stops the worker instead of dead-lettering
// every send: push type `alert` or `background` (the two payloads this provider builds), priority
// 10, 5 or 1 (`background`: 5 only), token TTL within [20 min, 60 min].
inline constexpr std::chrono::minutes kApnsMinTokenTtl{20};
inline constexpr std::chrono::minutes kApnsMaxTokenTtl{60};
// Apple refuses a provider token re-signed sooner than this after the previous one
// (TooManyProviderTokenUpdates), so a rejected token is replaced at most this often.
inline constexpr std::chrono::minutes kApnsMinResignInterval{20};
inline constexpr std::size_t kApnsMaxCollapseIdBytes = 64;

ApnsSettings LoadApnsSettings(const Config& config, const std::string& name);  // throws ConfigError
// Throws ConfigError naming providers.<name>.<field> when a setting breaks one of Apple's rules.
void ValidateApnsSettings(const ApnsSettings& settings, const std::string& name);

// The JSON payload: `aps.alert` with title and body, sound, badge, custom data beside `aps`; for a
// background push `aps` holds `content-available: 1` and nothing else (Apple drops or throttles
// background pushes that also alert, sound or badge).
std::string ApnsBody(const Send& send, bool background = false);
// The send_id when it fits Apple's 64 bytes, else its SHA-256 in hex (64 characters): the same send
// always gets the same collapse id, so a repeat replaces the notification shown.
std::string ApnsCollapseId(std::string_view send_id);
DeliveryResult ApnsResult(const TransferResult& result);

class ApnsProvider final : public Provider {
 public:
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  // Throws KeyError for a bad key. `now` is the clock of token signing (a seam for tests).
  ApnsProvider(ApnsSettings settings, CurlLoop& loop, Now now = &Clock::now);
  const std::string& name() const override { return settings_.common.name; }
  std::string_view type() const override { return "apns"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;

 private:
  std::string Token();
  void Rejected(const std::string& token);

  ApnsSettings settings_;
  CurlLoop& loop_;
  Now now_;
  PrivateKey key_;
  std::mutex mutex_;
  std::string token_;
  Clock::time_point token_made_{};
  bool token_rejected_ = false;  // Apple answered Invalid/ExpiredProviderToken for token_
};

}  // namespace pv::workers::providers
