#include "pv/workers/errors.hpp"

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
  switch (error_class) {
    case ErrorClass::kTransient:
      return Disposition::kRetry;
    case ErrorClass::kConfiguration:
      // Credentials get fixed and the retry then succeeds; a fallback provider may take over meanwhile.
      return Disposition::kRetry;
    case ErrorClass::kPermanent:
      return Disposition::kDeadLetter;
  }
  return Disposition::kRetry;
}

std::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kConnection:
      return "connection";
    case ErrorKind::kUnknownOutcome:
      return "unknown_outcome";
    case ErrorKind::kServerError:
      return "server_error";
    case ErrorKind::kRateLimited:
      return "rate_limited";
    case ErrorKind::kTemporaryRejection:
      return "temporary_rejection";
    case ErrorKind::kInFlightElsewhere:
      return "in_flight_elsewhere";
    case ErrorKind::kInvalidRecipient:
      return "invalid_recipient";
    case ErrorKind::kUnregistered:
      return "unregistered";
    case ErrorKind::kRejectedContent:
      return "rejected_content";
    case ErrorKind::kBadRequest:
      return "bad_request";
    case ErrorKind::kInvalidRecord:
      return "invalid_record";
    case ErrorKind::kBadCredentials:
      return "bad_credentials";
    case ErrorKind::kForbidden:
      return "forbidden";
    case ErrorKind::kNotConfigured:
      return "not_configured";
    case ErrorKind::kBadSetting:
      return "bad_setting";
  }
  return "unknown";
}

std::string_view ErrorClassName(ErrorClass error_class) {
  switch (error_class) {
    case ErrorClass::kTransient:
      return "transient";
    case ErrorClass::kPermanent:
      return "permanent";
    case ErrorClass::kConfiguration:
      return "configuration";
  }
  return "unknown";
}

}  // namespace pv::workers
