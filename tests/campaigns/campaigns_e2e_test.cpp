// Campaigns distributed on pv.campaigns, with the binaries against the dev broker: `pvctl campaigns
// apply` on an operator's "machine" (its own directory and config), then a pv-ingest and a
// pv-dispatcher whose catalog_dir is empty, which have never seen the files. A trigger is accepted
// (204, not 404) and rendered (the send on pv.send.email carries the rendered template); an edit
// applied while they run reaches both within seconds; a delete makes ingest answer 404 within
// seconds; records that are garbage, or whose template does not compile, are counted and ignored
// while the campaign's last good version goes on being served.
#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <filesystem>
#include <map>

#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/process_metrics.hpp"
#include "pv/testing/topic_reader.hpp"

namespace {

using namespace std::chrono_literals;
using pv::testing::ReadFile;
using pv::testing::Subprocess;
using pv::testing::TempDir;
using pv::testing::WaitFor;
using pv::testing::WriteFile;
using Clock = std::chrono::steady_clock;

// An email campaign whose html lives in a template file beside it: the record must carry it inline.
std::string CampaignYaml(const std::string& subject) {
  return "id: c-77\nproject: demo\nname: Receipt\nchannel: email\nprovider: log\ndefault_locale: en\n"
         "templates:\n  en:\n    from: \"Shop <shop@example.com>\"\n    subject: \"" +
         subject + "\"\n    html_file: templates/c-77.en.html\n";
}

// The value of `series` on the /metrics of the admin port `port`: 0 when absent, -1 when nothing answered.
double MetricValue(int port, const std::string& series) {
  auto [status, body] = pv::testing::HttpGet(port, "/metrics");
  if (status == -1) return -1;
  return pv::testing::MetricValue(body, series, 0);
}

class CampaignsE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = {{"PV_KAFKA_BROKERS", broker_.bootstrap()}};
    // The operator's machine: the campaign files and a config naming the providers.
    WriteFile(dir_.File("ops/catalog/c-77.yaml"), CampaignYaml("Receipt v1 for {{user.first_name}}"));
    WriteFile(dir_.File("ops/catalog/templates/c-77.en.html"), "<p>Hello {{user.first_name}}, v1</p>");
    WriteFile(dir_.File("ops/config.yaml"),
              "providers:\n  log: {type: log}\ncatalog_dir: " + dir_.File("ops/none") + "\n");
    // The replicas' machine: an empty catalog_dir and a key of project demo.
    std::filesystem::create_directories(dir_.File("replica/catalog"));
    key_ = pv::GenerateKey(pv::KeyScope::kSecret);
    pv::KeyStore::SaveFile(dir_.File("replica/keys.yaml"),
                           {{"key_1", "t", "demo", pv::KeyScope::kSecret, pv::HashKey(key_), "", "", ""}});
    ingest_admin_port_ = pv::testing::FreePort();
    WriteFile(dir_.File("replica/config.yaml"),
              "log: {level: info}\ncatalog_dir: " + dir_.File("replica/catalog") +
                  "\nkeys_file: " + dir_.File("replica/keys.yaml") +
                  "\nkafka:\n  consumer_properties: {session.timeout.ms: \"6000\", heartbeat.interval.ms: "
                  "\"500\"}\n"
                  "ingest: {host: 127.0.0.1, port: 0, admin_port: " +
                  std::to_string(ingest_admin_port_) +
                  ", shutdown_delay_ms: 0}\n"
                  "dispatcher: {admin_host: 127.0.0.1, admin_port: 0}\n");
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const char* log : {"replica/ingest.log", "replica/dispatcher.log", "ops/pvctl.out"}) {
        std::string text = ReadFile(dir_.File(log));
        if (text.size() > 8000) text = "..." + text.substr(text.size() - 8000);
        std::fprintf(stderr, "---- %s ----\n%s\n", log, text.c_str());
      }
    }
  }

  // pvctl on the operator's machine; its output (stdout and stderr) is appended to ops/pvctl.out.
  int Pvctl(std::vector<std::string> words) {
    words.insert(words.begin(), {PV_PVCTL_BIN, "--config", dir_.File("ops/config.yaml")});
    Subprocess p(words, env_, dir_.File("ops/pvctl.out"));
    return p.Wait(60s);
  }

  void StartReplicas() {
    ingest_ = std::make_unique<Subprocess>(
        std::vector<std::string>{PV_INGEST_BIN, "--config", dir_.File("replica/config.yaml"), "--port-file",
                                 dir_.File("replica/ingest.port")},
        env_, dir_.File("replica/ingest.log"));
    dispatcher_ = std::make_unique<Subprocess>(
        std::vector<std::string>{PV_DISPATCHER_BIN, "--config", dir_.File("replica/config.yaml"),
                                 "--port-file", dir_.File("replica/dispatcher.port")},
        env_, dir_.File("replica/dispatcher.log"));
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir_.File("replica/ingest.port")).empty(); }, 20s));
    ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir_.File("replica/dispatcher.port")).empty(); }, 20s));
    ingest_port_ = std::stoi(ReadFile(dir_.File("replica/ingest.port")));
    dispatcher_admin_port_ = std::stoi(ReadFile(dir_.File("replica/dispatcher.port")));
  }

  // POSTs a trigger of c-77; returns the status and sets the trigger id of a 204.
  int Trigger(const std::string& external_id, std::string* trigger_id = nullptr) {
    httplib::Client c("127.0.0.1", ingest_port_);
    c.set_read_timeout(10, 0);
    auto res = c.Post(
        "/api/client/campaigns/c-77/trigger", {{"Authorization", "Bearer " + key_}},
        R"({"user":{"external_id":")" + external_id + R"(","email":"ana@example.com","first_name":"Ana"}})",
        "application/json");
    if (res && trigger_id != nullptr) *trigger_id = res->get_header_value("X-Trigger-Id");
    return res ? res->status : -1;
  }

  // The content of the send the dispatcher produced for `trigger_id`, or an empty object.
  rapidjson::Document SendFor(const std::string& trigger_id, std::chrono::milliseconds timeout = 30s) {
    rapidjson::Document found;
    found.SetObject();
    sends_.ReadUntil(
        [&](const std::vector<pv::testing::Record>& records) {
          for (const auto& r : records) {
            rapidjson::Document d;
            d.Parse(r.value.c_str());
            if (!d.HasParseError() && pv::FindString(d, "trigger_id").value_or("") == trigger_id) {
              found.CopyFrom(d["content"], found.GetAllocator());
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }

  std::string Field(const rapidjson::Value& content, const char* name) {
    return std::string(pv::FindString(content, name).value_or("<absent>"));
  }

  void Produce(const std::string& key, const std::string& value) {
    pv::kafka::Settings settings;
    settings.brokers = broker_.bootstrap();
    settings.properties["log_level"] = "3";
    pv::kafka::Producer producer(settings, {});
    auto group = std::make_shared<pv::kafka::DeliveryGroup>(1);
    ASSERT_EQ(producer.Produce("pv.campaigns", key, value, {}, group), RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_TRUE(group->Wait(Clock::now() + 20s));
    ASSERT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  pv::testing::DevBroker broker_{1};
  TempDir dir_{"pv-campaigns-e2e"};
  std::map<std::string, std::string> env_;
  std::string key_;
  int ingest_admin_port_ = 0;
  int ingest_port_ = 0;
  int dispatcher_admin_port_ = 0;
  std::unique_ptr<Subprocess> ingest_;
  std::unique_ptr<Subprocess> dispatcher_;
  pv::testing::TopicReader sends_{broker_.bootstrap(), {"pv.send.email"}};
};

TEST_F(CampaignsE2E, AppliedOnOneMachineServedByReplicasThatNeverSawTheFiles) {
  ASSERT_EQ(Pvctl({"campaigns", "apply", dir_.File("ops/catalog")}), 0);
  StartReplicas();

  // Accepted at once (ingest read the topic before serving) and rendered by the dispatcher.
  std::string trigger;
  ASSERT_EQ(Trigger("u-1", &trigger), 204);
  auto content = SendFor(trigger);
  EXPECT_EQ(Field(content, "subject"), "Receipt v1 for Ana");
  EXPECT_EQ(Field(content, "html"), "<p>Hello Ana, v1</p>");

  // An edit applied while they run: the template file alone changes.
  WriteFile(dir_.File("ops/catalog/templates/c-77.en.html"), "<p>Hello {{user.first_name}}, v2</p>");
  ASSERT_EQ(Pvctl({"campaigns", "apply", dir_.File("ops/catalog")}), 0);
  auto applied = Clock::now();
  bool edited = WaitFor(
      [&] {
        std::string id;
        if (Trigger("u-2", &id) != 204) return false;
        return Field(SendFor(id, 5s), "html") == "<p>Hello Ana, v2</p>";
      },
      10s);
  EXPECT_TRUE(edited);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - applied);
  EXPECT_LT(took, 5s) << "an edit must reach the replicas within seconds";
  std::printf("an applied edit was accepted and rendered %lld ms after pvctl exited\n",
              static_cast<long long>(took.count()));

  // Records that are not campaigns, for this id or another: counted, ignored, v2 still served.
  Produce("c-77", "{not json");
  Produce("junk id", "[]");
  // Valid in shape but its template does not compile: the dispatcher keeps v2 (ingest, which renders
  // nothing, takes the record; docs/architecture.md says so).
  std::string broken =
      R"({"v":1,"id":"c-77","updated_at_ms":)" +
      std::to_string(pv::ToUnixMillis(std::chrono::system_clock::now()) + 1000) +
      R"(,"applied_from":"test","campaign":{"id":"c-77","project":"demo","channel":"email","provider":"log",)"
      R"("templates":{"en":{"from":"a@b.co","subject":"{{#open}} never closed","html":"x"}}}})";
  Produce("c-77", broken);
  EXPECT_TRUE(WaitFor(
      [&] {
        return MetricValue(ingest_admin_port_, R"(pv_ingest_campaign_records_total{result="invalid"})") ==
                   2 &&
               MetricValue(dispatcher_admin_port_,
                           R"(pv_dispatcher_campaign_records_total{result="invalid"})") == 3;
      },
      10s))
      << MetricValue(ingest_admin_port_, R"(pv_ingest_campaign_records_total{result="invalid"})") << " "
      << MetricValue(dispatcher_admin_port_, R"(pv_dispatcher_campaign_records_total{result="invalid"})");
  ASSERT_EQ(Trigger("u-3", &trigger), 204);
  EXPECT_EQ(Field(SendFor(trigger), "html"), "<p>Hello Ana, v2</p>");
  EXPECT_TRUE(ingest_->Running());
  EXPECT_TRUE(dispatcher_->Running());

  // A delete: ingest answers 404 within seconds.
  ASSERT_EQ(Pvctl({"campaigns", "delete", "c-77"}), 0);
  auto deleted = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return Trigger("u-4") == 404; }, 10s));
  EXPECT_LT(Clock::now() - deleted, 5s);

  EXPECT_EQ(ingest_->Stop(SIGTERM, 15s), 0);
  EXPECT_EQ(dispatcher_->Stop(SIGTERM, 20s), 0);
}

// A replica's own file newer than the topic's record wins, and a reload of the files (SIGHUP) keeps
// the campaigns that only the topic has.
TEST_F(CampaignsE2E, ANewerFileWinsAndAReloadKeepsTheTopicsCampaigns) {
  ASSERT_EQ(Pvctl({"campaigns", "apply", dir_.File("ops/catalog")}), 0);
  StartReplicas();
  std::string trigger;
  ASSERT_EQ(Trigger("u-1", &trigger), 204);
  EXPECT_EQ(Field(SendFor(trigger), "subject"), "Receipt v1 for Ana");

  // Another campaign arrives in the replica's own catalog_dir; SIGHUP reloads the dispatcher's files.
  WriteFile(dir_.File("replica/catalog/other.yaml"),
            "id: other\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.co, subject: s, text: t}\n");
  ASSERT_EQ(::kill(dispatcher_->pid(), SIGHUP), 0);
  for (const char* log : {"replica/dispatcher.log", "replica/ingest.log"}) {
    ASSERT_TRUE(
        WaitFor([&] { return ReadFile(dir_.File(log)).find("catalog_reloaded") != std::string::npos; }, 10s))
        << log;
  }
  ASSERT_EQ(Trigger("u-2", &trigger), 204) << "ingest's reload of its files keeps the topic's campaign";
  EXPECT_EQ(Field(SendFor(trigger), "subject"), "Receipt v1 for Ana") << "so does the dispatcher's";

  // The replica's own file of c-77, written after the apply: it wins on both.
  WriteFile(dir_.File("replica/catalog/c-77.yaml"),
            "id: c-77\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.co, subject: \"Local {{user.first_name}}\", text: t}\n");
  ASSERT_EQ(::kill(dispatcher_->pid(), SIGHUP), 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string id;
        return Trigger("u-3", &id) == 204 && Field(SendFor(id, 5s), "subject") == "Local Ana";
      },
      15s));
  EXPECT_EQ(ingest_->Stop(SIGTERM, 15s), 0);
  EXPECT_EQ(dispatcher_->Stop(SIGTERM, 20s), 0);
}

// A deployment without pv.campaigns: the replicas start at once from their files (no wait for a
// topic that is not there), say once that it is missing, and follow it from its beginning once it
// is created.
TEST(CampaignsWithoutTheTopic, IngestStartsFromItsFilesAndFollowsTheTopicOnceItExists) {
  pv::testing::DevBroker broker(1);
  // The mock cluster would create any topic a client asks for: its metadata answers say that
  // pv.campaigns does not exist instead, as a Kafka without the topic and without auto-creation does.
  ASSERT_EQ(broker.Control("/topics/error?name=pv.campaigns&error=UNKNOWN_TOPIC_OR_PART"), 200);
  TempDir dir("pv-campaigns-missing");
  std::map<std::string, std::string> env = {{"PV_KAFKA_BROKERS", broker.bootstrap()}};
  std::string key = pv::GenerateKey(pv::KeyScope::kSecret);
  pv::KeyStore::SaveFile(dir.File("keys.yaml"),
                         {{"key_1", "t", "demo", pv::KeyScope::kSecret, pv::HashKey(key), "", "", ""}});
  WriteFile(
      dir.File("config.yaml"),
      "log: {level: info}\ncatalog_dir: " PV_SOURCE_DIR "/catalog\nkeys_file: " + dir.File("keys.yaml") +
          "\ningest: {host: 127.0.0.1, port: 0, admin_port: 0, shutdown_delay_ms: 0}\n"
          "providers:\n  log: {type: log}\n");
  auto started = Clock::now();
  Subprocess ingest({PV_INGEST_BIN, "--config", dir.File("config.yaml"), "--port-file", dir.File("port")},
                    env, dir.File("ingest.log"));
  ASSERT_TRUE(WaitFor([&] { return !ReadFile(dir.File("port")).empty(); }, 20s));
  int port = std::stoi(ReadFile(dir.File("port")));
  auto post = [&](const std::string& campaign) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(10, 0);
    auto res = c.Post("/api/client/campaigns/" + campaign + "/trigger", {{"Authorization", "Bearer " + key}},
                      R"({"user":{"external_id":"u","email":"a@b.co"}})", "application/json");
    return res ? res->status : -1;
  };
  ASSERT_TRUE(WaitFor([&] { return post("44") == 204; }, 10s)) << ReadFile(dir.File("ingest.log"));
  EXPECT_LT(Clock::now() - started, 5s) << "no waiting for a topic that does not exist";
  EXPECT_NE(
      ReadFile(dir.File("ingest.log")).find(R"("event":"campaigns_topic_missing","topic":"pv.campaigns")"),
      std::string::npos);

  ASSERT_EQ(broker.Control("/topics/error?name=pv.campaigns&error=0"), 200);  // now it exists
  WriteFile(dir.File("ops/c-77.yaml"), CampaignYaml("Receipt"));
  WriteFile(dir.File("ops/templates/c-77.en.html"), "<p>hi</p>");
  Subprocess apply({PV_PVCTL_BIN, "--config", dir.File("config.yaml"), "campaigns", "apply", dir.File("ops")},
                   env, dir.File("pvctl.out"));
  ASSERT_EQ(apply.Wait(60s), 0) << ReadFile(dir.File("pvctl.out")) << ReadFile(dir.File("ingest.log"));
  EXPECT_TRUE(WaitFor([&] { return post("c-77") == 204; }, 10s)) << ReadFile(dir.File("ingest.log"));
  EXPECT_EQ(post("44"), 204);
  EXPECT_EQ(ingest.Stop(SIGTERM, 15s), 0);
}

}  // namespace
