// The seam between the worker runtime and a delivery service (SMTP server, SendGrid, Twilio, FCM,
// APNs, the log file). The runtime owns claims, retries, dead letters and outcome records; a
// provider only delivers one send and says how it went.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "pv/records.hpp"
#include "pv/workers/errors.hpp"

namespace pv::workers {

struct DeliveryResult {
  bool ok = false;
  std::string provider_message_id;                       // on success, when the provider gives one
  ErrorKind kind = ErrorKind::kServerError;              // on failure
  std::string error;                                     // on failure: what the provider said, for humans
  std::optional<std::chrono::milliseconds> retry_after;  // the provider's Retry-After, if any

  static DeliveryResult Sent(std::string message_id) {
    DeliveryResult r;
    r.ok = true;
    r.provider_message_id = std::move(message_id);
    return r;
  }
  static DeliveryResult Failed(ErrorKind kind, std::string error,
                               std::optional<std::chrono::milliseconds> retry_after = std::nullopt) {
    DeliveryResult r;
    r.kind = kind;
    r.error = std::move(error);
    r.retry_after = retry_after;
    return r;
  }
};

class Provider {
 public:
  using Done = std::function<void(DeliveryResult)>;

  virtual ~Provider() = default;

  // The name campaigns use ("smtp-main") and the kind of service ("smtp").
  virtual const std::string& name() const = 0;
  virtual std::string_view type() const = 0;

  // Starts delivering `send`. `done` is called exactly once, possibly before Deliver returns and
  // possibly on another thread (the HTTP event loop); it must not block. The send outlives the call.
  virtual void Deliver(const std::shared_ptr<const Send>& send, Done done) = 0;

  // True when the provider's receipts name its own message id, not our send_id (Twilio's status
  // callbacks: MessageSid): the worker then records message id → send when it is accepted
  // (pv/sent_message.hpp), for the dispatcher's feedback pipeline.
  virtual bool RecordsMessageIds() const { return false; }

  // Units this send takes from the provider's rate limits: 1, or the segments of an SMS.
  virtual int Cost(const Send& /*send*/) const { return 1; }
};

}  // namespace pv::workers
