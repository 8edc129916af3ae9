// pvctl against real peers: the dev broker (a Kafka-protocol broker in its own process), a real
// redis-server, and for the end-to-end replay a real email worker delivering through a SendGrid fake
// that first fails every send (so the worker dead-letters them) and is then fixed.
//
// Most commands run in-process through pv::pvctl::Run (the same code as the binary, with stdout and
// stderr apart); the ones that need a signal run the pvctl binary as a child process.
#include "pvctl.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <filesystem>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include "pv/delay_ladder.hpp"
#include "pv/dispatcher/suppression.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/fakes.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/kafka.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/records.hpp"
#include "pv/testing/redis_server.hpp"
#include "pv/testing/services.hpp"
#include "pv/testing/topic_reader.hpp"
#include "test/pvctl_runner.hpp"

namespace pv::pvctl {
namespace {

using namespace std::chrono_literals;
using pv::testing::DevBroker;
using pv::testing::ParseJson;
using pv::testing::Record;
using pv::testing::RedisServer;
using pv::testing::SendSpec;
using pv::testing::SendValue;
using pv::testing::TempDir;
using pv::testing::TopicReader;

using Result = pv::testing::PvctlResult;

struct DlqRecord {
  std::string campaign = "44";
  std::string error_code = "bad_request";
  std::string failed_at = "2026-03-01T10:00:00.000Z";
  int attempt = 1;
};

DlqRecord Dlq(std::string campaign = "44", std::string error_code = "bad_request",
              std::string failed_at = "2026-03-01T10:00:00.000Z", int attempt = 1) {
  return {std::move(campaign), std::move(error_code), std::move(failed_at), attempt};
}

class PvctlTest : public ::testing::Test {
 protected:
  void SetUp() override { WriteConfig(""); }

  void WriteConfig(const std::string& extra) {
    pv::testing::WriteFile(config_path_,
                           fmt::format("kafka:\n  brokers: \"{}\"\n  properties:\n    log_level: \"3\"\n{}",
                                       broker_.bootstrap(), extra));
  }

  Result Pvctl(std::vector<std::string> words) {
    words.insert(words.begin(), {"--config", config_path_});
    return pv::testing::RunPvctl(words);
  }

  // The same with `input` as standard input (suppress add|remove -).
  Result PvctlWithInput(std::vector<std::string> words, const std::string& input) {
    words.insert(words.begin(), {"--config", config_path_});
    return pv::testing::RunPvctl(words, input);
  }

  // The pvctl binary as an operator runs it; stdout and stderr apart.
  Result PvctlBinary(const std::vector<std::string>& words, const std::string& input_file = "/dev/null") {
    std::string out = dir_.File("pvctl.out"), err = dir_.File("pvctl.err");
    std::vector<std::string> argv = {
        "/bin/sh",    "-c",       "exec \"$0\" \"$@\" <" + input_file + " >" + out + " 2>" + err,
        PV_PVCTL_BIN, "--config", config_path_};
    argv.insert(argv.end(), words.begin(), words.end());
    pv::testing::Subprocess p(argv);
    Result r;
    r.rc = p.Wait(30s);
    r.out = pv::testing::ReadFile(out);
    r.err = pv::testing::ReadFile(err);
    return r;
  }

  // Produces DLQ-shaped records: a send value as the dispatcher wrote it, the worker's DLQ headers.
  // `batch_each`: each record in its own produce request (a batch of one), so a small fetch size
  // returns few records at a time.
  std::vector<std::string> FillDlq(const std::vector<DlqRecord>& records, bool batch_each = false) {
    const std::string topic = "pv.dlq.email";
    kafka::Settings settings;
    settings.brokers = broker_.bootstrap();
    settings.properties["log_level"] = "3";
    kafka::Producer producer(settings, {});
    auto group = std::make_shared<kafka::DeliveryGroup>(static_cast<int>(records.size()));
    std::vector<std::string> ids;
    for (const auto& r : records) {
      SendSpec spec;
      spec.campaign_id = r.campaign;
      spec.external_id = "user-" + std::to_string(ids.size());
      spec.attempt = r.attempt;
      std::string id;
      std::string value = SendValue(spec, &id);
      ids.push_back(id);
      std::string attempt = std::to_string(r.attempt);
      std::vector<kafka::Header> headers = {{ladder::kErrorCode, r.error_code},
                                            {ladder::kError, "provider said no"},
                                            {ladder::kAttempt, attempt},
                                            {ladder::kProvider, "log"},
                                            {ladder::kFailedAt, r.failed_at}};
      EXPECT_EQ(producer.Produce(topic, spec.external_id, value, headers, group), RD_KAFKA_RESP_ERR_NO_ERROR);
      if (batch_each) producer.Flush(5s);
    }
    EXPECT_TRUE(group->Wait(std::chrono::steady_clock::now() + 20s));
    EXPECT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
    return ids;
  }

  void Produce(const std::string& topic, const std::string& key, const std::string& value,
               const std::vector<kafka::Header>& headers) {
    kafka::Settings settings;
    settings.brokers = broker_.bootstrap();
    settings.properties["log_level"] = "3";
    kafka::Producer producer(settings, {});
    auto group = std::make_shared<kafka::DeliveryGroup>(1);
    ASSERT_EQ(producer.Produce(topic, key, value, headers, group), RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 20s));
    ASSERT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  static rapidjson::Document Json(const std::string& text) { return ParseJson(text); }

  DevBroker broker_;
  TempDir dir_{"pv-pvctl-test"};
  std::string config_path_ = dir_.File("config.yaml");
};

std::multiset<std::string> SendIds(const std::vector<Record>& records) {
  std::multiset<std::string> out;
  for (const auto& r : records) {
    rapidjson::Document d;
    d.Parse(r.value.c_str());
    out.insert(std::string(FindString(d, "send_id").value_or("")));
  }
  return out;
}

// ---- keys ----

TEST_F(PvctlTest, KeysCreatedOnAnotherMachineAreListedAndRevokedHere) {
  std::string here = dir_.File("here-keys.yaml");
  std::string there = dir_.File("there-keys.yaml");
  Result created =
      Pvctl({"--json", "keys", "create", "--project", "demo", "--name", "remote", "--keys-file", there});
  ASSERT_EQ(created.rc, kExitOk) << created.err;
  std::string id = Json(created.out)["id"].GetString();

  // Here: not in this file, listed from the topic.
  Result list = Pvctl({"--json", "keys", "list", "--keys-file", here});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  auto keys = Json(list.out);
  ASSERT_EQ(keys.Size(), 1U) << list.out;
  EXPECT_EQ(std::string(keys[0]["id"].GetString()), id);
  EXPECT_TRUE(keys[0]["revoked_at"].IsNull());

  Result revoke = Pvctl({"keys", "revoke", id, "--keys-file", here});
  ASSERT_EQ(revoke.rc, kExitOk) << revoke.err;
  EXPECT_NE(revoke.out.find("Revoked key " + id), std::string::npos) << revoke.out;

  // There: its file still says active, the merged view says revoked (the newer state).
  EXPECT_EQ(pv::testing::ReadFile(there).find("revoked_at"), std::string::npos);
  Result list_there = Pvctl({"--json", "keys", "list", "--keys-file", there});
  ASSERT_EQ(list_there.rc, kExitOk) << list_there.err;
  auto after = Json(list_there.out);
  ASSERT_EQ(after.Size(), 1U);
  EXPECT_TRUE(after[0]["revoked_at"].IsString()) << list_there.out;
  EXPECT_GT(after[0]["updated_at_ms"].GetInt64(), Json(created.out)["updated_at_ms"].GetInt64());

  // On the topic: the create, then the revoke with a later version.
  TopicReader reader(broker_.bootstrap(), {"pv.keys"});
  const auto& records = reader.ReadUntil([](const auto& r) { return r.size() >= 2; }, 15s);
  ASSERT_EQ(records.size(), 2U);
  ApiKey first, second;
  std::string error;
  ASSERT_TRUE(ParseKeyRecord(records[0].value, first, error)) << error;
  ASSERT_TRUE(ParseKeyRecord(records[1].value, second, error)) << error;
  EXPECT_EQ(records[1].key, id);
  EXPECT_FALSE(first.revoked());
  EXPECT_TRUE(second.revoked());
  EXPECT_GT(second.updated_at_ms, first.updated_at_ms);

  // A second revoke republishes the same state and says so.
  Result again = Pvctl({"keys", "revoke", id, "--keys-file", there});
  ASSERT_EQ(again.rc, kExitOk) << again.err;
  EXPECT_NE(again.out.find("already revoked"), std::string::npos) << again.out;
  EXPECT_NE(pv::testing::ReadFile(there).find("revoked_at"), std::string::npos) << "there's file caught up";

  Result unknown = Pvctl({"keys", "revoke", "key_00000000", "--keys-file", here});
  EXPECT_EQ(unknown.rc, kExitNotFound) << unknown.err;
}

TEST_F(PvctlTest, KeysDeleteWritesATombstoneAndTheKeyIsGoneEverywhere) {
  std::string here = dir_.File("here-keys.yaml");
  std::string there = dir_.File("there-keys.yaml");
  Result created =
      Pvctl({"--json", "keys", "create", "--project", "demo", "--name", "gone", "--keys-file", there});
  ASSERT_EQ(created.rc, kExitOk) << created.err;
  std::string id = Json(created.out)["id"].GetString();
  Result kept =
      Pvctl({"--json", "keys", "create", "--project", "demo", "--name", "kept", "--keys-file", there});
  ASSERT_EQ(kept.rc, kExitOk) << kept.err;

  Result del = Pvctl({"keys", "delete", id, "--keys-file", here});
  ASSERT_EQ(del.rc, kExitOk) << del.err;

  TopicReader reader(broker_.bootstrap(), {"pv.keys"});
  const auto& records = reader.ReadUntil([](const auto& r) { return r.size() >= 3; }, 15s);
  ASSERT_EQ(records.size(), 3U);
  EXPECT_EQ(records[2].key, id);
  EXPECT_TRUE(records[2].tombstone) << "a null value, not an empty one";
  ASSERT_EQ(records[2].headers.count(kKeyUpdatedAtHeader), 1U);
  EXPECT_GT(std::stoll(records[2].headers.at(kKeyUpdatedAtHeader)),
            Json(created.out)["updated_at_ms"].GetInt64());

  // There, whose file still lists the key: gone from the merged view, and from the file at its next
  // rewrite by pvctl.
  Result list = Pvctl({"--json", "keys", "list", "--keys-file", there});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  auto keys = Json(list.out);
  ASSERT_EQ(keys.Size(), 1U) << list.out;
  EXPECT_EQ(std::string(keys[0]["name"].GetString()), "kept");
  EXPECT_NE(pv::testing::ReadFile(there).find(id), std::string::npos);
  Result revoke = Pvctl({"keys", "revoke", id, "--keys-file", there});
  EXPECT_EQ(revoke.rc, kExitOk) << revoke.err;
  EXPECT_NE(revoke.out.find("was deleted"), std::string::npos) << revoke.out;
  EXPECT_EQ(pv::testing::ReadFile(there).find(id), std::string::npos);

  Result unknown = Pvctl({"keys", "delete", "key_00000000", "--keys-file", here});
  EXPECT_EQ(unknown.rc, kExitNotFound) << unknown.err;
}

// The issue's case: a revoke that cannot reach the topic is not a success, yet closes what it can.
TEST_F(PvctlTest, KeysRevokeWithTheBrokerDownExitsOneAndRevokesTheLocalFile) {
  std::string file = dir_.File("keys.yaml");
  Result created =
      Pvctl({"--json", "keys", "create", "--project", "demo", "--name", "web", "--keys-file", file});
  ASSERT_EQ(created.rc, kExitOk) << created.err;
  std::string id = Json(created.out)["id"].GetString();
  ASSERT_EQ(broker_.Control("/brokers/all/down"), 200);
  Result revoke = Pvctl({"keys", "revoke", id, "--keys-file", file, "--timeout", "2"});
  EXPECT_EQ(revoke.rc, kExitFailed) << revoke.out;
  EXPECT_NE(revoke.err.find("NOT revoked on the topic"), std::string::npos) << revoke.err;
  EXPECT_NE(pv::testing::ReadFile(file).find("revoked_at"), std::string::npos);
  Result del = Pvctl({"keys", "delete", id, "--keys-file", file, "--timeout", "2"});
  EXPECT_EQ(del.rc, kExitFailed);
  EXPECT_NE(pv::testing::ReadFile(file).find(id), std::string::npos) << "nothing deleted";
  ASSERT_EQ(broker_.Control("/brokers/all/up"), 200);
  // Rerun when the broker is back: the file's revoke is the newest state, and is published.
  Result rerun = Pvctl({"keys", "revoke", id, "--keys-file", file});
  ASSERT_EQ(rerun.rc, kExitOk) << rerun.err;
  EXPECT_NE(rerun.out.find("already revoked"), std::string::npos) << rerun.out;
  TopicReader reader(broker_.bootstrap(), {"pv.keys"});
  const auto& records = reader.ReadUntil([](const auto& r) { return r.size() >= 2; }, 15s);
  ASSERT_EQ(records.size(), 2U);
  ApiKey last;
  std::string error;
  ASSERT_TRUE(ParseKeyRecord(records[1].value, last, error)) << error;
  EXPECT_TRUE(last.revoked());
}

// ---- topics ----

TEST_F(PvctlTest, TopicsListShowsPartitionsRecordsAndGroupLag) {
  FillDlq({Dlq(), Dlq(), Dlq()});
  pv::testing::ProduceAll(broker_.bootstrap(), "pv.send.email", {{"k1", "{}"}, {"k2", "{}"}});
  Result r = Pvctl({"topics", "list", "--json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  auto d = Json(r.out);
  std::map<std::string, const rapidjson::Value*> topics;
  for (const auto& t : d["topics"].GetArray()) topics[t["name"].GetString()] = &t;
  ASSERT_EQ(topics.count("pv.send.email"), 1U) << r.out;
  EXPECT_EQ((*topics["pv.send.email"])["partition_count"].GetInt(), 6);
  EXPECT_EQ((*topics["pv.dlq.email"])["partition_count"].GetInt(), 3);
  EXPECT_EQ((*topics["pv.dlq.email"])["records"].GetInt(), 3);
  EXPECT_EQ((*topics["pv.send.email"])["records"].GetInt(), 2);
  bool found = false;
  for (const auto& g : d["groups"].GetArray()) {
    if (std::string(g["group"].GetString()) == "pv-email-worker") {
      found = true;
      EXPECT_EQ(g["lag"].GetInt(), 2);  // nothing committed yet: every record is lag
      EXPECT_EQ(g["committed_partitions"].GetInt(), 0);
    }
  }
  EXPECT_TRUE(found) << r.out;

  Result text = Pvctl({"topics", "list"});
  ASSERT_EQ(text.rc, kExitOk) << text.err;
  EXPECT_NE(text.out.find("pv.dlq.email"), std::string::npos);
  EXPECT_NE(text.out.find("pv-email-worker"), std::string::npos);
}

TEST_F(PvctlTest, TopicsCreateTwiceIsHarmlessOnTheDevBrokersTopics) {
  for (int run = 0; run < 2; ++run) {
    Result r = Pvctl({"topics", "create", "--json"});
    ASSERT_EQ(r.rc, kExitOk) << r.err << r.out;
    auto d = Json(r.out);
    EXPECT_EQ(d["created"].GetInt(), 0);
    EXPECT_EQ(d["failed"].GetInt(), 0);
    EXPECT_EQ(d["existing"].GetInt(), static_cast<int>(d["topics"].Size()));
    EXPECT_GE(d["topics"].Size(), 14U);
  }
}

TEST(PvctlTopicsCreate, OnTheDevBrokerSaysItHasNoAdminApiAndHowToCreateTopics) {
  DevBroker broker(1, {"--no-default-topics", "--topic", "pv.triggers:2"});
  TempDir dir("pv-pvctl-test");
  auto start = std::chrono::steady_clock::now();
  Result r = pv::testing::RunPvctl({"--brokers", broker.bootstrap(), "topics", "create"});
  EXPECT_EQ(r.rc, kExitFailed) << r.out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);  // said at once, not after a timeout
  EXPECT_NE(r.err.find("dev broker"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("POST"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("/topics?name="), std::string::npos) << r.err;
  // What exists is shown, with the difference from the config.
  EXPECT_NE(r.out.find("pv.triggers"), std::string::npos);
  EXPECT_NE(r.out.find("config says 6"), std::string::npos) << r.out;
  // --dry-run only says what it would create.
  Result dry = pv::testing::RunPvctl({"--brokers", broker.bootstrap(), "topics", "create", "--dry-run"});
  EXPECT_EQ(dry.rc, kExitOk) << dry.err;
  EXPECT_NE(dry.out.find("would-create"), std::string::npos) << dry.out;
}

// ---- tail ----

TEST_F(PvctlTest, TailShowsKeyHeadersAndTheIndentedValue) {
  auto ids = FillDlq({Dlq("44", "invalid_recipient"), Dlq()});
  Result r = Pvctl({"tail", "pv.dlq.email"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("pv-error-code: invalid_recipient"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pv-failed-at: 2026-03-01T10:00:00.000Z"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("key=user-0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"send_id\": \"" + ids[1] + "\""), std::string::npos) << r.out;  // indented JSON
  EXPECT_NE(r.out.find("pv.dlq.email ["), std::string::npos);

  Result json = Pvctl({"tail", "pv.dlq.email", "--json", "--limit", "1"});
  ASSERT_EQ(json.rc, kExitOk) << json.err;
  std::istringstream lines(json.out);
  std::string line;
  int count = 0;
  while (std::getline(lines, line)) {
    auto d = Json(line);
    EXPECT_EQ(std::string(d["topic"].GetString()), "pv.dlq.email");
    EXPECT_TRUE(d["headers"].HasMember("pv-error-code"));
    EXPECT_TRUE(d["value"].IsObject());  // JSON values stay JSON
    EXPECT_GE(d["offset"].GetInt(), 0);
    ++count;
  }
  EXPECT_EQ(count, 1);

  Result all = Pvctl({"tail", "pv.dlq.email", "--from-beginning", "--json"});
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 2);
  Result missing = Pvctl({"tail", "pv.no-such-topic"});
  EXPECT_EQ(missing.rc, kExitFailed);
  EXPECT_NE(missing.err.find("does not exist"), std::string::npos) << missing.err;
}

TEST_F(PvctlTest, TailFollowPrintsNewRecordsUntilInterrupted) {
  FillDlq({Dlq()});
  std::string out = dir_.File("tail.out"), err = dir_.File("tail.err");
  pv::testing::Subprocess tail({"/bin/sh", "-c", "exec \"$0\" \"$@\" >" + out + " 2>" + err, PV_PVCTL_BIN,
                                "--config", config_path_, "tail", "pv.dlq.email", "--follow", "--json"});
  auto lines = [&] {
    std::string text = pv::testing::ReadFile(out);
    return std::count(text.begin(), text.end(), '\n');
  };
  ASSERT_TRUE(pv::testing::WaitFor([&] { return lines() == 1; }, 15s)) << pv::testing::ReadFile(err);
  FillDlq({Dlq("44", "late")});
  ASSERT_TRUE(pv::testing::WaitFor([&] { return lines() == 2; }, 15s)) << pv::testing::ReadFile(err);
  EXPECT_NE(pv::testing::ReadFile(out).find("\"pv-error-code\":\"late\""), std::string::npos);
  EXPECT_EQ(tail.Stop(SIGINT, 10s), 0) << pv::testing::ReadFile(err);
}

// Records as the pipeline writes them: sends carry their ids in headers and value, events in the
// value only (keyed by send_id), triggers in a header and the value.
TEST_F(PvctlTest, TailFiltersByKeySendIdAndTriggerIdAndLimitCountsMatches) {
  auto event = [](const std::string& send_id, const std::string& trigger_id, const std::string& status) {
    return fmt::format(R"({{"v":1,"send_id":"{}","trigger_id":"{}","status":"{}"}})", send_id, trigger_id,
                       status);
  };
  for (const auto& [send_id, trigger_id, status] :
       std::vector<std::tuple<std::string, std::string, std::string>>{{"s-1", "t-1", "queued"},
                                                                      {"s-2", "t-2", "queued"},
                                                                      {"s-1", "t-1", "sent"},
                                                                      {"s-3", "t-1", "queued"},
                                                                      {"s-2", "t-2", "failed"},
                                                                      {"s-1", "t-1", "opened"}}) {
    Produce("pv.events", send_id, event(send_id, trigger_id, status), {});
  }
  Produce("pv.send.email", "user-7", R"({"v":1,"attempt":1})",
          {{"pv-send-id", "s-7"}, {"pv-trigger-id", "t-7"}});
  Produce("pv.send.email", "user-8", R"({"v":1,"send_id":"s-8","trigger_id":"t-8","attempt":1})",
          {{"pv-send-id", "s-8"}, {"pv-trigger-id", "t-8"}});

  auto statuses = [](const Result& r) {
    std::vector<std::string> out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
      auto d = ParseJson(line);
      out.push_back(d["value"].HasMember("status") ? d["value"]["status"].GetString() : d["key"].GetString());
    }
    return out;
  };
  using V = std::vector<std::string>;
  // By send_id in the value: every record of s-1, in order.
  Result s1 = Pvctl({"tail", "pv.events", "--send-id", "s-1", "--json"});
  ASSERT_EQ(s1.rc, kExitOk) << s1.err;
  EXPECT_EQ(statuses(s1), (V{"queued", "sent", "opened"})) << s1.out;
  // --limit counts matching records: the last two of s-1, not the last two records.
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.events", "--send-id", "s-1", "--limit", "2", "--json"})),
            (V{"sent", "opened"}));
  // ...and from the beginning, the first two matches.
  EXPECT_EQ(statuses(Pvctl(
                {"tail", "pv.events", "--trigger-id", "t-1", "--from-beginning", "--limit", "2", "--json"})),
            (V{"queued", "sent"}));
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.events", "--trigger-id", "t-1", "--json", "--limit", "100"})),
            (V{"queued", "sent", "queued", "opened"}));
  // By key, and filters combined.
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.events", "--key", "s-2", "--json"})), (V{"queued", "failed"}));
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.events", "--key", "s-2", "--trigger-id", "t-1", "--json"})), V{});
  // A send's ids in its headers only, or in both.
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.send.email", "--send-id", "s-7", "--json"})), V{"user-7"});
  EXPECT_EQ(statuses(Pvctl({"tail", "pv.send.email", "--trigger-id", "t-8", "--json"})), V{"user-8"});
  Result none = Pvctl({"tail", "pv.send.email", "--send-id", "s-9"});
  EXPECT_EQ(none.rc, kExitOk) << none.err;
  EXPECT_TRUE(none.out.empty()) << none.out;
  // Text output shows the matching record.
  Result text = Pvctl({"tail", "pv.events", "--send-id", "s-3"});
  EXPECT_NE(text.out.find("key=s-3"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("key=s-1"), std::string::npos) << text.out;
}

TEST_F(PvctlTest, TailFollowWithAFilterPrintsOnlyMatchingNewRecords) {
  Produce("pv.events", "s-1", R"({"send_id":"s-1","status":"queued"})", {});
  Produce("pv.events", "s-2", R"({"send_id":"s-2","status":"queued"})", {});
  std::string out = dir_.File("tail.out"), err = dir_.File("tail.err");
  pv::testing::Subprocess tail({"/bin/sh", "-c", "exec \"$0\" \"$@\" >" + out + " 2>" + err, PV_PVCTL_BIN,
                                "--config", config_path_, "tail", "pv.events", "--follow", "--json",
                                "--send-id", "s-2"});
  auto lines = [&] {
    std::string text = pv::testing::ReadFile(out);
    return std::count(text.begin(), text.end(), '\n');
  };
  ASSERT_TRUE(pv::testing::WaitFor([&] { return lines() == 1; }, 15s)) << pv::testing::ReadFile(err);
  Produce("pv.events", "s-1", R"({"send_id":"s-1","status":"sent"})", {});
  Produce("pv.events", "s-2", R"({"send_id":"s-2","status":"sent"})", {});
  Produce("pv.events", "s-1", R"({"send_id":"s-1","status":"opened"})", {});
  ASSERT_TRUE(pv::testing::WaitFor([&] { return lines() == 2; }, 15s)) << pv::testing::ReadFile(err);
  // The record after the last match has arrived too (one partition, in order) and was not printed.
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(tail.Stop(SIGINT, 10s), 0) << pv::testing::ReadFile(err);
  std::string text = pv::testing::ReadFile(out);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
  EXPECT_EQ(text.find("\"s-1\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"status\":\"sent\""), std::string::npos) << text;
}

// ---- suppress ----

TEST_F(PvctlTest, SuppressAddListRemoveInTheKeysTheDispatcherReads) {
  RedisServer redis;
  WriteConfig(fmt::format("redis:\n  url: \"{}\"\n", redis.url()));
  Result add = Pvctl({"suppress", "add", "--channel", "email", "Bob@Example.COM", "ana@example.com"});
  ASSERT_EQ(add.rc, kExitOk) << add.err;
  EXPECT_NE(add.out.find("suppressed 2 new"), std::string::npos) << add.out;
  Result again = Pvctl({"suppress", "add", "--channel", "email", "bob@example.com", "--json"});
  ASSERT_EQ(again.rc, kExitOk) << again.err;
  EXPECT_EQ(Json(again.out)["already_present"].GetInt(), 1);
  ASSERT_EQ(Pvctl({"suppress", "add", "--channel", "text", "--user", "--project", "demo", "u-123"}).rc,
            kExitOk);
  ASSERT_EQ(Pvctl({"suppress", "add", "--channel", "push", "tok-1"}).rc, kExitOk);

  // The dispatcher's layout, read with plain Redis commands...
  EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:email", "address:bob@example.com"}), "1");
  EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:text", "user:demo:u-123"}), "1");
  EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:push", "address:tok-1"}), "1");
  // ...and by the dispatcher's own check.
  std::string error;
  dispatcher::SuppressionStore store(redis.url(), 2s);
  std::vector<dispatcher::SuppressionQuery> queries = {
      {Channel::kEmail, "demo", "u-9", "BOB@example.com"},
      {Channel::kSms, "demo", "u-123", "+34600111222"},
      {Channel::kSms, "other", "u-123", "+34600111222"},
  };
  std::vector<dispatcher::Suppressed> answers;
  ASSERT_TRUE(store.Check(queries, answers, error)) << error;
  EXPECT_EQ(answers[0], dispatcher::Suppressed::kAddress);
  EXPECT_EQ(answers[1], dispatcher::Suppressed::kUser);
  EXPECT_EQ(answers[2], dispatcher::Suppressed::kNo);

  Result list = Pvctl({"suppress", "list", "--json"});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  auto d = Json(list.out);
  ASSERT_EQ(d.Size(), 3U);
  EXPECT_EQ(std::string(d[0]["channel"].GetString()), "email");
  ASSERT_EQ(d[0]["members"].Size(), 2U);
  EXPECT_EQ(std::string(d[0]["members"][0]["value"].GetString()), "ana@example.com");
  EXPECT_EQ(std::string(d[1]["members"][0]["type"].GetString()), "user");
  EXPECT_EQ(std::string(d[1]["members"][0]["external_id"].GetString()), "u-123");
  Result text = Pvctl({"suppress", "list", "--channel", "email"});
  EXPECT_NE(text.out.find("address  bob@example.com"), std::string::npos) << text.out;

  Result remove =
      Pvctl({"suppress", "remove", "--channel", "email", "BOB@example.com", "nobody@example.com"});
  ASSERT_EQ(remove.rc, kExitOk) << remove.err;
  EXPECT_NE(remove.out.find("removed 1, 1 were not suppressed"), std::string::npos) << remove.out;
  EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:email", "address:bob@example.com"}), "0");
  ASSERT_EQ(Pvctl({"suppress", "remove", "--channel", "text", "user:demo:u-123"}).rc, kExitOk);
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:text"}), "0");

  redis.Stop();
  Result down = Pvctl({"suppress", "list"});
  EXPECT_EQ(down.rc, kExitFailed);
  EXPECT_NE(down.err.find("redis"), std::string::npos) << down.err;
}

// `suppress add --channel email -`: values from standard input, one per line, blank lines skipped;
// one bad value and nothing is written.
TEST_F(PvctlTest, SuppressAddAndRemoveReadValuesFromStandardInput) {
  RedisServer redis;
  WriteConfig(fmt::format("redis:\n  url: \"{}\"\n", redis.url()));
  Result add = PvctlWithInput({"suppress", "add", "--channel", "email", "-", "--json"},
                              "Bob@Example.com\n\n  ana@example.com \r\n\t\ncarl@example.com");
  ASSERT_EQ(add.rc, kExitOk) << add.err;
  EXPECT_EQ(Json(add.out)["added"].GetInt(), 3) << add.out;
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:email"}), "3");
  for (const char* member :
       {"address:bob@example.com", "address:ana@example.com", "address:carl@example.com"}) {
    EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:email", member}), "1") << member;
  }

  // A bad line: usage error naming it, and nothing written (dan is not added).
  Result bad = PvctlWithInput({"suppress", "add", "--channel", "email", "-"}, "dan@example.com\nnope\n");
  EXPECT_EQ(bad.rc, kExitUsage);
  EXPECT_NE(bad.err.find("'nope' is not an email address"), std::string::npos) << bad.err;
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:email"}), "3");

  // Users of a project, with values on the command line and from standard input; then removed.
  Result users = PvctlWithInput(
      {"suppress", "add", "--channel", "push", "--user", "--project", "demo", "u-1", "-"}, "u-2\nu-3\n");
  ASSERT_EQ(users.rc, kExitOk) << users.err;
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:push"}), "3");
  EXPECT_EQ(redis.Command({"SISMEMBER", "pv:suppress:push", "user:demo:u-3"}), "1");

  // Through the binary, standard input from a file of 3000 lines (more than one SADD's worth).
  std::string list;
  for (int i = 0; i < 3000; ++i) list += fmt::format("user{}@example.com\n", i);
  pv::testing::WriteFile(dir_.File("list.txt"), list);
  Result many = PvctlBinary({"suppress", "add", "--channel", "email", "-"}, dir_.File("list.txt"));
  ASSERT_EQ(many.rc, kExitOk) << many.err;
  EXPECT_NE(many.out.find("suppressed 3000 new, 0 already suppressed"), std::string::npos) << many.out;
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:email"}), "3003");
  Result removed = PvctlBinary({"suppress", "remove", "--channel", "email", "-"}, dir_.File("list.txt"));
  ASSERT_EQ(removed.rc, kExitOk) << removed.err;
  EXPECT_NE(removed.out.find("removed 3000, 0 were not suppressed"), std::string::npos) << removed.out;
  EXPECT_EQ(redis.Command({"SCARD", "pv:suppress:email"}), "3");
}

// Each suppression's reason and time: `add` records manual, feedback's reasons show as written, and a
// member from before reasons were kept (a bare SADD) reads as unknown; remove forgets the reason too.
TEST_F(PvctlTest, SuppressListShowsEachReasonAndTime) {
  RedisServer redis;
  WriteConfig(fmt::format("redis:\n  url: \"{}\"\n", redis.url()));
  ASSERT_EQ(Pvctl({"suppress", "add", "--channel", "email", "bob@example.com"}).rc, kExitOk);
  redis.Command({"SADD", "pv:suppress:email", "address:old@example.com"});
  redis.Command(SuppressCommand(Channel::kEmail, "address:ana@example.com",
                                SuppressionWhyJson("bounce", "2026-12-05T10:00:01.513Z", "sg")));
  Result list = Pvctl({"suppress", "list", "--channel", "email", "--json"});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  auto d = Json(list.out);
  const auto& members = d[0]["members"];
  ASSERT_EQ(members.Size(), 3U);  // sorted: ana, bob, old
  EXPECT_STREQ(members[0]["reason"].GetString(), "bounce");
  EXPECT_STREQ(members[0]["at"].GetString(), "2026-12-05T10:00:01.513Z");
  EXPECT_STREQ(members[0]["source"].GetString(), "sg");
  EXPECT_STREQ(members[1]["reason"].GetString(), "manual");
  EXPECT_TRUE(ParseTimestamp(members[1]["at"].GetString()).has_value());
  EXPECT_STREQ(members[2]["reason"].GetString(), "unknown");
  EXPECT_FALSE(members[2].HasMember("at"));
  Result text = Pvctl({"suppress", "list", "--channel", "email"});
  EXPECT_NE(text.out.find("bounce       2026-12-05T10:00:01.513Z"), std::string::npos) << text.out;
  ASSERT_EQ(Pvctl({"suppress", "remove", "--channel", "email", "ana@example.com"}).rc, kExitOk);
  EXPECT_EQ(redis.Command({"HEXISTS", "pv:suppress:email:why", "address:ana@example.com"}), "0");
}

// Compose keeps suppressions in their own Redis (noeviction): pvctl writes there, not to redis.url.
TEST_F(PvctlTest, SuppressWritesToSuppressionRedisUrlWhenSet) {
  RedisServer marks;
  RedisServer suppression;
  WriteConfig(fmt::format("redis:\n  url: \"{}\"\nsuppression:\n  redis_url: \"{}\"\n", marks.url(),
                          suppression.url()));
  Result add = Pvctl({"suppress", "add", "--channel", "email", "bob@example.com"});
  ASSERT_EQ(add.rc, kExitOk) << add.err;
  EXPECT_EQ(suppression.Command({"SISMEMBER", "pv:suppress:email", "address:bob@example.com"}), "1");
  EXPECT_EQ(marks.Command({"EXISTS", "pv:suppress:email"}), "0");
  Result list = Pvctl({"suppress", "list", "--channel", "email"});
  EXPECT_NE(list.out.find("bob@example.com"), std::string::npos) << list.out;
}

// The suppression instance of compose at its cap: noeviction refuses the new member (exit 1, Redis's
// own message) and keeps every old one; reads go on.
TEST_F(PvctlTest, SuppressAtMaxmemoryWithNoevictionRefusesTheWriteAndKeepsTheList) {
  RedisServer redis;
  WriteConfig(fmt::format("suppression:\n  redis_url: \"{}\"\n", redis.url()));
  ASSERT_EQ(Pvctl({"suppress", "add", "--channel", "email", "bob@example.com"}).rc, kExitOk);
  redis.Command({"CONFIG", "SET", "maxmemory-policy", "noeviction"});
  redis.Command({"CONFIG", "SET", "maxmemory", "1"});  // one byte: below any used memory
  Result full = Pvctl({"suppress", "add", "--channel", "email", "ana@example.com"});
  EXPECT_EQ(full.rc, kExitFailed);
  EXPECT_NE(full.err.find("OOM"), std::string::npos) << full.err;
  Result list = Pvctl({"suppress", "list", "--channel", "email"});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  EXPECT_NE(list.out.find("bob@example.com"), std::string::npos) << list.out;
  redis.Command({"CONFIG", "SET", "maxmemory", "0"});
}

// ---- replay ----

// The issue's case, as an operator typed it: `--error_code` and `--dryrun` (two typos) once started a
// real, unfiltered replay. Now: exit 2, both named, and nothing published or saved.
TEST_F(PvctlTest, ReplayWithMistypedOptionsExitsTwoAndPublishesNothing) {
  FillDlq({Dlq("44", "bad_credentials"), Dlq("44", "timeout"), Dlq()});
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});
  Result r = PvctlBinary({"replay", "--from", "pv.dlq.email", "--error_code", "bad_credentials", "--dryrun"});
  EXPECT_EQ(r.rc, kExitUsage);
  EXPECT_EQ(r.err,
            "pvctl replay: unknown option '--error_code' (did you mean '--error-code'?), unknown option "
            "'--dryrun' (did you mean '--dry-run'?); run 'pvctl replay --help'\n");
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_TRUE(sends.ReadFor(2s).empty()) << "a replay published";
  // Nothing saved either: the corrected command, a real one, starts from the beginning and finds
  // exactly the one bad_credentials record.
  Result fixed = Pvctl({"replay", "--from", "pv.dlq.email", "--error-code", "bad_credentials", "--json"});
  ASSERT_EQ(fixed.rc, kExitOk) << fixed.err;
  auto d = Json(fixed.out);
  EXPECT_FALSE(d["resumed"].GetBool());
  EXPECT_EQ(d["replayed"].GetInt(), 1);
  EXPECT_EQ(sends.ReadUntil([](const auto& v) { return !v.empty(); }, 10s).size(), 1U);
  // The unfiltered replay the typos would have run was not run either: the other two are still due.
  Result rest = Pvctl({"replay", "--from", "pv.dlq.email", "--dry-run", "--json"});
  EXPECT_FALSE(Json(rest.out)["resumed"].GetBool()) << rest.out;
}

TEST_F(PvctlTest, ReplayDryRunCountsWithoutPublishingOrSaving) {
  FillDlq({Dlq("44"), Dlq("44", "timeout"), Dlq("45"), Dlq()});
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});
  for (int run = 0; run < 2; ++run) {  // the same answer twice: a dry run saves no position
    Result r = Pvctl({"replay", "--from", "pv.dlq.email", "--campaign", "44", "--dry-run", "--json"});
    ASSERT_EQ(r.rc, kExitOk) << r.err;
    auto d = Json(r.out);
    EXPECT_EQ(d["matched"].GetInt(), 3);
    EXPECT_EQ(d["replayed"].GetInt(), 0);
    EXPECT_EQ(d["skipped"].GetInt(), 1);
    EXPECT_EQ(d["scanned"].GetInt(), 4);
    EXPECT_TRUE(d["dry_run"].GetBool());
    EXPECT_FALSE(d["resumed"].GetBool());
  }
  Result codes =
      Pvctl({"replay", "--from", "pv.dlq.email", "--error-code", "timeout", "--dry-run", "--json"});
  EXPECT_EQ(Json(codes.out)["matched"].GetInt(), 1);
  EXPECT_TRUE(sends.ReadFor(1s).empty());
}

TEST_F(PvctlTest, ReplayRepublishesMatchesWithAttemptResetAndASecondRunIsANoOp) {
  auto ids = FillDlq({Dlq("44", "bad_request", "2026-03-01T10:00:00.000Z", 8), Dlq("45"),
                      Dlq("44", "bad_request", "2026-03-01T12:00:00.000Z"),
                      Dlq("44", "bad_request", "2026-03-01T10:00:00.000Z", 3), Dlq("44", "timeout")});
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});
  std::vector<std::string> words = {
      "replay",       "--from",      "pv.dlq.email", "--campaign",           "44",
      "--error-code", "bad_request", "--until",      "2026-03-01T11:00:00Z", "--json"};
  Result r = Pvctl(words);
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  auto d = Json(r.out);
  EXPECT_EQ(d["matched"].GetInt(), 2);
  EXPECT_EQ(d["replayed"].GetInt(), 2);
  EXPECT_EQ(d["skipped"].GetInt(), 3);
  EXPECT_EQ(std::string(d["to"].GetString()), "pv.send.email");
  EXPECT_EQ(std::string(d["stopped"].GetString()), "end");

  const auto& got = sends.ReadUntil([](const auto& v) { return v.size() >= 2; }, 10s);
  ASSERT_EQ(got.size(), 2U);
  EXPECT_EQ(SendIds(got), (std::multiset<std::string>{ids[0], ids[3]}));
  for (const auto& rec : got) {
    auto v = Json(rec.value);
    EXPECT_EQ(v["attempt"].GetInt(), 1);             // reset; the worker starts over
    EXPECT_EQ(rec.headers.count("pv-attempt"), 0U);  // or it would take the DLQ's attempt instead
    EXPECT_EQ(rec.headers.count("pv-error-code"), 0U);
    ASSERT_EQ(rec.headers.count("pv-replayed-at"), 1U);
    EXPECT_TRUE(ParseTimestamp(rec.headers.at("pv-replayed-at")).has_value());
    EXPECT_EQ(rec.headers.at("pv-send-id"), std::string(v["send_id"].GetString()));
    EXPECT_EQ(rec.headers.at("pv-replayed-from").rfind("pv.dlq.email/", 0), 0U);
    EXPECT_FALSE(rec.key.empty());  // the key (external id) travels with the record
  }

  // The same replay again: it resumes at the saved position, which is the end.
  Result second = Pvctl(words);
  ASSERT_EQ(second.rc, kExitOk) << second.err;
  auto d2 = Json(second.out);
  EXPECT_TRUE(d2["resumed"].GetBool());
  EXPECT_EQ(d2["scanned"].GetInt(), 0);
  EXPECT_EQ(d2["replayed"].GetInt(), 0);
  EXPECT_EQ(sends.ReadFor(1s).size(), 2U);

  // A new dead letter after the replay is picked up by the same command, and only it.
  auto later = FillDlq({Dlq()});
  Result third = Pvctl(words);
  EXPECT_EQ(Json(third.out)["replayed"].GetInt(), 1) << third.out;
  EXPECT_EQ(SendIds(sends.ReadUntil([](const auto& v) { return v.size() >= 3; }, 10s)),
            (std::multiset<std::string>{ids[0], ids[3], later[0]}));
  // Text output: the summary line names the counts.
  Result text = Pvctl({"replay", "--from", "pv.dlq.email", "--dry-run", "--restart"});
  EXPECT_NE(text.out.find("matched 6, replayed 0, skipped 0"), std::string::npos) << text.out;
}

// The dispatcher dead-letters triggers it cannot turn into a send (unknown campaign...) into the same
// DLQ, marked pv-target: pv.triggers; they go back there, byte for byte.
TEST_F(PvctlTest, ReplayRoutesDeadLetteredTriggersBackToTheirTarget) {
  auto ids = FillDlq({Dlq()});
  const std::string trigger =
      R"({"v":1,"trigger_id":"t-77","project":"demo","campaign_id":"99","received_at":"2026-03-01T10:00:00.000Z",)"
      R"("user":{"external_id":"u-77","email":"u77@example.com"},"event":{}})";
  Produce("pv.dlq.email", "u-77", trigger,
          {{ladder::kErrorCode, "unknown_campaign"},
           {ladder::kFailedAt, "2026-03-01T10:00:00.000Z"},
           {ladder::kTarget, "pv.triggers"},
           {"pv-trigger-id", "t-77"}});
  Produce("pv.dlq.email", "u-78", trigger, {{ladder::kTarget, "pv.no-such-topic"}});
  TopicReader triggers(broker_.bootstrap(), {"pv.triggers"});
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});

  Result r = Pvctl({"replay", "--from", "pv.dlq.email", "--json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  auto d = Json(r.out);
  EXPECT_EQ(d["matched"].GetInt(), 2);
  EXPECT_EQ(d["replayed"].GetInt(), 2);
  EXPECT_EQ(d["unroutable"].GetInt(), 1);
  EXPECT_EQ(d["targets"]["pv.triggers"].GetInt(), 1);
  EXPECT_EQ(d["targets"]["pv.send.email"].GetInt(), 1);
  const auto& t = triggers.ReadUntil([](const auto& v) { return !v.empty(); }, 10s);
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t[0].value, trigger);  // no attempt added to a trigger
  EXPECT_EQ(t[0].key, "u-77");
  EXPECT_EQ(t[0].headers.at("pv-trigger-id"), "t-77");
  EXPECT_EQ(t[0].headers.count("pv-target"), 0U);
  EXPECT_EQ(SendIds(sends.ReadUntil([](const auto& v) { return !v.empty(); }, 10s)),
            std::multiset<std::string>{ids[0]});
}

TEST_F(PvctlTest, ReplayStoppedByLimitResumesWithoutDoubles) {
  std::vector<DlqRecord> records(30);
  auto ids = FillDlq(records);
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});
  std::vector<std::string> words = {"replay", "--from", "pv.dlq.email", "--json"};
  auto first_words = words;
  first_words.insert(first_words.end(), {"--limit", "11"});
  Result first = Pvctl(first_words);
  ASSERT_EQ(first.rc, kExitOk) << first.err;
  auto d = Json(first.out);
  EXPECT_EQ(d["replayed"].GetInt(), 11);
  EXPECT_EQ(std::string(d["stopped"].GetString()), "limit");
  EXPECT_EQ(d["remaining"].GetInt(), 19);

  Result rest = Pvctl(words);
  ASSERT_EQ(rest.rc, kExitOk) << rest.err;
  EXPECT_EQ(Json(rest.out)["replayed"].GetInt(), 19);
  EXPECT_TRUE(Json(rest.out)["resumed"].GetBool());
  const auto& got = sends.ReadUntil([](const auto& v) { return v.size() >= 30; }, 10s);
  sends.ReadFor(500ms);
  EXPECT_EQ(got.size(), 30U);
  auto seen = SendIds(got);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 30U);  // each once
  EXPECT_EQ(std::multiset<std::string>(ids.begin(), ids.end()), seen);
}

TEST_F(PvctlTest, ReplayInterruptedBySignalResumesWithoutDoubles) {
  std::vector<DlqRecord> records(240);
  auto ids = FillDlq(records, true);
  // Slow the replay down (a record per partition per fetch, 60 ms per broker round trip) so the
  // signal lands mid-way.
  WriteConfig("  consumer_properties:\n    max.partition.fetch.bytes: \"1500\"\n");
  ASSERT_EQ(broker_.Control("/brokers/all/rtt?ms=60"), 200);
  std::string out = dir_.File("replay.out"), err = dir_.File("replay.err");
  pv::testing::Subprocess replay({"/bin/sh", "-c", "exec \"$0\" \"$@\" >" + out + " 2>" + err, PV_PVCTL_BIN,
                                  "--config", config_path_, "replay", "--from", "pv.dlq.email", "--json"});
  TopicReader sends(broker_.bootstrap(), {"pv.send.email"});
  ASSERT_GE(sends.ReadUntil([](const auto& v) { return v.size() >= 5; }, 20s).size(), 5U)
      << pv::testing::ReadFile(err);
  int rc = replay.Stop(SIGTERM, 20s);
  EXPECT_EQ(rc, kExitFailed) << pv::testing::ReadFile(err);
  auto d = Json(pv::testing::ReadFile(out));
  EXPECT_EQ(std::string(d["stopped"].GetString()), "interrupted");
  int first = d["replayed"].GetInt();
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 240) << "the replay finished before the signal: the test proves nothing";

  ASSERT_EQ(broker_.Control("/brokers/all/rtt?ms=0"), 200);
  Result rest = Pvctl({"replay", "--from", "pv.dlq.email", "--json"});
  ASSERT_EQ(rest.rc, kExitOk) << rest.err;
  EXPECT_EQ(Json(rest.out)["replayed"].GetInt(), 240 - first);
  const auto& got = sends.ReadUntil([](const auto& v) { return v.size() >= 240; }, 20s);
  sends.ReadFor(500ms);
  EXPECT_EQ(got.size(), 240U);
  EXPECT_EQ(SendIds(got), std::multiset<std::string>(ids.begin(), ids.end()));
}

// The issue's scenario: a provider fails every send (the worker dead-letters them), is fixed, and the
// dead letters are replayed: each send is delivered exactly once; replaying them all again (--restart)
// delivers nothing more, because the worker finds each send_id already sent in Redis.
TEST_F(PvctlTest, ReplayThroughARealWorkerDeliversEachSendOnceAndAgainNothing) {
  RedisServer redis;
  pv::testing::ProviderFake fake({"--sendgrid-key", "SG.test-key"});
  fake.Script(R"({"rules":[{"status":400,"body":{"errors":[{"message":"account suspended"}]},"times":-1}]})");
  TempDir worker_dir("pv-pvctl-worker");
  pv::testing::WorkerProcess worker(
      Channel::kEmail,
      fmt::format(
          "kafka:\n  brokers: \"{}\"\n  properties:\n    log_level: \"3\"\n    session.timeout.ms: \"6000\"\n"
          "    heartbeat.interval.ms: \"500\"\nredis:\n  url: \"{}\"\nlog:\n  level: warn\n"
          "workers:\n  admin_host: 127.0.0.1\n  admin_port: 0\n"
          "providers:\n  sendgrid:\n    type: sendgrid\n    base_url: \"{}\"\n    api_key: SG.test-key\n"
          "    timeout_ms: 5000\n",
          broker_.bootstrap(), redis.url(), fake.url()),
      worker_dir.File("worker.log"));
  worker.Start();

  constexpr int kSends = 12;
  std::vector<std::pair<std::string, std::string>> values;
  std::set<std::string> ids;
  for (int i = 0; i < kSends; ++i) {
    SendSpec spec;
    spec.provider = "sendgrid";
    spec.external_id = "user-" + std::to_string(i);
    std::string id;
    values.emplace_back(spec.external_id, SendValue(spec, &id));
    ids.insert(id);
  }
  pv::testing::ProduceAll(broker_.bootstrap(), "pv.send.email", values);
  TopicReader dlq(broker_.bootstrap(), {"pv.dlq.email"});
  const auto& dead = dlq.ReadUntil([](const auto& v) { return v.size() >= kSends; }, 60s);
  ASSERT_EQ(dead.size(), static_cast<size_t>(kSends)) << worker.Log();
  EXPECT_EQ(dead[0].headers.at("pv-error-code"), "bad_request");
  EXPECT_EQ(fake.Stat("accepted"), 0);

  fake.Reset();  // the provider is fixed
  Result dry =
      Pvctl({"replay", "--from", "pv.dlq.email", "--error-code", "bad_request", "--dry-run", "--json"});
  EXPECT_EQ(Json(dry.out)["matched"].GetInt(), kSends) << dry.out << dry.err;
  Result r = Pvctl({"replay", "--from", "pv.dlq.email", "--error-code", "bad_request", "--json"});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_EQ(Json(r.out)["replayed"].GetInt(), kSends);
  ASSERT_TRUE(pv::testing::WaitFor([&] { return fake.Stat("accepted") >= kSends; }, 30s)) << worker.Log();

  // Everything again, from the start of the DLQ: the sends reach the worker a second time...
  TopicReader events(broker_.bootstrap(), {"pv.events"});
  Result again =
      Pvctl({"replay", "--from", "pv.dlq.email", "--error-code", "bad_request", "--restart", "--json"});
  ASSERT_EQ(again.rc, kExitOk) << again.err;
  EXPECT_EQ(Json(again.out)["replayed"].GetInt(), kSends);
  auto deduped = [](const std::vector<Record>& v) {
    int n = 0;
    for (const auto& e : v) n += e.value.find("\"status\":\"deduped\"") != std::string::npos;
    return n;
  };
  ASSERT_TRUE(deduped(events.ReadUntil([&](const auto& v) { return deduped(v) >= kSends; }, 30s)) >= kSends)
      << worker.Log();
  // ...and the provider got each send exactly once in all.
  auto stats = fake.Stats();
  EXPECT_EQ(stats["accepted"].GetInt(), kSends);
  EXPECT_EQ(stats["accepted_keys"].GetInt(), kSends);
  EXPECT_EQ(stats["duplicate_accepts"].GetInt(), 0);
  EXPECT_EQ(fake.Stat("requests"), kSends);
  auto requests = fake.Requests();
  for (const auto& req : requests.GetArray()) {
    const auto& headers = req["headers"];
    ASSERT_TRUE(headers.HasMember("idempotency-key"));
    EXPECT_EQ(ids.count(headers["idempotency-key"].GetString()), 1U);
  }
  worker.Stop(SIGTERM, 20s);
}

}  // namespace
}  // namespace pv::pvctl
