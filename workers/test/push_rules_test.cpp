// What the push providers promise and check without a server: Apple's setting rules at load, the
// payload of a background push, collapse ids (a repeated push replaces instead of stacking), the
// class of the answers that blame our settings, and when FCM's OAuth token is dropped.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "pv/config.hpp"
#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"

namespace pv::workers::providers {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPush =
    R"({"v":1,"send_id":"0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6","trigger_id":"t-1","project":"demo",)"
    R"("campaign_id":"46","channel":"push","provider":"apple","attempt":1,"created_at":"2026-01-01T00:00:00Z",)"
    R"("to":{"device_token":"a1b2c3d4","external_id":"u-1"},)"
    R"("content":{"title":"Still thinking?","body":"Your cart misses you","sound":"default","badge":2,)"
    R"("data":{"screen":"cart"}}})";

std::shared_ptr<const Send> Push(const char* value = kPush) {
  std::string error;
  auto send = ParseSend(value, "u-1", Channel::kPush, error);
  if (!send) throw std::runtime_error(error);
  return send;
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

std::string LoadError(const std::string& settings) {
  Config config = Config::FromYaml(
      "providers:\n  apple: {key_pem: k, key_id: K, team_id: T, topic: com.demo, " + settings + "}\n");
  try {
    LoadApnsSettings(config, "apple");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ApnsSettingsTest, ApplesRulesAreCheckedAtLoad) {
  EXPECT_EQ(LoadError("push_type: alert"), "");
  EXPECT_EQ(LoadError("push_type: alert, priority: 5"), "");
  EXPECT_EQ(LoadError("push_type: background, priority: 5"), "");
  EXPECT_EQ(LoadError("token_ttl_ms: 1200000"), "");  // 20 min
  EXPECT_EQ(LoadError("token_ttl_ms: 3600000"), "");  // 60 min

  // Background with the default priority 10: Apple's BadPriority on every send.
  EXPECT_THAT(LoadError("push_type: background"),
              HasSubstr("providers.apple.priority: 10 with push_type background"));
  EXPECT_THAT(LoadError("push_type: background, priority: 1"), HasSubstr("only 5"));
  EXPECT_THAT(LoadError("priority: 7"), HasSubstr("providers.apple.priority: 7; Apple accepts 10"));
  EXPECT_THAT(LoadError("push_type: voip"), HasSubstr("providers.apple.push_type: 'voip' is not supported"));
  EXPECT_THAT(LoadError("push_type: Alert"), HasSubstr("push_type"));
  EXPECT_THAT(LoadError("token_ttl_ms: 600000"),
              HasSubstr("providers.apple.token_ttl_ms: 600000 ms is outside"));
  EXPECT_THAT(LoadError("token_ttl_ms: 3600001"), HasSubstr("outside Apple's 20-60 minutes"));
}

TEST(ApnsPayloadTest, BackgroundPushCarriesContentAvailableOnly) {
  auto send = Push();
  auto alert = Json(ApnsBody(*send));
  EXPECT_STREQ(alert["aps"]["alert"]["title"].GetString(), "Still thinking?");
  EXPECT_FALSE(alert["aps"].HasMember("content-available"));

  auto background = Json(ApnsBody(*send, /*background=*/true));
  const auto& aps = background["aps"];
  ASSERT_TRUE(aps.IsObject());
  EXPECT_EQ(aps.MemberCount(), 1U);  // no alert, sound or badge
  EXPECT_EQ(aps["content-available"].GetInt(), 1);
  EXPECT_STREQ(background["screen"].GetString(), "cart");  // the app's data still travels
}

TEST(ApnsPayloadTest, CollapseIdIsTheSendIdWithinApplesSixtyFourBytes) {
  EXPECT_EQ(ApnsCollapseId("0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6"), "0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6");
  std::string exactly(kApnsMaxCollapseIdBytes, 'a');
  EXPECT_EQ(ApnsCollapseId(exactly), exactly);
  std::string longer(kApnsMaxCollapseIdBytes + 1, 'a');
  std::string id = ApnsCollapseId(longer);
  EXPECT_EQ(id.size(), kApnsMaxCollapseIdBytes);
  EXPECT_EQ(ApnsCollapseId(longer), id);  // the same send always collapses onto itself
  EXPECT_NE(ApnsCollapseId(longer + "b"), id);
}

TEST(FcmPayloadTest, RepeatsReplaceOnAndroidAndIos) {
  auto send = Push();
  auto body = Json(FcmBody(*send));
  const auto& msg = body["message"];
  EXPECT_FALSE(msg["android"].HasMember("collapse_key"));  // four per offline device at most: see FcmBody
  EXPECT_STREQ(msg["android"]["notification"]["tag"].GetString(), "0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6");
  EXPECT_STREQ(msg["android"]["notification"]["sound"].GetString(), "default");
  EXPECT_STREQ(msg["apns"]["headers"]["apns-collapse-id"].GetString(),
               "0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6");
  EXPECT_EQ(msg["apns"]["payload"]["aps"]["badge"].GetInt(), 2);

  // Without sound or badge: no payload section, the collapse headers all the same.
  auto plain = Push(
      R"({"v":1,"send_id":"s-2","trigger_id":"t-1","project":"demo","campaign_id":"46","channel":"push",)"
      R"("provider":"fcm","attempt":1,"to":{"device_token":"a1","external_id":"u-1"},"content":{"title":"t"}})");
  auto b2 = Json(FcmBody(*plain));
  EXPECT_FALSE(b2["message"]["apns"].HasMember("payload"));
  EXPECT_STREQ(b2["message"]["apns"]["headers"]["apns-collapse-id"].GetString(), "s-2");
  EXPECT_STREQ(b2["message"]["android"]["notification"]["tag"].GetString(), "s-2");
}

TransferResult Http(long status, std::string body) {
  TransferResult r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

TEST(PushAnswersTest, AnswersThatBlameOurSettingsAreConfigurationErrors) {
  for (const char* reason : {"BadPriority", "InvalidPushType", "BadCollapseId"}) {
    DeliveryResult r = ApnsResult(Http(400, std::string(R"({"reason":")") + reason + R"("})"));
    EXPECT_EQ(r.kind, ErrorKind::kBadSetting) << reason;
    EXPECT_EQ(ClassOf(r.kind), ErrorClass::kConfiguration) << reason;
    EXPECT_EQ(DispositionOf(ClassOf(r.kind)), Disposition::kRetry) << reason;  // not dead-lettered
  }
  EXPECT_EQ(ApnsResult(Http(400, R"({"reason":"BadDeviceToken"})")).kind, ErrorKind::kUnregistered);
  EXPECT_EQ(ApnsResult(Http(413, R"({"reason":"PayloadTooLarge"})")).kind, ErrorKind::kRejectedContent);
}

TEST(PushAnswersTest, FcmKeepsItsTokenOnThirdPartyAuthErrors) {
  auto error = [](int status, const char* code, const char* st) {
    return Http(status, std::string(R"({"error":{"code":)") + std::to_string(status) + R"(,"status":")" + st +
                            R"(","details":[{"@type":"t","errorCode":")" + code + R"("}]}})");
  };
  // The APNs credentials stored in Firebase are wrong: configuration, and our token is fine.
  TransferResult third_party = error(401, "THIRD_PARTY_AUTH_ERROR", "UNAUTHENTICATED");
  EXPECT_EQ(FcmErrorCode(third_party), "THIRD_PARTY_AUTH_ERROR");
  EXPECT_FALSE(FcmTokenRejected(third_party));
  EXPECT_EQ(FcmResult(third_party).kind, ErrorKind::kBadCredentials);
  // Our OAuth token is refused: drop it.
  EXPECT_TRUE(FcmTokenRejected(Http(401, R"({"error":{"code":401,"status":"UNAUTHENTICATED"}})")));
  EXPECT_TRUE(FcmTokenRejected(Http(401, "not json")));
  EXPECT_FALSE(FcmTokenRejected(error(404, "UNREGISTERED", "NOT_FOUND")));
}

}  // namespace
}  // namespace pv::workers::providers
