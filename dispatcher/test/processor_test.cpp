#include "pv/dispatcher/processor.hpp"

#include <gtest/gtest.h>

#include "pv/delay_ladder.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "test_catalog.hpp"

namespace pv::dispatcher {
namespace {

const TimePoint kNow = *ParseTimestamp("2026-06-10T15:00:00Z");  // a Wednesday

constexpr const char* kCatalog44 = R"(id: "44"
project: demo
name: Order shipped
channel: email
provider: smtp
fallback_provider: log
default_locale: en
templates:
  en:
    from: "Shop <shop@example.com>"
    reply_to: "help@example.com"
    subject: "Hi {{user.first_name}}"
    html: "<p>{{event.order_id}}</p>"
  pt:
    from: "Loja <loja@example.com>"
    subject: "Olá {{user.first_name}}"
    html: "<p>Pedido {{event.order_id}}</p>"
    text: "Pedido {{event.order_id}}"
)";

constexpr const char* kCatalog46 = R"(id: "46"
project: demo
name: Cart reminder
channel: push
provider: fcm
timezone: Asia/Tokyo
send_window: {start: "09:00", end: "21:00"}
templates:
  en: {title: "Cart", body: "{{event.n}} items", badge: "{{event.n}}", data: {cart: "{{event.cart}}"}}
)";

constexpr const char* kCatalog45 = R"(id: "45"
project: demo
channel: text
provider: twilio
enabled: false
templates:
  en: {body: "code {{event.code}}"}
)";

class ProcessorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("44.yaml", kCatalog44);
    dir_.Write("45.yaml", kCatalog45);
    dir_.Write("46.yaml", kCatalog46);
    catalog_ = CompiledCatalog::Load(dir_.dir());
  }

  Outcome Run(const std::string& value, Suppressed suppressed = Suppressed::kNo,
              MissingVariables mode = MissingVariables::kEmpty, TimePoint now = kNow,
              size_t max_record_bytes = 0) {
    value_ = value;
    TriggerProcessor processor(ProcessorOptions{mode, "pv.triggers", "pv.events", max_record_bytes});
    parsed_ = ParsedTrigger();
    processor.Parse(value_, *catalog_, parsed_);
    return processor.Decide(parsed_, "u-1", suppressed, now);
  }

  static rapidjson::Document Json(const std::string& s) {
    rapidjson::Document d;
    d.Parse(s.c_str());
    EXPECT_FALSE(d.HasParseError()) << s;
    return d;
  }

  static std::map<std::string, std::string> Headers(const OutputRecord& r) {
    std::map<std::string, std::string> out;
    for (const auto& h : r.headers) out[h.name] = h.value;
    return out;
  }

  testing::TempCatalog dir_;
  std::shared_ptr<CompiledCatalog> catalog_;
  std::string value_;
  ParsedTrigger parsed_;
};

const char* kEmailTrigger =
    R"({"v":1,"trigger_id":"t-1","project":"demo","campaign_id":"44","received_at":"2026-06-10T14:59:59.000Z",)"
    R"("user":{"external_id":"u-1","email":"Ana@Example.com","first_name":"Ana","locale":"pt-BR"},)"
    R"("event":{"order_id":"A<1>"}})";

TEST_F(ProcessorTest, SendRecordFieldByField) {
  Outcome out = Run(kEmailTrigger);
  ASSERT_EQ(out.action, Action::kSend) << out.error;
  ASSERT_EQ(out.records.size(), 2U);
  const OutputRecord& send = out.records[0];
  EXPECT_EQ(send.topic, "pv.send.email");
  EXPECT_EQ(send.key, "u-1");
  EXPECT_FALSE(send.via_ladder);
  auto d = Json(send.value);
  EXPECT_EQ(d["v"].GetInt(), 1);
  EXPECT_STREQ(d["send_id"].GetString(), SendIdFor("t-1", "email").c_str());
  EXPECT_STREQ(d["trigger_id"].GetString(), "t-1");
  EXPECT_STREQ(d["project"].GetString(), "demo");
  EXPECT_STREQ(d["campaign_id"].GetString(), "44");
  EXPECT_STREQ(d["channel"].GetString(), "email");
  EXPECT_STREQ(d["provider"].GetString(), "smtp");
  EXPECT_STREQ(d["fallback_provider"].GetString(), "log");
  EXPECT_EQ(d["attempt"].GetInt(), 1);
  EXPECT_STREQ(d["created_at"].GetString(), "2026-06-10T15:00:00.000Z");
  EXPECT_STREQ(d["locale"].GetString(), "pt");
  EXPECT_STREQ(d["to"]["email"].GetString(), "Ana@Example.com");
  EXPECT_STREQ(d["to"]["external_id"].GetString(), "u-1");
  EXPECT_EQ(d["to"].MemberCount(), 2U);
  const auto& c = d["content"];
  EXPECT_STREQ(c["from"].GetString(), "Loja <loja@example.com>");
  EXPECT_FALSE(c.HasMember("reply_to"));  // the pt template has none
  EXPECT_STREQ(c["subject"].GetString(), "Olá Ana");
  EXPECT_STREQ(c["html"].GetString(), "<p>Pedido A&lt;1&gt;</p>");
  EXPECT_STREQ(c["text"].GetString(), "Pedido A<1>");

  const OutputRecord& event = out.records[1];
  EXPECT_EQ(event.topic, "pv.events");
  EXPECT_EQ(event.key, SendIdFor("t-1", "email"));
  auto e = Json(event.value);
  EXPECT_STREQ(e["status"].GetString(), "queued");
  EXPECT_STREQ(e["send_id"].GetString(), SendIdFor("t-1", "email").c_str());
  EXPECT_STREQ(e["trigger_id"].GetString(), "t-1");
  EXPECT_STREQ(e["campaign_id"].GetString(), "44");
  EXPECT_STREQ(e["channel"].GetString(), "email");
  EXPECT_STREQ(e["provider"].GetString(), "smtp");
  EXPECT_STREQ(e["at"].GetString(), "2026-06-10T15:00:00.000Z");
}

TEST_F(ProcessorTest, DefaultLocaleAndDerivedText) {
  std::string trigger = kEmailTrigger;
  trigger.replace(trigger.find("pt-BR"), 5, "de-AT");
  Outcome out = Run(trigger);
  ASSERT_EQ(out.action, Action::kSend);
  auto d = Json(out.records[0].value);
  EXPECT_STREQ(d["locale"].GetString(), "en");
  EXPECT_STREQ(d["content"]["reply_to"].GetString(), "help@example.com");
  EXPECT_STREQ(d["content"]["text"].GetString(), "A<1>");  // derived from the html
}

TEST_F(ProcessorTest, SuppressedGivesOnlyAnEvent) {
  Outcome out = Run(kEmailTrigger, Suppressed::kAddress);
  ASSERT_EQ(out.action, Action::kSuppressed);
  ASSERT_EQ(out.records.size(), 1U);
  auto e = Json(out.records[0].value);
  EXPECT_EQ(out.records[0].topic, "pv.events");
  EXPECT_STREQ(e["status"].GetString(), "suppressed");
  EXPECT_STREQ(e["reason"].GetString(), "address");
  EXPECT_STREQ(e["suppression_reason"].GetString(), "unknown");  // no reason recorded
  EXPECT_FALSE(e.HasMember("suppressed_at"));
}

TEST_F(ProcessorTest, TheSuppressedEventNamesTheRecordedReasonAndTime) {
  TriggerProcessor processor(ProcessorOptions{MissingVariables::kEmpty, "pv.triggers", "pv.events", 0});
  ParsedTrigger parsed;
  processor.Parse(kEmailTrigger, *catalog_, parsed);
  SuppressionWhy why{"bounce", "2026-06-01T00:00:00.000Z", "sg"};
  Outcome out = processor.Decide(parsed, "u-1", Suppressed::kAddress, kNow, &why);
  ASSERT_EQ(out.records.size(), 1U);
  auto e = Json(out.records[0].value);
  EXPECT_STREQ(e["suppression_reason"].GetString(), "bounce");
  EXPECT_STREQ(e["suppressed_at"].GetString(), "2026-06-01T00:00:00.000Z");
}

TEST_F(ProcessorTest, OutsideTheWindowTheTriggerIsDeferredToTheOpening) {
  // 15:00Z is 00:00 in Tokyo (the campaign's zone): the window opens at 09:00 JST = 00:00Z next day.
  std::string trigger = R"({"trigger_id":"t-2","project":"demo","campaign_id":"46",)"
                        R"("user":{"external_id":"u-1","device_token":"tok"},"event":{"n":2,"cart":"c9"}})";
  Outcome out = Run(trigger);
  ASSERT_EQ(out.action, Action::kDefer) << out.error;
  ASSERT_TRUE(out.due.has_value());
  EXPECT_EQ(FormatTimestamp(*out.due), "2026-06-11T00:00:00.000Z");
  ASSERT_EQ(out.records.size(), 2U);
  const OutputRecord& delayed = out.records[0];
  EXPECT_TRUE(delayed.via_ladder);
  EXPECT_EQ(delayed.topic, "pv.triggers");  // processed again when due
  EXPECT_EQ(delayed.value, trigger);        // unchanged
  EXPECT_EQ(delayed.key, "u-1");
  EXPECT_EQ(delayed.due, *out.due);
  auto e = Json(out.records[1].value);
  EXPECT_STREQ(e["status"].GetString(), "deferred");
  EXPECT_STREQ(e["due_at"].GetString(), "2026-06-11T00:00:00.000Z");
  EXPECT_STREQ(e["channel"].GetString(), "push");

  // The user's own zone wins: 15:00Z is 11:00 in New York, inside the window.
  trigger.replace(trigger.find("\"device_token\""), 0, R"("timezone":"America/New_York",)");
  out = Run(trigger);
  ASSERT_EQ(out.action, Action::kSend) << out.error;
  auto d = Json(out.records[0].value);
  EXPECT_STREQ(d["to"]["device_token"].GetString(), "tok");
  EXPECT_STREQ(d["channel"].GetString(), "push");
  EXPECT_EQ(out.records[0].topic, "pv.send.push");
  EXPECT_EQ(d["content"]["badge"].GetInt(), 2);
  EXPECT_STREQ(d["content"]["body"].GetString(), "2 items");
  EXPECT_STREQ(d["content"]["data"]["cart"].GetString(), "c9");
}

// A trigger just under the limit on pv.triggers (one header) deferred to a closed window: the deferred
// record adds the ladder's headers and would be over message.max.bytes, refused on every attempt. It
// is failed instead (deferred_too_large); its dead letter, larger still, goes without the value.
TEST_F(ProcessorTest, DeferredRecordOverTheLimitIsDeadLetteredWithoutItsValue) {
  std::string head = R"({"trigger_id":"t-big","project":"demo","campaign_id":"46",)"
                     R"("user":{"external_id":"u-1","device_token":"tok"},"event":{"n":2,"pad":")";
  std::string trigger = head + std::string(5000, 'x') + "\"}}";
  kafka::Header id{"pv-trigger-id", "t-big"};
  size_t as_consumed = kafka::RecordBytes("u-1", trigger, std::span<const kafka::Header>(&id, 1));
  size_t limit = as_consumed + 20;  // it fit on pv.triggers, with 20 bytes to spare

  Outcome fits = Run(trigger, Suppressed::kNo, MissingVariables::kEmpty, kNow, limit + 200);
  ASSERT_EQ(fits.action, Action::kDefer) << fits.error;
  EXPECT_LE(TriggerProcessor::RecordSize(fits.records[0]), limit + 200);
  EXPECT_GT(TriggerProcessor::RecordSize(fits.records[0]), limit);  // the ladder headers: > 20 bytes

  Outcome out = Run(trigger, Suppressed::kNo, MissingVariables::kEmpty, kNow, limit);
  ASSERT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "deferred_too_large");
  EXPECT_NE(out.error.find("over message.max.bytes (" + std::to_string(limit) + ")"), std::string::npos)
      << out.error;
  ASSERT_EQ(out.records.size(), 2U);
  const OutputRecord& dlq = out.records[0];
  EXPECT_EQ(dlq.topic, "pv.dlq.push");
  EXPECT_EQ(dlq.value, "");
  auto h = Headers(dlq);
  EXPECT_EQ(h[ladder::kOmittedBytes], std::to_string(trigger.size()));
  EXPECT_EQ(h[ladder::kErrorCode], "deferred_too_large");
  EXPECT_EQ(h["pv-trigger-id"], "t-big");
  EXPECT_EQ(h[ladder::kTarget], "pv.triggers");
  for (const auto& r : out.records) EXPECT_LE(TriggerProcessor::RecordSize(r), limit);
  EXPECT_STREQ(Json(out.records[1].value)["status"].GetString(), "failed");
}

// A send over the limit fails (send_too_large); its dead letter, the trigger, still fits and keeps it.
TEST_F(ProcessorTest, SendOverTheLimitIsDeadLetteredWithTheTrigger) {
  std::string trigger = R"({"trigger_id":"t-4","project":"demo","campaign_id":"44",)"
                        R"("user":{"external_id":"u-1","email":"a@example.com","first_name":"A"},)"
                        R"("event":{"order_id":")" +
                        std::string(3000, 'o') + "\"}}";
  Outcome sent = Run(trigger);
  ASSERT_EQ(sent.action, Action::kSend);
  size_t send_size = TriggerProcessor::RecordSize(sent.records[0]);
  Outcome out = Run(trigger, Suppressed::kNo, MissingVariables::kEmpty, kNow, send_size - 1);
  ASSERT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "send_too_large");
  EXPECT_EQ(out.records[0].value, trigger);
  EXPECT_EQ(Headers(out.records[0]).count(ladder::kOmittedBytes), 0U);
}

// An output refused by the broker for good: the trigger's dead letter names the produce error; with
// omit_value (the broker refused the dead letter itself for size) it goes without the trigger.
TEST_F(ProcessorTest, FailureForAProduceErrorCarriesTheReason) {
  TriggerProcessor processor(ProcessorOptions{MissingVariables::kEmpty, "pv.triggers", "pv.events", 0});
  ParsedTrigger parsed;
  std::string value = kEmailTrigger;
  processor.Parse(value, *catalog_, parsed);
  Outcome out = processor.Failure(parsed, "u-1", "produce_unauthorized", "pv.send.email: denied", kNow);
  ASSERT_EQ(out.action, Action::kFailed);
  auto h = Headers(out.records[0]);
  EXPECT_EQ(h[ladder::kErrorCode], "produce_unauthorized");
  EXPECT_EQ(h[ladder::kError], "pv.send.email: denied");
  EXPECT_EQ(out.records[0].value, value);
  Outcome bare = processor.Failure(parsed, "u-1", "produce_too_large", "pv.dlq.email: too large", kNow, true);
  EXPECT_EQ(bare.records[0].value, "");
  EXPECT_EQ(Headers(bare.records[0])[ladder::kOmittedBytes], std::to_string(value.size()));
}

TEST_F(ProcessorTest, RenderErrorGoesToTheDeadLetterTopicWithTheReason) {
  std::string trigger = R"({"trigger_id":"t-3","project":"demo","campaign_id":"44",)"
                        R"("user":{"external_id":"u-1","email":"a@example.com"},"event":{"order_id":"A"}})";
  Outcome out = Run(trigger, Suppressed::kNo, MissingVariables::kFail);
  ASSERT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "render_error");
  ASSERT_EQ(out.records.size(), 2U);
  const OutputRecord& dlq = out.records[0];
  EXPECT_EQ(dlq.topic, "pv.dlq.email");
  EXPECT_EQ(dlq.value, trigger);
  auto h = Headers(dlq);
  EXPECT_EQ(h[ladder::kErrorCode], "render_error");
  EXPECT_NE(h[ladder::kError].find("missing variable user.first_name"), std::string::npos)
      << h[ladder::kError];
  EXPECT_NE(h[ladder::kError].find("44.yaml"), std::string::npos) << h[ladder::kError];
  EXPECT_EQ(h[ladder::kFailedAt], "2026-06-10T15:00:00.000Z");
  EXPECT_EQ(h[ladder::kTarget], "pv.triggers");
  EXPECT_EQ(h[ladder::kProvider], "smtp");
  auto e = Json(out.records[1].value);
  EXPECT_STREQ(e["status"].GetString(), "failed");
  EXPECT_STREQ(e["error_code"].GetString(), "render_error");
}

TEST_F(ProcessorTest, CampaignProblemsFailOnTheRightChannel) {
  Outcome out = Run(
      R"({"trigger_id":"t-4","project":"demo","campaign_id":"99","user":{"external_id":"u","phone":"+15550001"}})");
  ASSERT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "unknown_campaign");
  EXPECT_EQ(out.records[0].topic, "pv.dlq.sms");
  EXPECT_EQ(out.send_id, SendIdFor("t-4", "text"));

  out = Run(
      R"({"trigger_id":"t-5","project":"demo","campaign_id":"45","user":{"external_id":"u","phone":"+15550001"}})");
  EXPECT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "campaign_disabled");

  out = Run(
      R"({"trigger_id":"t-6","project":"demo","campaign_id":"44","user":{"external_id":"u","phone":"+1555"}})");
  EXPECT_EQ(out.action, Action::kFailed);
  EXPECT_EQ(out.error_code, "missing_address");
  EXPECT_EQ(out.records[0].topic, "pv.dlq.email");

  // Not a trigger at all: nothing to produce, nowhere to send it.
  out = Run("not json");
  EXPECT_EQ(out.action, Action::kDrop);
  EXPECT_TRUE(out.records.empty());
  out = Run(R"({"campaign_id":"44","user":{"external_id":"u","email":"a@example.com"}})");
  EXPECT_EQ(out.action, Action::kDrop);
}

// A record nested deeper than any trigger ingest accepts is dropped, not parsed: 1 MB of '[' (a record
// the broker takes) overflowed the stack, and the dispatcher crashed on it again after every restart.
TEST_F(ProcessorTest, DeeplyNestedRecordIsDroppedNotParsed) {
  Outcome out = Run(std::string(1 << 20, '['));
  EXPECT_EQ(out.action, Action::kDrop);
  std::string deep = R"({"trigger_id":"t-7","project":"demo","campaign_id":"44","user":{"external_id":"u","email":"a@example.com"},"event":)";
  deep += std::string(1100, '[') + std::string(1100, ']') + "}";
  out = Run(deep);
  EXPECT_EQ(out.action, Action::kDrop);
}

}  // namespace
}  // namespace pv::dispatcher
