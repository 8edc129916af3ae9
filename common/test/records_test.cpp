#include "pv/records.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/json.hpp"

namespace pv {
namespace {

constexpr const char* kEmail =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","project":"demo","campaign_id":"44","channel":"email",)"
    R"("provider":"smtp","fallback_provider":"log","attempt":2,"created_at":"2026-01-01T00:00:00Z",)"
    R"("to":{"email":"ana@example.com","external_id":"u-1"},)"
    R"("content":{"from":"a@b.co","subject":"Hi","text":"t","html":"<p>h</p>"}})";

// --- trigger

TEST(TriggerRecordTest, EncodesTheDocumentedShapeAndParsesBack) {
  rapidjson::Document body;
  body.Parse(
      R"({"user":{"external_id":"u1","email":"a@b.co","timezone":null,"n":[1,2.5]},"event":{"x":"\"y\""}})");
  TriggerRecord in;
  in.trigger_id = "t-1";
  in.project = "demo";
  in.campaign_id = "44";
  in.received_at = "2026-11-26T08:00:00.000Z";
  in.user = &body["user"];
  in.event = &body["event"];
  std::string out = "kept:";  // appended to, not replaced
  AppendTrigger(out, in);
  EXPECT_EQ(out, R"(kept:{"v":1,"trigger_id":"t-1","project":"demo","campaign_id":"44",)"
                 R"("received_at":"2026-11-26T08:00:00.000Z","user":{"external_id":"u1","email":"a@b.co",)"
                 R"("n":[1,2.5]},"event":{"x":"\"y\""}})");

  rapidjson::Document doc;
  TriggerRecord t;
  ASSERT_TRUE(ParseTrigger(doc, std::string_view(out).substr(5), t));
  EXPECT_EQ(t.trigger_id, "t-1");
  EXPECT_EQ(t.project, "demo");
  EXPECT_EQ(t.campaign_id, "44");
  EXPECT_EQ(t.received_at, "2026-11-26T08:00:00.000Z");
  EXPECT_EQ(t.external_id, "u1");
  ASSERT_NE(t.user, nullptr);
  ASSERT_NE(t.event, nullptr);
  // Re-encoding what was parsed gives the same record.
  std::string again;
  AppendTrigger(again, t);
  EXPECT_EQ(again, std::string_view(out).substr(5));
}

// AppendTrigger copies strings with nothing to escape whole: its output stays RapidJSON's Writer's,
// byte for byte, for escapes, control characters, UTF-8 and values longer than anything before.
TEST(TriggerRecordTest, WritesValuesAsRapidJsonsWriterDoes) {
  rapidjson::Document body;
  std::string event = R"({"plain":"value","quote":"a\"b","back":"c\\d","ctl":"\u0001\t\n\u001f",)"
                      R"("nul":"x\u0000y","utf8":"Zürich 東京 😀","slash":"a/b","del":"\u007f",)"
                      R"("k\"ey":1,"nested":{"a":[true,false,null,-3,1e300,"s"]},"long":")" +
                      std::string(5000, 'z') + R"("})";
  body.Parse(event.data(), event.size());
  ASSERT_FALSE(body.HasParseError());
  TriggerRecord in;
  in.trigger_id = "t\"1";
  in.event = &body;
  std::string out;
  AppendTrigger(out, in);

  rapidjson::StringBuffer expected;
  rapidjson::Writer<rapidjson::StringBuffer> w(expected);
  w.StartObject();
  w.Key("v");
  w.Int(1);
  for (const char* key : {"trigger_id", "project", "campaign_id", "received_at"}) {
    w.Key(key);
    w.String(key == std::string_view("trigger_id") ? "t\"1" : "");
  }
  w.Key("user");
  w.StartObject();
  w.EndObject();
  w.Key("event");
  body.Accept(w);
  w.EndObject();
  EXPECT_EQ(out, std::string_view(expected.GetString(), expected.GetSize()));
}

TEST(TriggerRecordTest, MissingUserOrEventIsWrittenEmpty) {
  std::string out;
  rapidjson::Value not_object("x");
  TriggerRecord in;
  in.trigger_id = "t";
  in.event = &not_object;
  AppendTrigger(out, in);
  EXPECT_EQ(
      out, R"({"v":1,"trigger_id":"t","project":"","campaign_id":"","received_at":"","user":{},"event":{}})");
}

TEST(TriggerRecordTest, MalformedInputParsesToNothing) {
  rapidjson::Document doc;
  TriggerRecord t;
  EXPECT_FALSE(ParseTrigger(doc, "not json", t));
  EXPECT_FALSE(ParseTrigger(doc, "[1]", t));
  EXPECT_FALSE(ParseTrigger(doc, std::string(1 << 20, '['), t));  // refused unparsed (kMaxRecordDepth)
  EXPECT_TRUE(t.trigger_id.empty());
  // Wrong types read as absent.
  ASSERT_TRUE(ParseTrigger(doc, R"({"trigger_id":5,"user":"u","event":[],"campaign_id":"44"})", t));
  EXPECT_EQ(t.trigger_id, "");
  EXPECT_EQ(t.campaign_id, "44");
  EXPECT_EQ(t.user, nullptr);
  EXPECT_EQ(t.event, nullptr);
  EXPECT_EQ(t.external_id, "");
}

// ParseTrigger parses in place over a copy in the document's allocator: it reads each value as a plain
// parse of the record does (escapes, a byte order mark, a NUL byte ending the text, what fails), and
// what it read outlives the value it was given.
TEST(TriggerRecordTest, ParsesAsAPlainParseAndOutlivesTheValue) {
  const std::string values[] = {
      R"({"trigger_id":"t\"1\u00e9\n","project":"p\\","campaign_id":"44","received_at":"r",)"
      R"("user":{"external_id":"u\/1","email":"a@b.co","n":[1,-2.5e3,true,null]},"event":{"k":{"x":[]}}})",
      "\xEF\xBB\xBF"
      R"({"trigger_id":"bom","user":{"external_id":"u"}})",
      std::string(R"({"trigger_id":"nul","user":{"external_id":"u"}})") + '\0' + "trailing",
      std::string(R"({"trigger_id":"a)") + '\0' + R"(b"})",
      // The first member of a name decides, of the wrong type too.
      R"({"trigger_id":"a","trigger_id":"b","user":{"external_id":"u"},"user":5,"event":7,"event":{}})",
      R"({"trigger_id":5,"trigger_id":"b","project":null,"user":{"external_id":1,"external_id":"u"}})",
      R"({"trigger_id":"t","user":{"external_id":"u"}} x)",
      R"({"trigger_id":"t",})",
      "",
  };
  for (const std::string& original : values) {
    SCOPED_TRACE(original);
    rapidjson::Document plain;
    plain.Parse(original.data(), original.size());
    const bool plain_ok = !plain.HasParseError() && plain.IsObject();

    rapidjson::Document doc;
    TriggerRecord t;
    std::string value = original;
    const bool ok = ParseTrigger(doc, value, t);
    value.assign(value.size(), '#');  // the record's own bytes are not what `t` reads
    ASSERT_EQ(ok, plain_ok);
    EXPECT_EQ(value, std::string(original.size(), '#'));
    if (!ok) continue;
    EXPECT_EQ(ToJson(doc), ToJson(plain));  // member by member, duplicates too (== finds by name)
    auto text = [](const rapidjson::Value& object, const char* name) {
      const auto m = object.FindMember(name);
      return m != object.MemberEnd() && m->value.IsString()
                 ? std::string_view(m->value.GetString(), m->value.GetStringLength())
                 : std::string_view();
    };
    EXPECT_EQ(t.trigger_id, text(plain, "trigger_id"));
    EXPECT_EQ(t.project, text(plain, "project"));
    EXPECT_EQ(t.campaign_id, text(plain, "campaign_id"));
    EXPECT_EQ(t.received_at, text(plain, "received_at"));
    ASSERT_NE(t.user, nullptr);
    EXPECT_EQ(t.external_id, text(plain["user"], "external_id"));
    std::string from_doc;
    std::string from_plain;
    AppendTrigger(from_doc, t);
    TriggerRecord p = t;
    p.user = &plain["user"];
    p.event = plain.HasMember("event") ? &plain["event"] : nullptr;
    AppendTrigger(from_plain, p);
    EXPECT_EQ(from_doc, from_plain);
  }
  EXPECT_EQ(std::string_view("t\"1\xC3\xA9\n"), [] {
    static rapidjson::Document doc;
    static TriggerRecord t;
    ParseTrigger(doc, R"({"trigger_id":"t\"1\u00e9\n"})", t);
    return t.trigger_id;
  }());
}

// --- send

TEST(SendRecordTest, EncodesFieldsInTheDocumentedOrder) {
  std::map<std::string, std::string> fields = {{"body", "b"},      {"zz", "z"},
                                               {"from", "a@b.co"}, {"html", "<p>\"h\"</p>\n"},
                                               {"subject", "S"},   {"aa", "a"}};
  SendOut in;
  in.send_id = "s-1";
  in.trigger_id = "t-1";
  in.project = "demo";
  in.campaign_id = "44";
  in.channel = Channel::kEmail;
  in.provider = "smtp";
  in.fallback_provider = "log";
  in.created_at = "2026-01-01T00:00:00.000Z";
  in.received_at = "2025-12-31T23:59:59.000Z";
  in.locale = "es";
  in.address = "ana@example.com";
  in.external_id = "u-1";
  in.content.fields = &fields;
  std::string out;
  AppendSend(out, in);
  EXPECT_EQ(
      out,
      R"({"v":1,"send_id":"s-1","trigger_id":"t-1","project":"demo","campaign_id":"44","channel":"email",)"
      R"("provider":"smtp","fallback_provider":"log","attempt":1,"created_at":"2026-01-01T00:00:00.000Z",)"
      R"("received_at":"2025-12-31T23:59:59.000Z","locale":"es","to":{"email":"ana@example.com",)"
      R"("external_id":"u-1"},"content":{"from":"a@b.co","subject":"S","body":"b",)"
      R"("html":"<p>\"h\"</p>\n","aa":"a","zz":"z"}})");
}

TEST(SendRecordTest, PushCarriesBadgeAndDataAndTheWorkerReadsIt) {
  std::map<std::string, std::string> fields = {{"title", "T"}, {"body", "B"}};
  std::map<std::string, std::string> data = {{"k", "v"}};
  SendOut in;
  in.send_id = "s-2";
  in.trigger_id = "t-2";
  in.channel = Channel::kPush;
  in.provider = "fcm";
  in.created_at = "2026-01-01T00:00:00.000Z";
  in.address = "tok";
  in.external_id = "u-2";
  in.content = {&fields, &data, 3};
  std::string out;
  AppendSend(out, in);
  EXPECT_NE(out.find(R"("content":{"title":"T","body":"B","badge":3,"data":{"k":"v"}}})"), std::string::npos)
      << out;
  EXPECT_EQ(out.find("fallback_provider"), std::string::npos);
  EXPECT_EQ(out.find("received_at"), std::string::npos);
  std::string error;
  auto send = ParseSend(out, "u-2", Channel::kPush, error);
  ASSERT_TRUE(send) << error;
  EXPECT_EQ(send->send_id, "s-2");
  EXPECT_EQ(send->address, "tok");
  EXPECT_EQ(send->attempt, 1);
  EXPECT_EQ(send->ContentString("title"), "T");
  ASSERT_NE(send->ContentMember("badge"), nullptr);
  EXPECT_EQ(send->ContentMember("badge")->GetInt(), 3);
  EXPECT_FALSE(send->received_at);
}

TEST(SendRecordTest, ParsesEveryField) {
  std::string error;
  auto s = ParseSend(kEmail, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->send_id, "s-1");
  EXPECT_EQ(s->trigger_id, "t-1");
  EXPECT_EQ(s->project, "demo");
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

// Parsed in place (a copy of the value): escapes decoded, the value itself untouched, a UTF-8 byte
// order mark skipped and the first member of a name deciding, as RapidJSON's Parse(text, size) did.
TEST(SendRecordTest, ParsesInPlaceAsTheValueReadsWithoutChangingIt) {
  std::string error;
  std::string value = "\xEF\xBB\xBF" + std::string(kEmail);
  value.insert(value.find("\"send_id\""), R"("provider":"first",)");
  value.replace(value.find("\"subject\":\"Hi\""), 14, R"("subject":"H\"i\u00e9\n")");
  auto s = ParseSend(value, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s) << error;
  EXPECT_EQ(s->provider, "first");
  EXPECT_EQ(s->ContentString("subject"), "H\"i\xC3\xA9\n");
  EXPECT_EQ(s->value, value);
  EXPECT_EQ(s->send_id, "s-1");
}

// The bodies that pass a send's strings on copy them as the record escaped them; what is not one of
// the record's strings, or an object whose text would break a line, is escaped or written anew.
TEST(SendRecordTest, AppendsStringsAndObjectsAsTheRecordWroteThem) {
  std::string error;
  std::string value = kEmail;
  value.replace(value.find("\"subject\":\"Hi\""), 14, R"("subject":"H\"i\u00e9\/\n")");
  value.replace(value.find("\"to\":{"), 6, "\"to\": {  ");
  auto s = ParseSend(value, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s) << error;
  std::string out;
  s->AppendContentString(out, "subject");
  EXPECT_EQ(out, R"("H\"i\u00e9\/\n")");
  out.clear();
  s->AppendContentString(out, "html");
  EXPECT_EQ(out, R"("<p>h</p>")");
  out.clear();
  s->AppendContentString(out, "missing");
  EXPECT_EQ(out, R"("")");
  out.clear();
  s->AppendString(out, std::string("a\"b"));  // not the record's: escaped
  EXPECT_EQ(out, R"("a\"b")");
  out.clear();
  s->AppendObject(out, *s->to);
  EXPECT_EQ(out, R"({  "email":"ana@example.com","external_id":"u-1"})");
  out.clear();
  s->AppendObject(out, *s->content);
  EXPECT_EQ(out, R"({"from":"a@b.co","subject":"H\"i\u00e9\/\n","text":"t","html":"<p>h</p>"})");

  // Nested objects and arrays, braces inside strings, an empty object (written anew).
  const std::string nested = R"({"send_id":"s","provider":"p","channel":"push","to":{"device_token":"d"},)"
                             R"("content":{"data":{"a":[1,{"b":"}]\"{"}],"c":{}},"title":"x"},"z":[]})";
  s = ParseSend(nested, "", Channel::kPush, error);
  ASSERT_TRUE(s) << error;
  out.clear();
  s->AppendObject(out, *s->content);
  EXPECT_EQ(out, R"({"data":{"a":[1,{"b":"}]\"{"}],"c":{}},"title":"x"})");
  out.clear();
  s->AppendObject(out, (*s->content)["data"]["c"]);
  EXPECT_EQ(out, "{}");

  // A line break between tokens: re-serialised, so that a line-per-send file keeps one line each.
  std::string broken = kEmail;
  broken.replace(broken.find("\"to\":{"), 6, "\"to\":{\n");
  s = ParseSend(broken, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s) << error;
  EXPECT_FALSE(s->RawObject(*s->to));
  out.clear();
  s->AppendObject(out, *s->to);
  EXPECT_EQ(out, R"({"email":"ana@example.com","external_id":"u-1"})");
}

TEST(SendRecordTest, RejectsWhatCannotBeDelivered) {
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
  EXPECT_FALSE(ParseSend(R"({"send_id":"x","channel":"email"})", "", Channel::kEmail, error));
  EXPECT_EQ(error, "provider missing");
  EXPECT_FALSE(ParseSend(R"({"send_id":"x","provider":"p","channel":"email","to":{"email":"a@b"}})", "",
                         Channel::kEmail, error));
  EXPECT_EQ(error, "content missing");
}

// 1 MB of '[' on a send topic overflowed the worker's stack (and again after each restart).
TEST(SendRecordTest, DeeplyNestedRecordIsRefusedNotParsed) {
  std::string error;
  EXPECT_FALSE(ParseSend(std::string(1 << 20, '['), "", Channel::kEmail, error));
  EXPECT_EQ(error, "value is not a JSON object");
}

// --- event

TEST(EventRecordTest, WorkerEventHasTheDocumentedShape) {
  std::string error;
  auto s = ParseSend(kEmail, "u-1", Channel::kEmail, error);
  ASSERT_TRUE(s);
  EventRecord e = EventFor(*s);
  e.status = "retrying";
  e.provider = "smtp";
  e.error_code = "timeout";
  e.error = "no \"answer\"\x01";
  e.attempt = 2;
  e.at = "2027-01-15T08:00:00.000Z";
  std::string out;
  AppendEvent(out, e);
  EXPECT_EQ(out,
            R"({"v":1,"send_id":"s-1","trigger_id":"t-1","campaign_id":"44","channel":"email",)"
            R"("status":"retrying","provider":"smtp","error_code":"timeout","error":"no \"answer\"\u0001",)"
            R"("attempt":2,"at":"2027-01-15T08:00:00.000Z"})");
}

TEST(EventRecordTest, EveryFieldInOrderAndParsedBack) {
  EventRecord e{"s",
                "t",
                "p",
                "c",
                "text",
                "bounced",
                "twilio",
                "m",
                "30003",
                "unreachable",
                0,
                "r",
                "2026-01-01T00:00:00Z",
                "address",
                "bounce",
                "2026-01-01T00:00:01Z",
                "2026-01-01T09:00:00.000Z",
                "2026-01-01T00:00:02.000Z"};
  std::string out;
  AppendEvent(out, e);
  EXPECT_EQ(out, R"({"v":1,"send_id":"s","trigger_id":"t","project":"p","campaign_id":"c","channel":"text",)"
                 R"("status":"bounced","provider":"twilio","provider_message_id":"m","error_code":"30003",)"
                 R"("error":"unreachable","attempt":0,"receipt_id":"r","occurred_at":"2026-01-01T00:00:00Z",)"
                 R"("reason":"address","suppression_reason":"bounce","suppressed_at":"2026-01-01T00:00:01Z",)"
                 R"("due_at":"2026-01-01T09:00:00.000Z","at":"2026-01-01T00:00:02.000Z"})");
  rapidjson::Document doc;
  EventRecord parsed;
  ASSERT_TRUE(ParseEvent(doc, out, parsed));
  std::string again;
  AppendEvent(again, parsed);
  EXPECT_EQ(again, out);
  // In place, the same event (its strings now in `copy`).
  std::string copy = out;
  ASSERT_TRUE(ParseEventInPlace(doc, copy, parsed));
  again.clear();
  AppendEvent(again, parsed);
  EXPECT_EQ(again, out);
  // A leading byte order mark is skipped in place as ParseEvent skips it.
  std::string bom = "\xEF\xBB\xBF" + out;
  ASSERT_TRUE(ParseEvent(doc, bom, parsed));
  ASSERT_TRUE(ParseEventInPlace(doc, bom, parsed));
  again.clear();
  AppendEvent(again, parsed);
  EXPECT_EQ(again, out);
}

TEST(EventRecordTest, OptionalFieldsAreOmittedWhenEmpty) {
  EventRecord e;
  e.send_id = "s";
  e.trigger_id = "t";
  e.campaign_id = "c";
  e.channel = "email";
  e.status = "queued";
  e.at = "x";
  std::string out;
  AppendEvent(out, e);
  EXPECT_EQ(out,
            R"({"v":1,"send_id":"s","trigger_id":"t","campaign_id":"c","channel":"email","status":"queued",)"
            R"("provider":"","at":"x"})");
  rapidjson::Document doc;
  EventRecord parsed;
  ASSERT_TRUE(ParseEvent(doc, out, parsed));
  EXPECT_FALSE(parsed.attempt);
  EXPECT_EQ(parsed.status, "queued");
}

TEST(EventRecordTest, RequiredFieldsAreWrittenEvenWhenEmpty) {
  std::string out;
  AppendEvent(out, EventRecord());
  EXPECT_EQ(out,
            R"({"v":1,"send_id":"","trigger_id":"","campaign_id":"","channel":"","status":"","provider":"",)"
            R"("at":""})");
}

TEST(EventRecordTest, MalformedInputParsesToNothing) {
  rapidjson::Document doc;
  EventRecord e;
  EXPECT_FALSE(ParseEvent(doc, "", e));
  EXPECT_FALSE(ParseEvent(doc, R"("send_id")", e));
  EXPECT_FALSE(ParseEvent(doc, R"({"send_id":"s",)", e));
  EXPECT_FALSE(ParseEvent(doc, std::string(1 << 20, '{'), e));
  std::string deep(1 << 20, '{');
  EXPECT_FALSE(ParseEventInPlace(doc, deep, e));
  std::string cut(R"({"send_id":"s)"
                  "\0"
                  R"("})",
                  16);
  EXPECT_FALSE(ParseEvent(doc, cut, e));
  EXPECT_FALSE(ParseEventInPlace(doc, cut, e));
  ASSERT_TRUE(ParseEvent(doc, R"({"send_id":1,"status":"sent","attempt":"2","at":null})", e));
  EXPECT_EQ(e.send_id, "");
  EXPECT_EQ(e.status, "sent");
  EXPECT_FALSE(e.attempt);
  EXPECT_EQ(e.at, "");
}

TEST(EventRecordTest, TheFirstMemberOfANameDecides) {
  rapidjson::Document doc;
  EventRecord e;
  ASSERT_TRUE(ParseEvent(doc,
                         R"({"send_id":1,"send_id":"s","status":"sent","status":"dead",)"
                         R"("attempt":"2","attempt":3,"x":"y"})",
                         e));
  EXPECT_EQ(e.send_id, "");
  EXPECT_EQ(e.status, "sent");
  EXPECT_FALSE(e.attempt);
  ASSERT_TRUE(ParseEvent(doc, R"({"attempt":4,"attempt":5})", e));
  EXPECT_EQ(e.attempt, 4);
}

TEST(ReceiptRecordTest, WritesTheSetFieldsInOrderAndParsesBack) {
  ReceiptRecord r;
  r.receipt_id = "twilio:SM1:undelivered";
  r.provider_type = "twilio";
  r.provider = "tw";
  r.type = "undelivered";
  r.message_id = "SM1";
  r.error_code = "30003";
  std::string out;
  AppendReceipt(out, r, "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(out, R"({"v":1,"receipt_id":"twilio:SM1:undelivered","provider_type":"twilio","provider":"tw",)"
                 R"("type":"undelivered","message_id":"SM1","error_code":"30003",)"
                 R"("received_at":"2026-01-01T00:00:00.000Z"})");
  ReceiptRecord back;
  std::string error;
  ASSERT_TRUE(ParseReceipt(out, back, error)) << error;
  EXPECT_EQ(back.receipt_id, r.receipt_id);
  EXPECT_EQ(back.message_id, "SM1");
  EXPECT_EQ(back.error_code, "30003");
  EXPECT_TRUE(back.send_id.empty());
  EXPECT_FALSE(ParseReceipt(R"({"receipt_id":"x","provider_type":"twilio"})", back, error));
  EXPECT_EQ(error, "receipt_id, provider_type and type are required");
}

TEST(DeadLetterRecordTest, WritesTheSetHeadersInOrderAndParsesBack) {
  DeadLetter d{.error_code = "invalid_recipient",
               .error = "HTTP 400: bad address",
               .attempt = 3,
               .provider = "smtp",
               .failed_at = "2026-06-10T15:00:00.000Z",
               .omitted_bytes = 70000};
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Headers headers = DeadLetterHeaders(d);
  EXPECT_EQ(headers, (Headers{{"pv-error-code", "invalid_recipient"},
                              {"pv-error", "HTTP 400: bad address"},
                              {"pv-attempt", "3"},
                              {"pv-provider", "smtp"},
                              {"pv-failed-at", "2026-06-10T15:00:00.000Z"},
                              {"pv-omitted-bytes", "70000"}}));
  DeadLetter back = ParseDeadLetter({headers.begin(), headers.end()});
  EXPECT_EQ(back.error_code, d.error_code);
  EXPECT_EQ(back.error, d.error);
  EXPECT_EQ(back.attempt, d.attempt);
  EXPECT_EQ(back.provider, d.provider);
  EXPECT_EQ(back.failed_at, d.failed_at);
  EXPECT_EQ(back.omitted_bytes, d.omitted_bytes);
  // An empty reason is still written: only an unset field is left out.
  EXPECT_EQ(DeadLetterHeaders({.error_code = "render_error", .error = ""}),
            (Headers{{"pv-error-code", "render_error"}, {"pv-error", ""}}));
}

TEST(DeadLetterRecordTest, SetReplacesInPlaceAndAppendsTheRest) {
  // A retry record turned into a dead letter keeps its other headers where they were.
  std::vector<std::pair<std::string, std::string>> headers = {
      {"pv-provider", "smtp"}, {"pv-error-code", "timeout"}, {"pv-pinned-provider", "smtp"}};
  SetDeadLetterHeaders(headers, {.error_code = "retry_too_large", .failed_at = "2026-06-10T15:00:00.000Z"});
  EXPECT_EQ(headers,
            (std::vector<std::pair<std::string, std::string>>{{"pv-provider", "smtp"},
                                                              {"pv-error-code", "retry_too_large"},
                                                              {"pv-pinned-provider", "smtp"},
                                                              {"pv-failed-at", "2026-06-10T15:00:00.000Z"}}));
}

TEST(DeadLetterRecordTest, UnreadableOrMissingHeadersStayUnset) {
  std::map<std::string, std::string> headers = {{"pv-error-code", "unregistered"},
                                                {"pv-attempt", "0"},
                                                {"pv-omitted-bytes", "-5"},
                                                {"pv-target", "pv.triggers"}};
  DeadLetter d = ParseDeadLetter(headers);
  EXPECT_EQ(d.error_code, "unregistered");
  EXPECT_FALSE(d.error.has_value());
  EXPECT_FALSE(d.attempt.has_value());
  EXPECT_FALSE(d.provider.has_value());
  EXPECT_FALSE(d.failed_at.has_value());
  EXPECT_FALSE(d.omitted_bytes.has_value());
  EXPECT_FALSE(ParseDeadLetter(std::map<std::string, std::string>{}).error_code.has_value());
}

}  // namespace
}  // namespace pv
