// How each provider reads an answer, from synthetic transfer results: the mapping tables of
// status codes and provider error codes to error kinds, without a server.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"
#include "pv/workers/providers/http.hpp"
#include "pv/workers/providers/sendgrid_provider.hpp"
#include "pv/workers/providers/smtp_provider.hpp"
#include "pv/workers/providers/twilio_provider.hpp"

namespace pv::workers::providers {
namespace {

using namespace std::chrono_literals;

TransferResult Http(long status, std::string body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
  TransferResult r;
  r.status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  return r;
}

TransferResult Curl(int code, long status = 0) {
  TransferResult r;
  r.curl_code = code;
  r.status = status;
  r.error = "curl says no";
  return r;
}

TEST(HttpTest, RetryAfter) {
  EXPECT_EQ(ParseRetryAfter("120")->count(), 120000);
  EXPECT_EQ(ParseRetryAfter(" 0 ")->count(), 0);
  auto now = std::chrono::system_clock::from_time_t(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:28:30 GMT", now)->count(), 30000);
  EXPECT_EQ(ParseRetryAfter("Wed, 21 Oct 2015 07:27:00 GMT", now)->count(), 0);
  EXPECT_FALSE(ParseRetryAfter("soon").has_value());
  EXPECT_FALSE(ParseRetryAfter("").has_value());
}

// provider_answer_fuzz: a Retry-After of 9 digits (up to 31 years) or any far date parked the send
// for that long, and a date past 2262 overflowed system_clock. A day at most, as for 10+ digits.
TEST(HttpTest, RetryAfterIsADayAtMost) {
  auto now = std::chrono::system_clock::from_time_t(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(*ParseRetryAfter("999999999", now), std::chrono::hours(24));
  EXPECT_EQ(*ParseRetryAfter("86399", now), std::chrono::seconds(86399));
  EXPECT_EQ(*ParseRetryAfter("Wed, 28 Oct 2015 07:28:00 GMT", now), std::chrono::hours(24));
  // Past 2262 (system_clock's end): capped, never converted.
  ASSERT_TRUE(ParseRetryAfter("Wed, 21 Oct 9999 07:28:00 GMT", now).has_value());
  EXPECT_EQ(*ParseRetryAfter("Wed, 21 Oct 9999 07:28:00 GMT", now), std::chrono::hours(24));
  // A five-digit year is not an IMF-fixdate (glibc's %Y reads four digits): no Retry-After at all.
  // (This line dereferenced the empty optional before, and passed or failed by luck: TSan's build.)
  EXPECT_FALSE(ParseRetryAfter("Wed, 21 Oct 99999 07:28:00 GMT", now).has_value());
  EXPECT_EQ(*ParseRetryAfter("Thu, 22 Oct 2015 07:27:59 GMT", now), std::chrono::seconds(86399));
}

// provider_answer_fuzz: the provider's reason went whole into the error (events, DLQ header).
TEST(HttpTest, FailureMessageIsBoundedWhateverTheProviderSays) {
  TransferResult r;
  r.status = 403;
  r.body = R"({"reason":")" + std::string(60000, 'x') + R"("})";
  EXPECT_LT(ApnsResult(r).error.size(), 512U);
  EXPECT_LT(HttpFailure(r, ErrorKind::kForbidden, std::string(60000, 'y')).error.size(), 512U);
}

TEST(HttpTest, Encodings) {
  EXPECT_EQ(FormEncode("+34 600/ü&="), "%2B34+600%2F%C3%BC%26%3D");
  EXPECT_EQ(Base64("hello"), "aGVsbG8=");
  EXPECT_EQ(Base64Url("\xfb\xff"), "-_8");
  EXPECT_EQ(TrimSlash("http://x/"), "http://x");
}

TEST(HttpTest, StatusKinds) {
  EXPECT_EQ(KindForHttpStatus(401), ErrorKind::kBadCredentials);
  EXPECT_EQ(KindForHttpStatus(403), ErrorKind::kForbidden);
  EXPECT_EQ(KindForHttpStatus(404), ErrorKind::kNotConfigured);
  EXPECT_EQ(KindForHttpStatus(408), ErrorKind::kTimeout);
  EXPECT_EQ(KindForHttpStatus(413), ErrorKind::kRejectedContent);
  EXPECT_EQ(KindForHttpStatus(422), ErrorKind::kBadRequest);
  EXPECT_EQ(KindForHttpStatus(429), ErrorKind::kRateLimited);
  EXPECT_EQ(KindForHttpStatus(502), ErrorKind::kServerError);
  EXPECT_EQ(TransportFailure(Curl(CURLE_OPERATION_TIMEDOUT)).kind, ErrorKind::kTimeout);
  EXPECT_EQ(TransportFailure(Curl(CURLE_COULDNT_CONNECT)).kind, ErrorKind::kConnection);
  EXPECT_EQ(TransportFailure(Curl(CURLE_PEER_FAILED_VERIFICATION)).kind, ErrorKind::kNotConfigured);
  EXPECT_EQ(TransportFailure(Curl(CURLE_BAD_FUNCTION_ARGUMENT)).kind, ErrorKind::kBadRequest);
  DeliveryResult r = HttpFailure(Http(429, "slow\ndown", {{"retry-after", "3"}}), ErrorKind::kRateLimited);
  EXPECT_EQ(r.error, "HTTP 429: slow down");
  EXPECT_EQ(r.retry_after->count(), 3000);
}

TEST(ProviderResultsTest, Smtp) {
  EXPECT_TRUE(SmtpResult(Curl(CURLE_OK, 250), "<id>").ok);
  EXPECT_EQ(SmtpResult(Curl(CURLE_OK, 250), "<id>").provider_message_id, "<id>");
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 550), "").kind, ErrorKind::kInvalidRecipient);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 553), "").kind, ErrorKind::kInvalidRecipient);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 552), "").kind, ErrorKind::kRejectedContent);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 554), "").kind, ErrorKind::kRejectedContent);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 500), "").kind, ErrorKind::kBadRequest);
  EXPECT_EQ(SmtpResult(Curl(CURLE_LOGIN_DENIED, 535), "").kind, ErrorKind::kBadCredentials);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 530), "").kind, ErrorKind::kBadCredentials);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 451), "").kind, ErrorKind::kTemporaryRejection);
  EXPECT_EQ(SmtpResult(Curl(CURLE_SEND_ERROR, 421), "").kind, ErrorKind::kServerError);
  EXPECT_EQ(SmtpResult(Curl(CURLE_USE_SSL_FAILED), "").kind, ErrorKind::kNotConfigured);
  EXPECT_EQ(SmtpResult(Curl(CURLE_COULDNT_CONNECT), "").kind, ErrorKind::kConnection);
  EXPECT_EQ(SmtpResult(Curl(CURLE_OPERATION_TIMEDOUT), "").kind, ErrorKind::kTimeout);
}

TEST(ProviderResultsTest, SendGrid) {
  DeliveryResult ok = SendGridResult(Http(202, "", {{"x-message-id", "abc"}}));
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.provider_message_id, "abc");
  EXPECT_EQ(SendGridResult(Http(400, R"({"errors":[{"field":"personalizations.0.to.0.email"}]})")).kind,
            ErrorKind::kInvalidRecipient);
  EXPECT_EQ(SendGridResult(Http(400, R"({"errors":[{"field":"subject"}]})")).kind, ErrorKind::kBadRequest);
  EXPECT_EQ(SendGridResult(Http(401)).kind, ErrorKind::kBadCredentials);
  EXPECT_EQ(SendGridResult(Http(503)).kind, ErrorKind::kServerError);
  EXPECT_EQ(SendGridResult(Curl(CURLE_COULDNT_CONNECT)).kind, ErrorKind::kConnection);
}

TEST(ProviderResultsTest, Twilio) {
  DeliveryResult ok = TwilioResult(Http(201, R"({"sid":"SM1","status":"queued"})"));
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.provider_message_id, "SM1");
  EXPECT_EQ(TwilioResult(Http(400, R"({"code":21610,"message":"unsubscribed"})")).kind,
            ErrorKind::kInvalidRecipient);
  EXPECT_EQ(TwilioResult(Http(400, R"({"code":21617,"message":"too long"})")).kind,
            ErrorKind::kRejectedContent);
  EXPECT_EQ(TwilioResult(Http(400, R"({"code":21999})")).kind, ErrorKind::kBadRequest);
  EXPECT_EQ(TwilioResult(Http(429, R"({"code":20429})")).kind, ErrorKind::kRateLimited);
  EXPECT_EQ(TwilioResult(Http(401, R"({"code":20003})")).kind, ErrorKind::kBadCredentials);
}

TEST(ProviderResultsTest, Fcm) {
  auto error = [](int status, const char* code) {
    return Http(status, std::string(R"({"error":{"code":)") + std::to_string(status) +
                            R"(,"status":"X","details":[{"@type":"t","errorCode":")" + code + R"("}]}})");
  };
  EXPECT_EQ(FcmResult(Http(200, R"({"name":"projects/p/messages/1"})")).provider_message_id,
            "projects/p/messages/1");
  EXPECT_EQ(FcmResult(error(404, "UNREGISTERED")).kind, ErrorKind::kUnregistered);
  EXPECT_EQ(FcmResult(error(403, "SENDER_ID_MISMATCH")).kind, ErrorKind::kInvalidRecipient);
  EXPECT_EQ(FcmResult(error(429, "QUOTA_EXCEEDED")).kind, ErrorKind::kRateLimited);
  EXPECT_EQ(FcmResult(error(503, "UNAVAILABLE")).kind, ErrorKind::kServerError);
  EXPECT_EQ(FcmResult(error(401, "THIRD_PARTY_AUTH_ERROR")).kind, ErrorKind::kBadCredentials);
  EXPECT_EQ(FcmResult(error(400, "INVALID_ARGUMENT")).kind, ErrorKind::kBadRequest);
  EXPECT_EQ(FcmResult(Http(401, "{}")).kind, ErrorKind::kBadCredentials);
}

TEST(ProviderResultsTest, Apns) {
  EXPECT_EQ(ApnsResult(Http(200, "", {{"apns-id", "ID"}})).provider_message_id, "ID");
  EXPECT_EQ(ApnsResult(Http(400, R"({"reason":"BadDeviceToken"})")).kind, ErrorKind::kUnregistered);
  EXPECT_EQ(ApnsResult(Http(400, R"({"reason":"BadTopic"})")).kind, ErrorKind::kNotConfigured);
  EXPECT_EQ(ApnsResult(Http(400, R"({"reason":"BadPriority"})")).kind, ErrorKind::kBadSetting);
  EXPECT_EQ(ApnsResult(Http(400, R"({"reason":"BadExpirationDate"})")).kind, ErrorKind::kBadRequest);
  EXPECT_EQ(ApnsResult(Http(403, R"({"reason":"ExpiredProviderToken"})")).kind, ErrorKind::kBadCredentials);
  EXPECT_EQ(ApnsResult(Http(410, R"({"reason":"Unregistered"})")).kind, ErrorKind::kUnregistered);
  EXPECT_EQ(ApnsResult(Http(413, R"({"reason":"PayloadTooLarge"})")).kind, ErrorKind::kRejectedContent);
  EXPECT_EQ(ApnsResult(Http(429, R"({"reason":"TooManyRequests"})")).kind, ErrorKind::kRateLimited);
  EXPECT_EQ(ApnsResult(Http(503, R"({"reason":"ServiceUnavailable"})")).kind, ErrorKind::kServerError);
}

}  // namespace
}  // namespace pv::workers::providers
