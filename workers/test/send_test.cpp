#include "pv/workers/send.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "pv/json.hpp"

namespace pv::workers {
namespace {

constexpr const char* kEmail =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","project":"demo","campaign_id":"44","channel":"email",)"
    R"("provider":"smtp","fallback_provider":"log","attempt":2,"created_at":"2026-01-01T00:00:00Z",)"
    R"("to":{"email":"ana@example.com","external_id":"u-1"},)"
    R"("content":{"from":"a@b.co","subject":"Hi","text":"t","html":"<p>h</p>"}})";

TEST(SendTest, ParsesEveryField) {
  std::string error;
  auto s = ParseSend(kEmail, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->send_id, "s-1");
  EXPECT_EQ(s->trigger_id, "t-1");
  EXPECT_EQ(s->campaign_id, "44");
  EXPECT_EQ(s->provider, "smtp");
  EXPECT_EQ(s->fallback_provider, "log");
  EXPECT_EQ(s->attempt, 2);
  EXPECT_EQ(s->address, "ana@example.com");
  EXPECT_EQ(s->external_id, "u-1");
  EXPECT_EQ(s->key, "u-1");
  EXPECT_EQ(s->ContentString("subject"), "Hi");
  EXPECT_EQ(s->ContentString("missing"), "");
  EXPECT_EQ(s->value, kEmail);
}

TEST(SendTest, RejectsWhatCannotBeDelivered) {
  std::string error;
  EXPECT_FALSE(ParseSend("not json", "", Channel::kEmail, error));
  EXPECT_EQ(error, "value is not a JSON object");
  std::shared_ptr<Send> partial;
  EXPECT_FALSE(ParseSend(kEmail, "", Channel::kSms, error, &partial));  // an email on the sms topic
  EXPECT_NE(error.find("does not belong"), std::string::npos);
  ASSERT_TRUE(partial);  // still reportable with its ids
  EXPECT_EQ(partial->send_id, "s-1");
  EXPECT_FALSE(ParseSend(R"({"send_id":"x","provider":"p","channel":"text","to":{},"content":{}})", "",
                         Channel::kSms, error));
  EXPECT_EQ(error, "to.phone missing");
  EXPECT_FALSE(ParseSend(R"({"provider":"p"})", "", Channel::kSms, error, &partial));
  EXPECT_EQ(error, "send_id missing");
}

TEST(SendTest, EventRecordHasTheDocumentedShape) {
  std::string error;
  auto s = ParseSend(kEmail, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s);
  EventFields f;
  f.status = "retrying";
  f.provider = "smtp";
  f.error_code = "timeout";
  f.error = "no \"answer\"";
  f.attempt = 2;
  std::string json = BuildEvent(*s, f, FromUnixMillis(1'800'000'000'000));
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_FALSE(d.HasParseError()) << json;
  EXPECT_EQ(d["v"].GetInt(), 1);
  EXPECT_STREQ(d["send_id"].GetString(), "s-1");
  EXPECT_STREQ(d["trigger_id"].GetString(), "t-1");
  EXPECT_STREQ(d["campaign_id"].GetString(), "44");
  EXPECT_STREQ(d["channel"].GetString(), "email");
  EXPECT_STREQ(d["status"].GetString(), "retrying");
  EXPECT_STREQ(d["provider"].GetString(), "smtp");
  EXPECT_STREQ(d["error_code"].GetString(), "timeout");
  EXPECT_STREQ(d["error"].GetString(), "no \"answer\"");
  EXPECT_EQ(d["attempt"].GetInt(), 2);
  EXPECT_STREQ(d["at"].GetString(), "2027-01-15T08:00:00.000Z");
  EXPECT_FALSE(d.HasMember("provider_message_id"));
}

// 1 MB of '[' on a send topic overflowed the worker's stack (and again after each restart).
TEST(SendTest, DeeplyNestedRecordIsRefusedNotParsed) {
  std::string error;
  EXPECT_FALSE(ParseSend(std::string(1 << 20, '['), "", Channel::kEmail, error));
  EXPECT_EQ(error, "value is not a JSON object");
}

}  // namespace
}  // namespace pv::workers
