// Which trigger bodies are valid for which channel, and what the pv.triggers record carries.
#include "pv/ingest/trigger.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "pv/json.hpp"

namespace pv::ingest {
namespace {

struct Case {
  const char* name;
  Channel channel;
  std::string body;
  // Empty: valid. Else the expected paths of every error, in order.
  std::vector<std::string> error_paths;
};

std::vector<FieldError> Validate(Channel channel, const std::string& body) {
  rapidjson::Document doc;
  doc.Parse(body.c_str());
  EXPECT_FALSE(doc.HasParseError()) << body;
  std::vector<FieldError> errors;
  ValidateTrigger(doc, channel, "", errors);
  return errors;
}

class TriggerValidation : public ::testing::TestWithParam<Case> {};

TEST_P(TriggerValidation, ReportsExactlyTheExpectedPaths) {
  const Case& c = GetParam();
  auto errors = Validate(c.channel, c.body);
  std::vector<std::string> paths;
  for (const auto& e : errors) paths.push_back(e.path);
  EXPECT_EQ(paths, c.error_paths) << c.body;
  for (const auto& e : errors) EXPECT_FALSE(e.message.empty());
}

// The seed's three examples are valid; each rule of issue 2 has at least one failing row.
INSTANTIATE_TEST_SUITE_P(
    Bodies, TriggerValidation,
    ::testing::Values(
        Case{
            "seed_email",
            Channel::kEmail,
            R"({"user":{"external_id":"EXTERNAL_ID","email":"test@test.com","timezone":"America/Chicago","locale":"en"},"event":{"random_field":"value"}})",
            {}},
        Case{
            "seed_text",
            Channel::kSms,
            R"({"user":{"external_id":"EXTERNAL_ID","phone":"+12345678900","timezone":"America/Chicago","locale":"en"},"event":{"random_field":"value"}})",
            {}},
        Case{
            "seed_push",
            Channel::kPush,
            R"({"user":{"external_id":"EXTERNAL_ID","device_token":"DEVICE_TOKEN","timezone":"America/Chicago","locale":"en"},"event":{"random_field":"value"}})",
            {}},
        Case{"no_event", Channel::kEmail, R"({"user":{"external_id":"u","email":"a@b.co"}})", {}},
        Case{"null_optionals",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","timezone":null,"locale":null},"event":null})",
             {}},
        Case{"extra_user_fields_kept",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","first_name":"Ana","plan":{"tier":"pro"}}})",
             {}},
        Case{"locale_region",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","locale":"pt-BR"}})",
             {}},
        Case{"body_not_object", Channel::kEmail, R"([1,2])", {""}},
        Case{"missing_user", Channel::kEmail, R"({"event":{}})", {"/user"}},
        Case{"user_not_object", Channel::kEmail, R"({"user":"bob"})", {"/user"}},
        Case{"unknown_top_level",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co"},"usr":{}})",
             {"/usr"}},
        Case{"missing_external_id", Channel::kEmail, R"({"user":{"email":"a@b.co"}})", {"/user/external_id"}},
        Case{"empty_external_id",
             Channel::kEmail,
             R"({"user":{"external_id":"","email":"a@b.co"}})",
             {"/user/external_id"}},
        Case{"numeric_external_id",
             Channel::kEmail,
             R"({"user":{"external_id":42,"email":"a@b.co"}})",
             {"/user/external_id"}},
        Case{"long_external_id",
             Channel::kEmail,
             R"({"user":{"external_id":")" + std::string(256, 'x') + R"(","email":"a@b.co"}})",
             {"/user/external_id"}},
        Case{"missing_email", Channel::kEmail, R"({"user":{"external_id":"u"}})", {"/user/email"}},
        Case{"bad_email",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"not-an-email"}})",
             {"/user/email"}},
        Case{"email_for_text_campaign",
             Channel::kSms,
             R"({"user":{"external_id":"u","email":"a@b.co"}})",
             {"/user/phone"}},
        Case{"bad_phone",
             Channel::kSms,
             R"({"user":{"external_id":"u","phone":"555-1234"}})",
             {"/user/phone"}},
        Case{"phone_without_plus",
             Channel::kSms,
             R"({"user":{"external_id":"u","phone":"12345678900"}})",
             {"/user/phone"}},
        Case{"missing_device_token",
             Channel::kPush,
             R"({"user":{"external_id":"u"}})",
             {"/user/device_token"}},
        Case{"empty_device_token",
             Channel::kPush,
             R"({"user":{"external_id":"u","device_token":""}})",
             {"/user/device_token"}},
        Case{"bad_timezone",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","timezone":"Mars/Olympus"}})",
             {"/user/timezone"}},
        Case{"timezone_not_string",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","timezone":5}})",
             {"/user/timezone"}},
        Case{"bad_locale",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co","locale":"en_US"}})",
             {"/user/locale"}},
        Case{"event_not_object",
             Channel::kEmail,
             R"({"user":{"external_id":"u","email":"a@b.co"},"event":[1]})",
             {"/event"}},
        Case{"every_problem_reported",
             Channel::kEmail,
             R"({"user":{"external_id":"","email":"x","timezone":"Nowhere","locale":"_"},"event":"e"})",
             {"/user/external_id", "/user/email", "/user/timezone", "/user/locale", "/event"}}),
    [](const ::testing::TestParamInfo<Case>& param_info) { return std::string(param_info.param.name); });

TEST(TriggerValidation, PrefixesBatchPathsAndNamesTheFieldInMessages) {
  rapidjson::Document doc;
  doc.Parse(R"({"user":{"external_id":"u","email":"nope"}})");
  std::vector<FieldError> errors;
  ValidateTrigger(doc, Channel::kEmail, "/triggers/7", errors);
  ASSERT_EQ(errors.size(), 1U);
  EXPECT_EQ(errors[0].path, "/triggers/7/user/email");
  EXPECT_EQ(errors[0].message, "triggers.7.user.email is not a valid email address");
}

TEST(TriggerRecord, CarriesEveryFieldOfTheDesignRecord) {
  rapidjson::Document doc;
  doc.Parse(
      R"({"user":{"external_id":"u1","email":"a@b.co","locale":"es","timezone":null,"first_name":"Ana"},)"
      R"("event":{"order":{"id":"A-1"}}})");
  std::string record = BuildTriggerRecord(doc, "tid", "demo", "44", "2026-11-26T08:00:00.000Z");
  rapidjson::Document out;
  out.Parse(record.c_str());
  ASSERT_FALSE(out.HasParseError()) << record;
  EXPECT_EQ(out["v"].GetInt(), 1);
  EXPECT_STREQ(out["trigger_id"].GetString(), "tid");
  EXPECT_STREQ(out["project"].GetString(), "demo");
  EXPECT_STREQ(out["campaign_id"].GetString(), "44");
  EXPECT_STREQ(out["received_at"].GetString(), "2026-11-26T08:00:00.000Z");
  EXPECT_STREQ(out["user"]["external_id"].GetString(), "u1");
  EXPECT_STREQ(out["user"]["email"].GetString(), "a@b.co");
  EXPECT_STREQ(out["user"]["first_name"].GetString(), "Ana");
  EXPECT_FALSE(out["user"].HasMember("timezone")) << "null optionals are dropped";
  EXPECT_STREQ(out["event"]["order"]["id"].GetString(), "A-1");
}

TEST(TriggerRecord, MissingEventBecomesEmptyObject) {
  rapidjson::Document doc;
  doc.Parse(R"({"user":{"external_id":"u1","phone":"+14155550100"}})");
  std::string record = BuildTriggerRecord(doc, "t", "p", "45", "2026-01-01T00:00:00.000Z");
  rapidjson::Document out;
  out.Parse(record.c_str());
  ASSERT_TRUE(out["event"].IsObject());
  EXPECT_EQ(out["event"].MemberCount(), 0U);
}

TEST(ErrorBody, HasTheContractShape) {
  EXPECT_EQ(
      ErrorBody("user.email is required", {{"/user/email", "user.email is required"}}),
      R"({"status":"error","error":"user.email is required","errors":[{"path":"/user/email","message":"user.email is required"}]})");
  EXPECT_EQ(ErrorBody("say \"hi\""), R"({"status":"error","error":"say \"hi\"","errors":[]})");
}

}  // namespace
}  // namespace pv::ingest
