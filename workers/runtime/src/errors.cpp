#include "pv/workers/errors.hpp"

#include <iterator>

namespace pv::workers {

ErrorClass ClassOf(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTimeout:
    case ErrorKind::kConnection:
    case ErrorKind::kUnknownOutcome:
    case ErrorKind::kServerError:
    case ErrorKind::kRateLimited:
    case ErrorKind::kTemporaryRejection:
    case ErrorKind::kInFlightElsewhere:
      return ErrorClass::kTransient;
    case ErrorKind::kInvalidRecipient:
    case ErrorKind::kUnregistered:
    case ErrorKind::kRejectedContent:
    case ErrorKind::kBadRequest:
    case ErrorKind::kInvalidRecord:
      return ErrorClass::kPermanent;
    case ErrorKind::kBadCredentials:
    case ErrorKind::kForbidden:
    case ErrorKind::kNotConfigured:
    case ErrorKind::kBadSetting:
      return ErrorClass::kConfiguration;
  }
  return ErrorClass::kTransient;  // unreachable: the switch is exhaustive
}

Disposition DispositionOf(ErrorClass error_class) {
  // Configuration: credentials get fixed and the retry then succeeds; a fallback provider may take
  // over meanwhile.
  return error_class == ErrorClass::kPermanent ? Disposition::kDeadLetter : Disposition::kRetry;
}

std::string_view ErrorKindName(ErrorKind kind) {
  static constexpr std::string_view kNames[] = {
      "timeout",         "connection",          "unknown_outcome",     "server_error",
      "rate_limited",    "temporary_rejection", "in_flight_elsewhere", "invalid_recipient",
      "unregistered",    "rejected_content",    "bad_request",         "invalid_record",
      "bad_credentials", "forbidden",           "not_configured",      "bad_setting"};  // by ErrorKind
  static_assert(std::size(kNames) == static_cast<std::size_t>(ErrorKind::kBadSetting) + 1);
  return kNames[static_cast<std::size_t>(kind)];
}

std::string_view ErrorClassName(ErrorClass error_class) {
  static constexpr std::string_view kNames[] = {"transient", "permanent", "configuration"};  // by ErrorClass
  return kNames[static_cast<std::size_t>(error_class)];
}

}  // namespace pv::workers
