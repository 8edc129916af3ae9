// Every row of feedback.hpp's table, without Kafka or Redis.
#include "pv/dispatcher/feedback.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include "pv/json.hpp"

namespace pv::dispatcher {
namespace {

const auto kNow = FromUnixMillis(1764000000000);

ReceiptRecord Receipt(const std::string& provider_type, const std::string& type) {
  ReceiptRecord r;
  r.receipt_id = provider_type + ":r1";
  r.provider_type = provider_type;
  r.provider = provider_type == "sendgrid" ? "sg" : "tw";
  r.type = type;
  r.address = provider_type == "sendgrid" ? "Ana@Example.com" : "+15551234567";
  r.message_id = "m1";
  return r;
}

SentMessage Send() {
  return {"send-1", "trigger-1", "44", "tw-main", "+15551234567"};
}

TEST(Feedback, EachReceiptTypeGivesItsEventAndSuppression) {
  struct Row {
    std::string type;
    std::string reason;  // "" none
  };
  for (const Row& row :
       {Row{"delivered", ""}, Row{"bounced", "bounce"}, Row{"undelivered", ""}, Row{"provider_deferred", ""},
        Row{"complained", "complaint"}, Row{"unsubscribed", "unsubscribe"}}) {
    ReceiptRecord r = Receipt("sendgrid", row.type);
    r.send_id = "send-9";
    r.trigger_id = "trigger-9";
    r.campaign_id = "44";
    r.error_code = "5.1.1";
    FeedbackAction a = DecideReceipt(r, SendOfReceipt(r, std::nullopt), SuppressionReasons{}, kNow);
    EXPECT_EQ(a.result, FeedbackResult::kApplied) << row.type;
    EXPECT_EQ(a.status, row.type);
    EXPECT_EQ(a.channel, Channel::kEmail);
    rapidjson::Document e;
    e.Parse(a.event.c_str());
    ASSERT_FALSE(e.HasParseError()) << a.event;
    EXPECT_STREQ(e["send_id"].GetString(), "send-9");
    EXPECT_STREQ(e["trigger_id"].GetString(), "trigger-9");
    EXPECT_STREQ(e["channel"].GetString(), "email");
    EXPECT_STREQ(e["status"].GetString(), row.type.c_str());
    EXPECT_STREQ(e["provider"].GetString(), "sg");
    EXPECT_STREQ(e["provider_message_id"].GetString(), "m1");
    EXPECT_STREQ(e["error_code"].GetString(), "5.1.1");
    EXPECT_STREQ(e["receipt_id"].GetString(), "sendgrid:r1");
    EXPECT_STREQ(e["at"].GetString(), "2025-11-24T16:00:00.000Z");
    if (row.reason.empty()) {
      EXPECT_TRUE(a.suppress_member.empty()) << row.type;
    } else {
      EXPECT_EQ(a.suppress_member, "address:ana@example.com") << row.type;  // lower-cased like the check
      EXPECT_EQ(a.suppress_reason, row.reason);
      EXPECT_EQ(ParseSuppressionWhy(a.suppress_why).reason, row.reason);
      EXPECT_EQ(ParseSuppressionWhy(a.suppress_why).source, "sg");
    }
  }
}

TEST(Feedback, ATwilioReceiptUsesTheRecordedSendAndWithoutOneIsUnknown) {
  ReceiptRecord r = Receipt("twilio", "bounced");
  FeedbackAction a = DecideReceipt(r, SendOfReceipt(r, Send()), SuppressionReasons{}, kNow);
  EXPECT_EQ(a.result, FeedbackResult::kApplied);
  EXPECT_EQ(a.channel, Channel::kSms);
  EXPECT_EQ(a.send_id, "send-1");
  EXPECT_EQ(a.provider, "tw-main");  // the worker's provider, not the receipts account
  EXPECT_EQ(a.suppress_member, "address:+15551234567");
  EXPECT_NE(a.event.find(R"("trigger_id":"trigger-1")"), std::string::npos);

  FeedbackAction unknown = DecideReceipt(r, SendOfReceipt(r, std::nullopt), SuppressionReasons{}, kNow);
  EXPECT_EQ(unknown.result, FeedbackResult::kUnknownSend);
  EXPECT_TRUE(unknown.event.empty());
  EXPECT_TRUE(unknown.suppress_member.empty());
}

TEST(Feedback, StopAndStartNeedNoSendAndEachReasonCanBeTurnedOff) {
  FeedbackAction stop = DecideReceipt(Receipt("twilio", "stop"), std::nullopt, SuppressionReasons{}, kNow);
  EXPECT_EQ(stop.result, FeedbackResult::kApplied);
  EXPECT_TRUE(stop.event.empty());
  EXPECT_EQ(stop.suppress_member, "address:+15551234567");
  EXPECT_EQ(stop.suppress_reason, "stop");
  FeedbackAction start = DecideReceipt(Receipt("twilio", "start"), std::nullopt, SuppressionReasons{}, kNow);
  EXPECT_EQ(start.lift_member, "address:+15551234567");
  EXPECT_TRUE(start.suppress_member.empty());

  SuppressionReasons off;
  off.stop = false;
  off.bounce = false;
  EXPECT_TRUE(DecideReceipt(Receipt("twilio", "stop"), std::nullopt, off, kNow).suppress_member.empty());
  EXPECT_TRUE(DecideReceipt(Receipt("twilio", "start"), std::nullopt, off, kNow).lift_member.empty());
  FeedbackAction bounce = DecideReceipt(Receipt("twilio", "bounced"), Send(), off, kNow);
  EXPECT_EQ(bounce.status, "bounced");  // the event still says what happened
  EXPECT_TRUE(bounce.suppress_member.empty());
}

TEST(Feedback, ADeadPushSuppressesItsTokenOnlyWhenUnregistered) {
  std::string value =
      R"({"v":1,"send_id":"s-7","provider":"fcm","to":{"device_token":"tok-1","external_id":"u"},"content":{}})";
  FeedbackAction a = DecideDeadPush("unregistered", value, SuppressionReasons{}, kNow);
  EXPECT_EQ(a.result, FeedbackResult::kApplied);
  EXPECT_EQ(a.channel, Channel::kPush);
  EXPECT_EQ(a.suppress_member, "address:tok-1");
  EXPECT_EQ(a.suppress_reason, "unregistered");
  EXPECT_EQ(DecideDeadPush("invalid_recipient", value, SuppressionReasons{}, kNow).result,
            FeedbackResult::kInvalid);
  EXPECT_EQ(DecideDeadPush("unregistered", "not json", SuppressionReasons{}, kNow).result,
            FeedbackResult::kInvalid);
  SuppressionReasons off;
  off.unregistered = false;
  EXPECT_TRUE(DecideDeadPush("unregistered", value, off, kNow).suppress_member.empty());
}

TEST(Feedback, ReceiptRecordsAndSentMessagesRoundTripAndBadOnesAreRefused) {
  ReceiptRecord r;
  std::string error;
  ASSERT_TRUE(ParseReceipt(
      R"({"v":1,"receipt_id":"twilio:SM1:delivered","provider_type":"twilio","provider":"tw","type":"delivered","message_id":"SM1"})",
      r, error))
      << error;
  EXPECT_EQ(r.message_id, "SM1");
  EXPECT_FALSE(ParseReceipt(R"({"receipt_id":"x","provider_type":"fax","type":"delivered"})", r, error));
  EXPECT_FALSE(ParseReceipt(R"({"receipt_id":"x","provider_type":"twilio","type":"exploded"})", r, error));
  EXPECT_FALSE(ParseReceipt("[]", r, error));

  EXPECT_EQ(SentMessageKey("twilio", "SM1"), "pv:msg:twilio:SM1");
  auto back = ParseSentMessage(SentMessageJson(Send()));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->send_id, "send-1");
  EXPECT_EQ(back->address, "+15551234567");
  EXPECT_FALSE(ParseSentMessage("{}"));
}

TEST(Feedback, SuppressionReasonsWithoutARecordReadAsUnknown) {
  EXPECT_EQ(ParseSuppressionWhy("").reason, "unknown");
  EXPECT_EQ(ParseSuppressionWhy("garbage").reason, "unknown");
  SuppressionWhy w = ParseSuppressionWhy(SuppressionWhyJson("stop", "2026-01-01T00:00:00.000Z", "tw"));
  EXPECT_EQ(w.reason, "stop");
  EXPECT_EQ(w.at, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(w.source, "tw");
}

}  // namespace
}  // namespace pv::dispatcher
