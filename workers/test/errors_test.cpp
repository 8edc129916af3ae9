#include "pv/workers/errors.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace pv::workers {
namespace {

constexpr ErrorKind kAll[] = {
    ErrorKind::kTimeout,          ErrorKind::kConnection,         ErrorKind::kServerError,
    ErrorKind::kRateLimited,      ErrorKind::kTemporaryRejection, ErrorKind::kInFlightElsewhere,
    ErrorKind::kInvalidRecipient, ErrorKind::kUnregistered,       ErrorKind::kRejectedContent,
    ErrorKind::kBadRequest,       ErrorKind::kInvalidRecord,      ErrorKind::kBadCredentials,
    ErrorKind::kForbidden,        ErrorKind::kNotConfigured,      ErrorKind::kBadSetting};

TEST(ErrorsTest, EveryKindHasADistinctName) {
  std::set<std::string> names;
  for (ErrorKind k : kAll) {
    std::string name(ErrorKindName(k));
    EXPECT_NE(name, "unknown");
    EXPECT_TRUE(names.insert(name).second) << name;
  }
}

TEST(ErrorsTest, ClassesAndWhatTheWorkerDoes) {
  EXPECT_EQ(ClassOf(ErrorKind::kTimeout), ErrorClass::kTransient);
  EXPECT_EQ(ClassOf(ErrorKind::kRateLimited), ErrorClass::kTransient);
  EXPECT_EQ(ClassOf(ErrorKind::kInFlightElsewhere), ErrorClass::kTransient);
  EXPECT_EQ(ClassOf(ErrorKind::kInvalidRecipient), ErrorClass::kPermanent);
  EXPECT_EQ(ClassOf(ErrorKind::kUnregistered), ErrorClass::kPermanent);
  EXPECT_EQ(ClassOf(ErrorKind::kInvalidRecord), ErrorClass::kPermanent);
  EXPECT_EQ(ClassOf(ErrorKind::kBadCredentials), ErrorClass::kConfiguration);
  EXPECT_EQ(ClassOf(ErrorKind::kNotConfigured), ErrorClass::kConfiguration);
  // A setting the provider refuses (APNs BadPriority) is fixed by the operator, not by the send.
  EXPECT_EQ(ClassOf(ErrorKind::kBadSetting), ErrorClass::kConfiguration);
  EXPECT_EQ(DispositionOf(ErrorClass::kTransient), Disposition::kRetry);
  EXPECT_EQ(DispositionOf(ErrorClass::kConfiguration), Disposition::kRetry);
  EXPECT_EQ(DispositionOf(ErrorClass::kPermanent), Disposition::kDeadLetter);
  EXPECT_EQ(ErrorClassName(ErrorClass::kConfiguration), "configuration");
}

}  // namespace
}  // namespace pv::workers
