// Why a delivery failed, and what the worker does about it.
//
// Providers map what they saw on the wire (an HTTP status, a provider error code, an SMTP reply, a
// libcurl error) to an ErrorKind. Everything else is decided here, in exhaustive switches without
// `default:`: a new kind is a compile error (-Wswitch -Werror) until someone decides its class.
//
//   transient      try again later (delay ladder, backoff, Retry-After honoured), fallback provider
//                  after repeated failures; dead after max_attempts. After an unknown outcome the
//                  send is pinned to that provider: a fallback could not recognise it as a repeat
//   configuration  our side is wrong (credentials, missing setting): same as transient, because the
//                  operator's fix makes the next attempt succeed, but logged as an error
//   permanent      this send can never succeed (bad recipient, rejected content): dead letter at once
#pragma once

#include <string_view>

namespace pv::workers {

enum class ErrorKind {
  kTimeout,             // no answer in time, and the request had not been sent whole
  kConnection,          // could not connect, connection reset, TLS handshake failed (request not sent whole)
  kUnknownOutcome,      // the whole request was sent, then no answer (timeout, connection lost, 504):
                        // the provider may have accepted it. Retried on the same provider only.
  kServerError,         // 5xx, SMTP 421
  kRateLimited,         // 429, provider quota
  kTemporaryRejection,  // SMTP 4xx (mailbox busy, greylisting)
  kInFlightElsewhere,   // another worker holds the send's claim in Redis
  kInvalidRecipient,    // address, number or device token malformed or refused
  kUnregistered,        // device token no longer valid (app uninstalled)
  kRejectedContent,     // provider refused the message (size, content policy)
  kBadRequest,          // any other 4xx the provider blames on the request
  kInvalidRecord,       // the send record itself lacks what delivery needs
  kBadCredentials,      // 401, SMTP 535, OAuth invalid_grant
  kForbidden,           // 403: the account may not do this
  kNotConfigured,       // unknown provider, missing setting or key file
  kBadSetting,          // the provider refused a setting of ours (APNs BadPriority, InvalidPushType)
};

enum class ErrorClass { kTransient, kPermanent, kConfiguration };

// What happens to a failed send (before max_attempts is considered).
enum class Disposition { kRetry, kDeadLetter };

ErrorClass ClassOf(ErrorKind kind);
Disposition DispositionOf(ErrorClass error_class);

// Short machine names, used as pv-error-code and in events and metrics: "timeout", "rate_limited".
std::string_view ErrorKindName(ErrorKind kind);
std::string_view ErrorClassName(ErrorClass error_class);

}  // namespace pv::workers
