#include "pv/status_store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>

#include "pv/config.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/redis_client.hpp"

namespace pv {
namespace {

constexpr const char* kQueued =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","project":"demo","campaign_id":"e1","channel":"email",)"
    R"("status":"queued","provider":"log","at":"2026-06-10T15:00:00.001Z"})";
constexpr const char* kSent =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","campaign_id":"e1","channel":"email","status":"sent",)"
    R"("provider":"log","provider_message_id":"m-1","attempt":1,"at":"2026-06-10T15:00:00.009Z"})";
constexpr const char* kDelivered =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","campaign_id":"e1","channel":"email","status":"delivered",)"
    R"("provider":"sg","provider_message_id":"m-1","receipt_id":"sendgrid:x","occurred_at":"2026-06-10T15:00:01Z",)"
    R"("at":"2026-06-10T15:00:02.000Z","unknown_field":"dropped"})";

// What the store would hold after applying `events` by their fields (HSET), as HGETALL answers it:
// applying an event twice writes the same field. `meta_fields`: also the project and campaign_id
// fields the writes added until 2026-12-05 (HSETNX, the first value stays).
RedisReply Store(const std::vector<std::string>& events, bool meta_fields = false) {
  std::map<std::string, std::string> hash;
  for (const auto& e : events) {
    StatusUpdate u;
    std::string error;
    EXPECT_TRUE(StatusFromEvent(e, 512, u, error)) << error;
    hash[u.field] = u.entry;
    if (meta_fields && !u.project.empty()) {
      hash.emplace("project", u.project);
      if (!u.campaign_id.empty()) hash.emplace("campaign_id", u.campaign_id);
    }
  }
  RedisReply reply;
  reply.type = RedisReply::Type::kArray;
  for (const auto& [k, v] : hash) {
    RedisReply key;
    key.type = RedisReply::Type::kString;
    key.str = k;
    RedisReply value = key;
    value.str = v;
    reply.elements.push_back(key);
    reply.elements.push_back(value);
  }
  return reply;
}

std::vector<std::string> Statuses(const TriggerStatus& s) {
  rapidjson::Document d;
  d.Parse(s.json.c_str());
  std::vector<std::string> out;
  for (const auto& send : d["sends"].GetArray())
    for (const auto& st : send["statuses"].GetArray()) out.emplace_back(AsStringView(st["status"]));
  return out;
}

TEST(StatusStoreTest, AnEventBecomesAnEntryWithItsDetails) {
  StatusUpdate u;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kDelivered, 512, u, error)) << error;
  EXPECT_EQ(u.trigger_id, "t-1");
  EXPECT_EQ(u.send_id, "s-1");
  EXPECT_EQ(u.project, "");  // only the dispatcher's events name it
  EXPECT_EQ(u.campaign_id, "e1");
  EXPECT_EQ(u.field.substr(0, 2), "e:");
  EXPECT_EQ(u.field.size(), 18U);
  EXPECT_EQ(u.entry,
            R"({"send_id":"s-1","channel":"email","status":"delivered","at":"2026-06-10T15:00:02.000Z",)"
            R"("provider":"sg","provider_message_id":"m-1","receipt_id":"sendgrid:x",)"
            R"("occurred_at":"2026-06-10T15:00:01Z"})");
  // Its hash: the send's, by the id pv derives from the trigger's and the channel (not the event's
  // send_id), so that the trigger's lookup finds it.
  EXPECT_EQ(u.key, "pv:status:s:" + SendIdFor("t-1", "email"));
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, u, error));
  EXPECT_EQ(u.project, "demo");
  EXPECT_EQ(u.key, "pv:status:s:" + SendIdFor("t-1", "email"));
  // The dispatcher's entry names the trigger and its project and campaign (no command of their own).
  EXPECT_EQ(u.entry,
            R"({"send_id":"s-1","channel":"email","status":"queued","at":"2026-06-10T15:00:00.001Z",)"
            R"("trigger_id":"t-1","project":"demo","campaign_id":"e1","provider":"log"})");
}

// A send's hash is one of the trigger's keys, whatever channel it is on, and the channel's other
// names ("sms") are the same hash; an event on no channel of pv's goes to the trigger's own hash,
// which the trigger's keys name last.
TEST(StatusStoreTest, ATriggersKeysAreItsSendsOnEachChannelThenItsOwn) {
  const std::vector<std::string> keys = StatusKeysOfTrigger("t-1");
  EXPECT_EQ(keys, (std::vector<std::string>{"pv:status:s:" + SendIdFor("t-1", "email"),
                                            "pv:status:s:" + SendIdFor("t-1", "text"),
                                            "pv:status:s:" + SendIdFor("t-1", "push"), "pv:status:t-1"}));
  EXPECT_EQ(StatusKeyOfSend(SendIdFor("t-1", "push")), keys[2]);
  std::string error;
  for (const auto& [channel, key] : std::vector<std::pair<std::string, std::string>>{{"email", keys[0]},
                                                                                     {"text", keys[1]},
                                                                                     {"sms", keys[1]},
                                                                                     {"push", keys[2]},
                                                                                     {"fax", keys[3]},
                                                                                     {"", keys[3]}}) {
    const std::string event = fmt::format(
        R"({{"send_id":"s-9","trigger_id":"t-1","channel":"{}","status":"sent","at":"2026-06-10T15:00:00.000Z"}})",
        channel);
    StatusUpdate u;
    ASSERT_TRUE(StatusFromEvent(event, 512, u, error)) << error;
    EXPECT_EQ(u.key, key) << channel;
  }
}

TEST(StatusStoreTest, DeferredSuppressedAndDeadKeepTheirDetails) {
  StatusUpdate u;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(
      R"({"send_id":"s-2","trigger_id":"t-2","status":"deferred","due_at":"2026-06-11T08:00:00.000Z","at":"2026-06-10T23:00:00.000Z"})",
      512, u, error));
  EXPECT_NE(u.entry.find(R"("due_at":"2026-06-11T08:00:00.000Z")"), std::string::npos) << u.entry;
  ASSERT_TRUE(StatusFromEvent(
      R"({"send_id":"s-2","trigger_id":"t-2","status":"suppressed","reason":"address","suppression_reason":"bounce","suppressed_at":"2026-06-01T00:00:00.000Z","at":"2026-06-10T23:00:00.000Z"})",
      512, u, error));
  EXPECT_NE(u.entry.find(R"("reason":"address","suppression_reason":"bounce")"), std::string::npos)
      << u.entry;
  ASSERT_TRUE(StatusFromEvent(
      R"({"send_id":"s-2","trigger_id":"t-2","status":"dead","provider":"ses","error_code":"invalid_address","error":"550","attempt":3,"at":"2026-06-10T23:00:00.000Z"})",
      512, u, error));
  EXPECT_NE(u.entry.find(R"("error_code":"invalid_address","error":"550","attempt":3)"), std::string::npos)
      << u.entry;
}

// An entry's bytes and its field are what a redelivered event writes again (HSET): they stay as
// RapidJSON's Writer wrote them (short \b and \f, upper-case hex) and as the field was digested.
TEST(StatusStoreTest, AnEntrysEscapesAndFieldStayAsTheyWere) {
  StatusUpdate u;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kDelivered, 512, u, error)) << error;
  EXPECT_EQ(u.field, "e:" + Sha256Hex(kDelivered).substr(0, 16));
  const std::string event =
      R"({"send_id":"s-3","trigger_id":"t-3","status":"failed","attempt":-12,"at":"2026-06-10T23:00:00.000Z",)"
      R"("error":"a\"b\\c\b\f\n\r\t\u0001\u001f\u007f\/ é"})";
  ASSERT_TRUE(StatusFromEvent(event, 512, u, error)) << error;
  EXPECT_EQ(u.entry, R"({"send_id":"s-3","channel":"","status":"failed","at":"2026-06-10T23:00:00.000Z",)"
                     R"("error":"a\"b\\c\b\f\n\r\t\u0001\u001F)"
                     "\x7f/ é\",\"attempt\":-12}");
  EXPECT_EQ(u.field, "e:" + Sha256Hex(event).substr(0, 16));
  // An update used again holds the new event's entry only.
  ASSERT_TRUE(StatusFromEvent(
      R"({"send_id":"s","trigger_id":"t","status":"sent","at":"2026-06-10T23:00:00Z"})", 512, u, error));
  EXPECT_EQ(u.entry, R"({"send_id":"s","channel":"","status":"sent","at":"2026-06-10T23:00:00Z"})");
}

TEST(StatusStoreTest, TheSameEventTwiceIsOneEntryAndStatusesAreInTimeOrder) {
  StatusUpdate a;
  StatusUpdate b;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kSent, 512, a, error));
  ASSERT_TRUE(StatusFromEvent(kSent, 512, b, error));
  EXPECT_EQ(a.field, b.field);
  RedisCommands write_a;
  RedisCommands write_b;
  AddStatusWrite(write_a, a, StatusOptions{});
  AddStatusWrite(write_b, b, StatusOptions{});
  EXPECT_EQ(write_a.resp(), write_b.resp());
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, b, error));
  EXPECT_NE(a.field, b.field);

  TriggerStatus s = RenderTriggerStatus("t-1", Store({kDelivered, kSent, kQueued, kSent, kDelivered}));
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.project, "demo");
  EXPECT_EQ(s.campaign_id, "e1");
  EXPECT_EQ(Statuses(s), (std::vector<std::string>{"queued", "sent", "delivered"}));
  std::string head =
      R"({"trigger_id":"t-1","campaign_id":"e1","sends":[{"send_id":"s-1","channel":"email","statuses")";
  EXPECT_EQ(s.json.substr(0, head.size()), head);
}

// The commands of a RESP pipeline, each as its arguments.
std::vector<std::vector<std::string>> Commands(std::string_view resp) {
  std::vector<std::vector<std::string>> out;
  auto number = [&resp](char tag) {
    EXPECT_EQ(resp.front(), tag);
    size_t end = resp.find("\r\n");
    size_t n = std::stoul(std::string(resp.substr(1, end - 1)));
    resp.remove_prefix(end + 2);
    return n;
  };
  while (!resp.empty()) {
    auto& command = out.emplace_back();
    for (size_t n = number('*'); n > 0; --n) {
      size_t len = number('$');
      command.emplace_back(resp.substr(0, len));
      resp.remove_prefix(len + 2);
    }
  }
  return out;
}

// The trigger's project is the earliest dispatcher entry's, wherever HGETALL lists it: an event naming
// another project later does not move the trigger. Hashes written before the entries named it keep
// it in fields of their own, which stay the answer. The statuses do not repeat it.
TEST(StatusStoreTest, TheTriggersProjectIsTheEarliestEntrysThatNamesIt) {
  const std::string later_other_project =
      R"({"v":1,"send_id":"s-2","trigger_id":"t-1","project":"other","campaign_id":"e9","channel":"email",)"
      R"("status":"queued","at":"2026-06-10T15:00:05.000Z"})";
  const std::string same_ms_other_project =
      R"({"v":1,"send_id":"s-3","trigger_id":"t-1","project":"third","campaign_id":"e8","channel":"email",)"
      R"("status":"queued","at":"2026-06-10T15:00:00.001Z"})";
  for (const auto& events :
       std::vector<std::vector<std::string>>{{kSent, later_other_project, kQueued},
                                             {later_other_project, kQueued, kSent},
                                             {kQueued, kDelivered, later_other_project}}) {
    TriggerStatus s = RenderTriggerStatus("t-1", Store(events));
    ASSERT_TRUE(s.found);
    EXPECT_EQ(s.project, "demo");
    EXPECT_EQ(s.campaign_id, "e1");
    EXPECT_EQ(s.json.find("\"project\""), std::string::npos) << s.json;
    EXPECT_EQ(s.json.find("\"e9\""), std::string::npos) << s.json;
  }
  // Two of the same millisecond: the smaller field, whatever the order they are listed in.
  StatusUpdate a;
  StatusUpdate b;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, a, error));
  ASSERT_TRUE(StatusFromEvent(same_ms_other_project, 512, b, error));
  const std::string first = a.field < b.field ? "demo" : "third";
  RedisReply one = Store({kQueued, same_ms_other_project});
  RedisReply reversed = one;
  std::swap(reversed.elements[0], reversed.elements[2]);
  std::swap(reversed.elements[1], reversed.elements[3]);
  EXPECT_EQ(RenderTriggerStatus("t-1", one).project, first);
  EXPECT_EQ(RenderTriggerStatus("t-1", reversed).project, first);
  // Fields of their own (before 2026-12-05) are the answer, even against an earlier entry.
  TriggerStatus legacy = RenderTriggerStatus("t-1", Store({later_other_project, kQueued}, true));
  EXPECT_EQ(legacy.project, "other");
  EXPECT_EQ(legacy.campaign_id, "e9");
  // Only workers' events so far: no project, as before.
  TriggerStatus workers = RenderTriggerStatus("t-1", Store({kSent, kDelivered}));
  ASSERT_TRUE(workers.found);
  EXPECT_EQ(workers.project, "");
  EXPECT_EQ(workers.campaign_id, "");
}

// A send's events go to its hash: the entry, the length, and with its dispatcher's event the TTL; no
// index (the send's hash is found by its id). A worker's event sends no TTL, unless its write made the
// hash.
TEST(StatusStoreTest, ASendsEventsAreItsEntryItsLengthAndItsDispatchersTtl) {
  StatusOptions options;
  options.ttl = std::chrono::seconds(60);
  StatusUpdate queued;
  StatusUpdate sent;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, queued, error)) << error;
  ASSERT_TRUE(StatusFromEvent(kSent, 512, sent, error)) << error;
  const std::string key = "pv:status:s:" + SendIdFor("t-1", "email");

  RedisCommands write;
  EXPECT_EQ(AddStatusWrite(write, queued, options), 3u);
  using Args = std::vector<std::string>;
  EXPECT_EQ(Commands(write.resp()),
            (std::vector<Args>{
                {"HSET", key, queued.field, queued.entry}, {"HLEN", key}, {"PEXPIRE", key, "60000"}}));
  std::vector<RedisReply> replies(3);
  for (auto& r : replies) r.type = RedisReply::Type::kInteger;
  replies[0].integer = 1;
  replies[1].integer = 1;  // the hash is new: the write's PEXPIRE gave it its TTL
  const StatusUpdate* one = &queued;
  EXPECT_FALSE(ReadStatusWrite(replies, std::span(&one, 1), options).needs_ttl);

  write.clear();
  EXPECT_EQ(AddStatusWrite(write, sent, options), 2u);
  EXPECT_EQ(Commands(write.resp()), (std::vector<Args>{{"HSET", key, sent.field, sent.entry}, {"HLEN", key}}));
  one = &sent;
  replies[1].integer = 2;  // the dispatcher's entry is there: so is the TTL it came with
  StatusWriteReply r = ReadStatusWrite(std::span(replies).first(2), std::span(&one, 1), options);
  EXPECT_EQ(r.applied, 1u);
  EXPECT_FALSE(r.needs_ttl);
  replies[1].integer = 1;  // the worker's entry alone: its write made the hash
  EXPECT_TRUE(ReadStatusWrite(std::span(replies).first(2), std::span(&one, 1), options).needs_ttl);
  replies[0].integer = 0;  // the same write again, after a failure before the TTL: still none
  EXPECT_TRUE(ReadStatusWrite(std::span(replies).first(2), std::span(&one, 1), options).needs_ttl);
  // The worker's event twice in one batch is one entry: a hash of one is still the write's own.
  std::vector<const StatusUpdate*> twice{&sent, &sent};
  EXPECT_EQ(AddStatusWrite(write, twice, options), 2u);
  EXPECT_TRUE(ReadStatusWrite(std::span(replies).first(2), twice, options).needs_ttl);
  replies[1].integer = 2;
  EXPECT_FALSE(ReadStatusWrite(std::span(replies).first(2), twice, options).needs_ttl);
  // An error for HLEN (a key of another type) asks for nothing.
  replies[1].type = RedisReply::Type::kError;
  EXPECT_FALSE(ReadStatusWrite(std::span(replies).first(2), twice, options).needs_ttl);

  write.clear();
  AddStatusTtl(write, sent, options);
  EXPECT_EQ(Commands(write.resp()), (std::vector<Args>{{"PEXPIRE", key, "60000"}}));
}

// An event on no channel of pv's goes to the trigger's own hash, as every event did until 2026-12-06:
// the dispatcher's (naming the project) writes the send index too, a worker's does not.
TEST(StatusStoreTest, OnlyTheDispatchersEventsWriteTheSendIndexOfATriggersOwnHash) {
  StatusOptions options;
  options.ttl = std::chrono::seconds(60);
  StatusUpdate queued;
  StatusUpdate sent;
  std::string error;
  std::string no_channel_queued = kQueued;
  std::string no_channel_sent = kSent;
  for (std::string* e : {&no_channel_queued, &no_channel_sent})
    e->replace(e->find("\"email\""), 7, "\"fax\"");
  ASSERT_TRUE(StatusFromEvent(no_channel_queued, 512, queued, error)) << error;
  ASSERT_TRUE(StatusFromEvent(no_channel_sent, 512, sent, error)) << error;

  RedisCommands write;
  EXPECT_EQ(AddStatusWrite(write, queued, options), 4u);
  using Args = std::vector<std::string>;
  EXPECT_EQ(Commands(write.resp()), (std::vector<Args>{{"HSET", "pv:status:t-1", queued.field, queued.entry},
                                                       {"HLEN", "pv:status:t-1"},
                                                       {"SET", "pv:status:send:s-1", "t-1", "PX", "60000"},
                                                       {"PEXPIRE", "pv:status:t-1", "60000"}}));

  // A worker's event (no project) repeats none of it: its entry, the length, the TTL.
  write.clear();
  EXPECT_EQ(AddStatusWrite(write, sent, options), 3u);
  EXPECT_EQ(Commands(write.resp()), (std::vector<Args>{{"HSET", "pv:status:t-1", sent.field, sent.entry},
                                                       {"HLEN", "pv:status:t-1"},
                                                       {"PEXPIRE", "pv:status:t-1", "60000"}}));
  // What ReadStatusWrite reads is where it was: the entries' HSET (how many were new), then HLEN.
  std::vector<RedisReply> replies(3);
  for (auto& r : replies) r.type = RedisReply::Type::kInteger;
  replies[0].integer = 1;
  replies[1].integer = options.max_statuses + 3;
  const StatusUpdate* one = &sent;
  StatusWriteReply r = ReadStatusWrite(replies, std::span(&one, 1), options);
  EXPECT_EQ(r.applied, 1u);
  EXPECT_TRUE(r.check_limit);
  replies[0].integer = 0;
  replies[1].integer = options.max_statuses;
  r = ReadStatusWrite(replies, std::span(&one, 1), options);
  EXPECT_EQ(r.applied, 0u);
  EXPECT_FALSE(r.check_limit);
  // A trigger's own hash has its TTL with every write: none is asked for after.
  replies[1].integer = 1;
  EXPECT_FALSE(ReadStatusWrite(replies, std::span(&one, 1), options).needs_ttl);
}

// A send's events of one batch are one write: its entries in one HSET, one HLEN, one PEXPIRE (its
// dispatcher's event is one of them).
TEST(StatusStoreTest, ASendsEventsOfABatchAreOneWrite) {
  StatusOptions options;
  options.ttl = std::chrono::seconds(60);
  StatusUpdate queued;
  StatusUpdate again;
  StatusUpdate sent;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, queued, error)) << error;
  ASSERT_TRUE(StatusFromEvent(kQueued, 512, again, error)) << error;
  ASSERT_TRUE(StatusFromEvent(kSent, 512, sent, error)) << error;
  std::vector<const StatusUpdate*> updates{&queued, &again, &sent};
  RedisCommands write;
  EXPECT_EQ(AddStatusWrite(write, updates, options), 3u);
  using Args = std::vector<std::string>;
  const std::string key = "pv:status:s:" + SendIdFor("t-1", "email");
  EXPECT_EQ(Commands(write.resp()), (std::vector<Args>{{"HSET", key, queued.field, queued.entry, queued.field,
                                                        queued.entry, sent.field, sent.entry},
                                                       {"HLEN", key},
                                                       {"PEXPIRE", key, "60000"}}));
  std::vector<RedisReply> replies(4);
  for (auto& r : replies) r.type = RedisReply::Type::kInteger;
  replies[0].integer = 2;  // HSET counts a field set twice in one command once
  replies[1].integer = 2;
  StatusWriteReply r = ReadStatusWrite(replies, updates, options);
  EXPECT_EQ(r.applied, 2u);
  EXPECT_FALSE(r.check_limit);
  EXPECT_FALSE(r.needs_ttl);  // the dispatcher's event brought the TTL

  // Many events of one trigger (a replay, or forged; these on no channel, so in the trigger's own
  // hash, and naming no project, so no index): 256 entries a command, the replies summed.
  std::vector<StatusUpdate> many(300);
  updates.clear();
  for (size_t i = 0; i < many.size(); ++i) {
    const std::string event = fmt::format(
        R"({{"send_id":"s-1","trigger_id":"t-1","status":"delivered","receipt_id":"r-{}","at":"2026-06-10T15:00:00.000Z"}})",
        i);
    ASSERT_TRUE(StatusFromEvent(event, 512, many[i], error)) << error;
    updates.push_back(&many[i]);
  }
  write.clear();
  EXPECT_EQ(AddStatusWrite(write, updates, options), 4u);
  auto commands = Commands(write.resp());
  ASSERT_EQ(commands.size(), 4u);
  EXPECT_EQ(commands[0].size(), 2 + 2 * 256u);
  EXPECT_EQ(commands[1].size(), 2 + 2 * 44u);
  EXPECT_EQ(commands[1][2], many[256].field);
  EXPECT_EQ(commands[2], (Args{"HLEN", "pv:status:t-1"}));
  replies[0].integer = 256;
  replies[1].integer = 40;
  replies[2].integer = options.max_statuses + 1;
  r = ReadStatusWrite(replies, updates, options);
  EXPECT_EQ(r.applied, 296u);
  EXPECT_TRUE(r.check_limit);
  // Replies that are not what HSET answers count nothing; too few replies, nothing at all.
  replies[0].type = RedisReply::Type::kError;
  EXPECT_EQ(ReadStatusWrite(replies, updates, options).applied, 40u);
  EXPECT_FALSE(ReadStatusWrite(std::span(replies).first(2), updates, options).check_limit);
}

TEST(StatusStoreTest, TheSameMillisecondIsOrderedByPipelineStage) {
  std::string queued =
      R"({"send_id":"s","trigger_id":"t","status":"queued","at":"2026-06-10T15:00:00.000Z"})";
  std::string sent = R"({"send_id":"s","trigger_id":"t","status":"sent","at":"2026-06-10T15:00:00.000Z"})";
  std::string delivered =
      R"({"send_id":"s","trigger_id":"t","status":"delivered","at":"2026-06-10T15:00:00.000Z"})";
  EXPECT_EQ(Statuses(RenderTriggerStatus("t", Store({delivered, sent, queued}))),
            (std::vector<std::string>{"queued", "sent", "delivered"}));
}

TEST(StatusStoreTest, WhatIsNotAnEventIsRefused) {
  StatusUpdate u;
  std::string error;
  for (const char* bad :
       {"not json", "[]", R"({"send_id":"s","status":"sent","at":"2026-06-10T15:00:00.000Z"})",
        R"({"send_id":"s","trigger_id":"t/../x","status":"sent","at":"2026-06-10T15:00:00.000Z"})",
        R"({"send_id":"s","trigger_id":"t","status":"Sent!","at":"2026-06-10T15:00:00.000Z"})",
        R"({"send_id":"s","trigger_id":"t","status":"sent","at":"yesterday"})",
        R"({"send_id":"s","trigger_id":"t","status":"sent"})"}) {
    EXPECT_FALSE(StatusFromEvent(bad, 512, u, error)) << bad;
    EXPECT_FALSE(error.empty());
  }
}

TEST(StatusStoreTest, LongFieldsAreCutAtACharacterBoundary) {
  std::string error_text(100, 'x');
  error_text += "\xc3\xa9\xc3\xa9";  // é é: the cut at 101 bytes falls inside the first
  std::string event = R"({"send_id":"s","trigger_id":"t","status":"dead","error":")" + error_text +
                      R"(","at":"2026-06-10T15:00:00.000Z"})";
  StatusUpdate u;
  std::string error;
  ASSERT_TRUE(StatusFromEvent(event, 101, u, error)) << error;
  rapidjson::Document d;
  d.Parse(u.entry.c_str());
  ASSERT_FALSE(d.HasParseError());
  EXPECT_EQ(std::string(AsStringView(d["error"])), std::string(100, 'x'));
}

TEST(StatusStoreTest, IdsAreBounded) {
  EXPECT_TRUE(ValidStatusId("0190f1c2-7a3b-7c4d-9e5f-a1b2c3d4e5f6"));
  EXPECT_TRUE(ValidStatusId(std::string(64, 'a')));
  EXPECT_FALSE(ValidStatusId(std::string(65, 'a')));
  EXPECT_FALSE(ValidStatusId(""));
  EXPECT_FALSE(ValidStatusId("a b"));
  EXPECT_FALSE(ValidStatusId("send:x"));  // the send index's key would be ambiguous
  EXPECT_FALSE(ValidStatusId("%2e%2e"));
}

TEST(StatusStoreTest, AnEmptyOrMissingHashIsNotFound) {
  RedisReply empty;
  empty.type = RedisReply::Type::kArray;
  EXPECT_FALSE(RenderTriggerStatus("t", empty).found);
  RedisReply nil;
  EXPECT_FALSE(RenderTriggerStatus("t", nil).found);
  EXPECT_FALSE(RenderTriggerStatus("t", std::vector<RedisReply>{empty, nil, empty, nil}).found);
}

// A trigger's statuses from all its hashes, as the lookups read them: the entries of each in one
// time order; an event written into two of them (before and after 2026-12-06, read again across the
// upgrade) shown once; a hash read by the send's id alone names its trigger through its dispatcher's
// entry, and without that entry names none.
TEST(StatusStoreTest, ATriggersHashesAreOneStatusAndASendsHashNamesItsTrigger) {
  RedisReply nil;
  const std::vector<RedisReply> hashes{Store({kSent}), nil, nil, Store({kQueued, kSent}, true)};
  TriggerStatus s = RenderTriggerStatus("t-1", hashes);
  ASSERT_TRUE(s.found);
  EXPECT_EQ(s.trigger_id, "t-1");
  EXPECT_EQ(s.project, "demo");
  EXPECT_EQ(Statuses(s), (std::vector<std::string>{"queued", "sent"}));
  EXPECT_EQ(s.json.find("\"trigger_id\"", s.json.find("statuses")), std::string::npos) << s.json;

  TriggerStatus by_send = RenderTriggerStatus("", Store({kDelivered, kQueued}));
  ASSERT_TRUE(by_send.found);
  EXPECT_EQ(by_send.trigger_id, "t-1");
  EXPECT_EQ(by_send.json.substr(0, 18), R"({"trigger_id":"t-1)");
  EXPECT_EQ(Statuses(by_send), (std::vector<std::string>{"queued", "delivered"}));
  TriggerStatus unnamed = RenderTriggerStatus("", Store({kSent}));
  ASSERT_TRUE(unnamed.found);
  EXPECT_EQ(unnamed.trigger_id, "");
}

TEST(StatusStoreTest, SettingsAreReadAndChecked) {
  StatusOptions o = StatusOptions::FromConfig(
      Config::FromYaml("status:\n  ttl_seconds: 3600\n  max_statuses: 20\n  redis_timeout_ms: 50\n"));
  EXPECT_EQ(o.ttl.count(), 3600);
  EXPECT_EQ(o.max_statuses, 20);
  EXPECT_EQ(o.redis_timeout.count(), 50);
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("{}")).ttl.count(), 7 * 24 * 3600);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  ttl_seconds: 1\n")), ConfigError);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  redis_timeout_ms: 0\n")), ConfigError);
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("{}")).batch_wait.count(), 50);
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("status:\n  batch_wait_ms: 0\n")).batch_wait.count(),
            0);
  EXPECT_EQ(
      StatusOptions::FromConfig(Config::FromYaml("status:\n  batch_wait_ms: 10000\n")).batch_wait.count(),
      10000);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  batch_wait_ms: 10001\n")), ConfigError);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  batch_wait_ms: -1\n")), ConfigError);
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("{}")).fetch_min_bytes, 256 * 1024);
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("status:\n  fetch_min_bytes: 1\n")).fetch_min_bytes, 1);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  fetch_min_bytes: 0\n")), ConfigError);
  EXPECT_THROW(StatusOptions::FromConfig(Config::FromYaml("status:\n  fetch_min_bytes: 16777217\n")),
               ConfigError);
}

TEST(StatusStoreTest, TheStoreIsStatusRedisUrlElseRedisUrl) {
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("redis:\n  url: \"redis://marks:6379\"\n"
                                                       "status:\n  redis_url: \"redis://status:6380/1\"\n"))
                .redis_url,
            "redis://status:6380/1");
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("redis:\n  url: \"redis://marks:6379\"\n")).redis_url,
            "redis://marks:6379");
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("redis:\n  url: \"redis://marks:6379\"\n"
                                                       "status:\n  redis_url: \"\"\n"))
                .redis_url,
            "redis://marks:6379");
  EXPECT_EQ(StatusOptions::FromConfig(Config::FromYaml("{}")).redis_url, "");
}

}  // namespace
}  // namespace pv
