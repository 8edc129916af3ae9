// Ingest against the dev broker: every status code of the trigger API, what lands in pv.triggers
// after a 204, what never lands after anything else, and 503 (never 204) when the brokers are down.
#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <thread>

#include "pv/ingest/server.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/log.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/raw_http.hpp"
#include "pv/testing/topic_reader.hpp"

namespace pv::ingest {
namespace {

using pv::testing::DevBroker;
using pv::testing::Record;
using pv::testing::TempDir;
using pv::testing::TopicReader;
using namespace std::chrono_literals;

constexpr const char* kSeedEmail =
    R"({"user":{"external_id":"EXTERNAL_ID","email":"test@test.com","timezone":"America/Chicago","locale":"en"},)"
    R"("event":{"random_field":"value"}})";

// A catalog and key file for one test server: the demo campaigns plus the odd ones the status
// codes need, and one key of each kind.
struct Fixture {
  std::string secret;
  std::string revoked;
  std::string public_key;
  std::string other_project;
  std::string catalog_dir;
  std::string keys_file;

  explicit Fixture(const TempDir& dir) {
    catalog_dir = dir.File("catalog");
    keys_file = dir.File("keys.yaml");
    std::filesystem::create_directories(catalog_dir);
    std::filesystem::copy(PV_SOURCE_DIR "/catalog/demo", catalog_dir + "/demo",
                          std::filesystem::copy_options::recursive);
    auto campaign = [&](const std::string& id, const std::string& project, const std::string& extra) {
      pv::testing::WriteFile(catalog_dir + "/extra/" + id + ".yaml",
                             "id: \"" + id + "\"\nproject: " + project + "\nchannel: email\nprovider: log\n" +
                                 extra + "templates:\n  en: {from: a@b.co, subject: s, text: t}\n");
    };
    campaign("50", "demo", "enabled: false\n");
    campaign("51", "demo", "deleted: true\n");
    campaign("52", "other", "");
    secret = GenerateKey(KeyScope::kSecret);
    revoked = GenerateKey(KeyScope::kSecret);
    public_key = GenerateKey(KeyScope::kPublic);
    other_project = GenerateKey(KeyScope::kSecret);
    std::vector<ApiKey> keys = {
        {"key_1", "test", "demo", KeyScope::kSecret, HashKey(secret), "", "", ""},
        {"key_2", "old", "demo", KeyScope::kSecret, HashKey(revoked), "", "", "2026-01-01T00:00:00Z"},
        {"key_3", "browser", "demo", KeyScope::kPublic, HashKey(public_key), "", "", ""},
        {"key_4", "other", "other", KeyScope::kSecret, HashKey(other_project), "", "", ""},
    };
    KeyStore::SaveFile(keys_file, keys);
  }
};

// An in-process IngestServer on a free port, serving on a background thread.
class RunningServer {
 public:
  RunningServer(IngestOptions options, const std::string& bootstrap,
                std::map<std::string, std::string> producer_properties = {}, bool wait_ready = true) {
    kafka::Settings settings;
    settings.brokers = bootstrap;
    settings.producer_properties = std::move(producer_properties);
    settings.properties["log_level"] = "3";
    server_ = std::make_unique<IngestServer>(std::move(options), settings);
    port_ = server_->Bind();
    thread_ = std::thread([this] {
      server_->Run();
      finished_.store(true);
    });
    // Serving from here on: Run() has started the front (readiness says so), so no test races it.
    if (wait_ready)
      pv::testing::WaitFor(
          [this] {
            auto r = Admin().Get("/readyz");
            return r && r->status == 200;
          },
          10s);
  }
  bool Finished() const { return finished_.load(); }
  ~RunningServer() {
    server_->Stop();
    thread_.join();
  }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(15, 0);
    return c;
  }
  httplib::Client Admin() const {
    httplib::Client c("127.0.0.1", server_->admin_port());
    c.set_read_timeout(15, 0);
    return c;
  }
  int port() const { return port_; }
  IngestServer& server() { return *server_; }

 private:
  std::unique_ptr<IngestServer> server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> finished_{false};
};

IngestOptions TestOptions(const Fixture& f) {
  IngestOptions o;
  o.front.host = "127.0.0.1";
  o.front.port = 0;
  o.admin_host = "127.0.0.1";
  o.admin_port = 0;
  o.shutdown_delay = 0ms;
  o.catalog_dir = f.catalog_dir;
  o.keys_file = f.keys_file;
  o.front.max_body_bytes = 64 * 1024;
  o.max_batch = 5;
  o.reload_interval = 100ms;
  o.ack_timeout = 5000ms;
  return o;
}

// A broker, catalog, keys and server of a test's own, for tests that set the broker down or break
// the server: `adjust` changes the test options, `producer_properties` go to the producer.
struct OwnServer {
  explicit OwnServer(const std::string& name, const std::function<void(IngestOptions&)>& adjust = {},
                     std::map<std::string, std::string> producer_properties = {})
      : dir(name), fixture(dir) {
    pv::log::SetLevel(pv::log::Level::kError);
    IngestOptions options = TestOptions(fixture);
    if (adjust) adjust(options);
    running = std::make_unique<RunningServer>(options, broker.bootstrap(), std::move(producer_properties));
  }
  RunningServer& server() { return *running; }

  DevBroker broker{1};
  TempDir dir;
  Fixture fixture;
  std::unique_ptr<RunningServer> running;
};

httplib::Headers Auth(const std::string& key) {
  return {{"Authorization", "Bearer " + key}};
}

rapidjson::Document Json(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  return d;
}

class IngestTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pv::log::SetLevel(pv::log::Level::kWarn);
    broker_ = new DevBroker(1);
    dir_ = new TempDir("pv-ingest-test");
    fixture_ = new Fixture(*dir_);
    server_ = new RunningServer(TestOptions(*fixture_), broker_->bootstrap());
  }
  static void TearDownTestSuite() {
    delete server_;
    delete fixture_;
    delete dir_;
    delete broker_;
  }

  httplib::Result Post(const std::string& path, const std::string& body, const std::string& key,
                       httplib::Headers extra = {}, const char* content_type = "application/json") {
    auto client = server_->Client();
    httplib::Headers headers = Auth(key);
    headers.insert(extra.begin(), extra.end());
    return client.Post(path.c_str(), headers, body, content_type);
  }

  // Every record in pv.triggers whose user.external_id is `external_id`, read until `count` are seen
  // (or for 3 s when expecting none).
  std::vector<Record> RecordsFor(const std::string& external_id, size_t count) {
    TopicReader reader(broker_->bootstrap(), {"pv.triggers"});
    auto matching = [&](const std::vector<Record>& all) {
      std::vector<Record> out;
      for (const auto& r : all) {
        if (r.key == external_id) out.push_back(r);
      }
      return out;
    };
    if (count == 0) return matching(reader.ReadFor(3s));
    return matching(reader.ReadUntil([&](const auto& all) { return matching(all).size() >= count; }, 20s));
  }

  static std::string Unique(const std::string& base) {
    static std::atomic<int> n{0};
    return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
  }

  static std::string EmailBody(const std::string& external_id) {
    return R"({"user":{"external_id":")" + external_id +
           R"(","email":"ana@example.com","locale":"es","first_name":"Ana","timezone":"Europe/Madrid"},)"
           R"("event":{"order":{"id":"A-17","total":12.5}}})";
  }

  static inline DevBroker* broker_ = nullptr;
  static inline TempDir* dir_ = nullptr;
  static inline Fixture* fixture_ = nullptr;
  static inline RunningServer* server_ = nullptr;
};

TEST_F(IngestTest, SeedExampleIs204AndTheRecordIsInTheTopicFieldByField) {
  auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_TRUE(res->body.empty());

  std::string id = Unique("user");
  res = Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 204) << res->body;
  std::string trigger_id = res->get_header_value("X-Trigger-Id");
  EXPECT_EQ(trigger_id.size(), 36U);

  auto records = RecordsFor(id, 1);
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].key, id);
  EXPECT_EQ(records[0].headers["pv-trigger-id"], trigger_id);
  auto doc = Json(records[0].value);
  ASSERT_FALSE(doc.HasParseError()) << records[0].value;
  EXPECT_EQ(doc["v"].GetInt(), 1);
  EXPECT_EQ(std::string(doc["trigger_id"].GetString()), trigger_id);
  EXPECT_STREQ(doc["project"].GetString(), "demo");
  EXPECT_STREQ(doc["campaign_id"].GetString(), "44");
  EXPECT_TRUE(doc["received_at"].IsString());
  EXPECT_EQ(doc["user"]["external_id"].GetString(), id);
  EXPECT_STREQ(doc["user"]["email"].GetString(), "ana@example.com");
  EXPECT_STREQ(doc["user"]["locale"].GetString(), "es");
  EXPECT_STREQ(doc["user"]["timezone"].GetString(), "Europe/Madrid");
  EXPECT_STREQ(doc["user"]["first_name"].GetString(), "Ana");
  EXPECT_STREQ(doc["event"]["order"]["id"].GetString(), "A-17");
  EXPECT_DOUBLE_EQ(doc["event"]["order"]["total"].GetDouble(), 12.5);
}

TEST_F(IngestTest, TextAndPushCampaignsAccept204) {
  std::string text_id = Unique("text");
  auto res =
      Post("/api/client/campaigns/45/trigger",
           R"({"user":{"external_id":")" + text_id + R"(","phone":"+12345678900"},"event":{"code":"1234"}})",
           fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  std::string push_id = Unique("push");
  res = Post("/api/client/campaigns/46/trigger",
             R"({"user":{"external_id":")" + push_id + R"(","device_token":"tok-1"}})", fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(RecordsFor(text_id, 1).size(), 1U);
  auto push = RecordsFor(push_id, 1);
  ASSERT_EQ(push.size(), 1U);
  EXPECT_STREQ(Json(push[0].value)["user"]["device_token"].GetString(), "tok-1");
}

TEST_F(IngestTest, AuthFailuresAre401WithTheErrorShape) {
  auto client = server_->Client();
  struct Case {
    const char* name;
    httplib::Headers headers;
    const char* message_part;
  } cases[] = {
      {"missing", {}, "missing Authorization"},
      {"not bearer", {{"Authorization", "Basic dXNlcjpwYXNz"}}, "malformed"},
      {"bad shape", {{"Authorization", "Bearer hello"}}, "malformed"},
      {"unknown", {{"Authorization", "Bearer " + GenerateKey(KeyScope::kSecret)}}, "unknown API key"},
      {"revoked", Auth(fixture_->revoked), "revoked"},
  };
  for (const auto& c : cases) {
    auto res = client.Post("/api/client/campaigns/44/trigger", c.headers, kSeedEmail, "application/json");
    ASSERT_TRUE(res) << c.name;
    EXPECT_EQ(res->status, 401) << c.name;
    EXPECT_FALSE(res->get_header_value("WWW-Authenticate").empty()) << c.name;
    auto body = Json(res->body);
    ASSERT_TRUE(body.IsObject()) << c.name << ": " << res->body;
    EXPECT_STREQ(body["status"].GetString(), "error");
    EXPECT_NE(std::string(body["error"].GetString()).find(c.message_part), std::string::npos) << res->body;
    EXPECT_TRUE(body["errors"].IsArray());
  }
}

TEST_F(IngestTest, KeysAreNeverLoggedNorStoredInPlain) {
  std::string stored = pv::testing::ReadFile(fixture_->keys_file);
  EXPECT_EQ(stored.find(fixture_->secret), std::string::npos);
  EXPECT_NE(stored.find(HashKey(fixture_->secret)), std::string::npos);
}

TEST_F(IngestTest, PublicKeyIs403) {
  auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fixture_->public_key);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403) << res->body;
  EXPECT_NE(res->body.find("public"), std::string::npos);
}

TEST_F(IngestTest, UnknownDeletedOrForeignCampaignIs404AndDisabledIs409) {
  for (const char* id : {"999", "51", "52"}) {
    auto res = Post(std::string("/api/client/campaigns/") + id + "/trigger", kSeedEmail, fixture_->secret);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 404) << id << " " << res->body;
  }
  // The other project's key sees its own campaign and not demo's.
  auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fixture_->other_project);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  res = Post("/api/client/campaigns/52/trigger", kSeedEmail, fixture_->other_project);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;

  res = Post("/api/client/campaigns/50/trigger", kSeedEmail, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 409) << res->body;
  EXPECT_NE(res->body.find("disabled"), std::string::npos);
}

TEST_F(IngestTest, WrongContentTypeIs415BadJsonIs400TooLargeIs413) {
  std::string id = Unique("bad");
  auto res = Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret, {}, "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  res = Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret, {},
             "application/json; charset=utf-8");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << "parameters after the media type are fine";

  std::string bad_id = Unique("bad");
  res = Post("/api/client/campaigns/44/trigger", R"({"user":{"external_id":")" + bad_id + R"(",)",
             fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("invalid JSON"), std::string::npos) << res->body;

  std::string big = R"({"user":{"external_id":")" + bad_id + R"(","email":"a@b.co"},"event":{"pad":")" +
                    std::string(70 * 1024, 'x') + R"("}})";
  res = Post("/api/client/campaigns/44/trigger", big, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  EXPECT_NE(res->body.find("too large"), std::string::npos) << res->body;

  EXPECT_EQ(RecordsFor(bad_id, 0).size(), 0U) << "nothing published for refused requests";
}

TEST_F(IngestTest, ValidationErrorIs422WithEveryProblemAndPublishesNothing) {
  std::string id = Unique("invalid");
  auto res = Post("/api/client/campaigns/44/trigger",
                  R"({"user":{"external_id":")" + id + R"(","email":"nope","timezone":"Mars/Base"}})",
                  fixture_->secret);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 422);
  auto body = Json(res->body);
  EXPECT_STREQ(body["status"].GetString(), "error");
  EXPECT_STREQ(body["error"].GetString(), "user.email is not a valid email address");
  ASSERT_EQ(body["errors"].Size(), 2U);
  EXPECT_STREQ(body["errors"][0]["path"].GetString(), "/user/email");
  EXPECT_STREQ(body["errors"][1]["path"].GetString(), "/user/timezone");

  res = Post("/api/client/campaigns/45/trigger", R"({"user":{"external_id":")" + id + R"("}})",
             fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422);
  EXPECT_NE(res->body.find("/user/phone"), std::string::npos);
  EXPECT_EQ(RecordsFor(id, 0).size(), 0U);
}

TEST_F(IngestTest, IdempotencyKeyGivesTheSameTriggerIdTwice) {
  std::string id = Unique("idem");
  std::string key = Unique("order-17-shipped");
  auto first =
      Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret, {{"Idempotency-Key", key}});
  auto second =
      Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret, {{"Idempotency-Key", key}});
  auto other = Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret,
                    {{"Idempotency-Key", key + "-x"}});
  ASSERT_TRUE(first && second && other);
  ASSERT_EQ(first->status, 204);
  ASSERT_EQ(second->status, 204);
  ASSERT_EQ(other->status, 204);
  EXPECT_EQ(first->get_header_value("X-Trigger-Id"), second->get_header_value("X-Trigger-Id"));
  EXPECT_NE(first->get_header_value("X-Trigger-Id"), other->get_header_value("X-Trigger-Id"));

  auto records = RecordsFor(id, 3);
  ASSERT_EQ(records.size(), 3U);
  std::map<std::string, int> ids;
  for (const auto& r : records) ids[Json(r.value)["trigger_id"].GetString()]++;
  EXPECT_EQ(ids[first->get_header_value("X-Trigger-Id")], 2);
  EXPECT_EQ(ids[other->get_header_value("X-Trigger-Id")], 1);

  auto too_long = Post("/api/client/campaigns/44/trigger", EmailBody(id), fixture_->secret,
                       {{"Idempotency-Key", std::string(256, 'k')}});
  ASSERT_TRUE(too_long);
  EXPECT_EQ(too_long->status, 422);
}

TEST_F(IngestTest, BatchPublishesAllOrNameEveryBadIndex) {
  std::string id = Unique("batch");
  auto item = [&](const std::string& email) {
    return R"({"user":{"external_id":")" + id + R"(","email":")" + email + R"("},"event":{"n":1}})";
  };
  auto res = Post("/api/client/campaigns/44/trigger/batch",
                  R"({"triggers":[)" + item("a@b.co") + "," + item("c@d.co") + "," + item("e@f.co") + "]}",
                  fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
  EXPECT_EQ(RecordsFor(id, 3).size(), 3U);

  std::string bad_id = Unique("batch-bad");
  auto bad_item = [&](const std::string& email) {
    return R"({"user":{"external_id":")" + bad_id + R"(","email":")" + email + R"("}})";
  };
  res = Post("/api/client/campaigns/44/trigger/batch",
             R"({"triggers":[)" + bad_item("ok@b.co") + "," + bad_item("x") + "," + bad_item("ok@d.co") +
                 "," + bad_item("y") + "]}",
             fixture_->secret);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 422);
  auto body = Json(res->body);
  ASSERT_EQ(body["errors"].Size(), 2U);
  EXPECT_STREQ(body["errors"][0]["path"].GetString(), "/triggers/1/user/email");
  EXPECT_STREQ(body["errors"][1]["path"].GetString(), "/triggers/3/user/email");

  std::string six = R"({"triggers":[)";
  for (int i = 0; i < 6; ++i) six += (i ? "," : "") + bad_item("ok@b.co");
  res = Post("/api/client/campaigns/44/trigger/batch", six + "]}", fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422);
  EXPECT_NE(res->body.find("at most 5"), std::string::npos) << res->body;

  res = Post("/api/client/campaigns/44/trigger/batch", R"({"triggers":[]})", fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 422);
  EXPECT_EQ(RecordsFor(bad_id, 0).size(), 0U) << "a batch with a bad item publishes nothing";
}

TEST_F(IngestTest, HealthReadyAndMetricsAreOnTheAdminPortOnly) {
  auto admin = server_->Admin();
  auto res = admin.Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("\"kafka\":"), std::string::npos) << res->body;
  res = admin.Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body;
  Post("/api/client/campaigns/44/trigger", kSeedEmail, fixture_->secret);
  // The broker probe runs each second from start: wait for its first answer.
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto m = admin.Get("/metrics");
        return m && m->body.find("pv_ingest_kafka_reachable 1") != std::string::npos;
      },
      5s));
  res = admin.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  for (const char* needle :
       {"pv_ingest_requests_total{route=\"trigger\",status=\"204\"}",
        "pv_ingest_request_duration_seconds_bucket", "pv_ingest_broker_ack_duration_seconds_count",
        "pv_ingest_in_flight_requests", "pv_ingest_producer_queue_depth", "pv_ingest_connections",
        "pv_ingest_refused_total{reason=\"header_timeout\"}", "pv_ingest_kafka_reachable 1",
        "pv_ingest_ready 1"}) {
    EXPECT_NE(res->body.find(needle), std::string::npos) << needle;
  }
  // The public port serves the API and nothing else.
  auto client = server_->Client();
  for (const char* path : {"/healthz", "/readyz", "/metrics", "/nope"}) {
    res = client.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_NE(res->body.find("\"status\":\"error\""), std::string::npos);
  }
  res = client.Get("/api/client/campaigns/44/trigger");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "POST");
}

// The seed's documented example, byte for byte (its trailing comma included): 204.
TEST_F(IngestTest, TheSeedsExampleVerbatimIs204) {
  const std::string verbatim = R"({
    "user": {
        "external_id": "EXTERNAL_ID",
        "email": "test@test.com",
        "timezone": "America/Chicago",
        "locale": "en",
    },
    "event": {
        "random_field": "value"
    }
})";
  auto res = Post("/api/client/campaigns/44/trigger", verbatim, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
}

TEST_F(IngestTest, CompressedBodiesAre415WithoutAKeyToo) {
  std::string gzip_magic = "\x1f\x8b\x08\x00" + std::string(1000, '\0');
  for (const std::string& key : {fixture_->secret, std::string()}) {
    pv::testing::RawConnection c(server_->port());
    std::string auth = key.empty() ? "" : "Authorization: Bearer " + key + "\r\n";
    ASSERT_TRUE(c.Send(pv::testing::PostRequest("/api/client/campaigns/44/trigger", gzip_magic,
                                                auth + "Content-Encoding: gzip\r\n")));
    auto r = c.Read(5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, key.empty() ? 401 : 415) << r->body;
  }
}

TEST_F(IngestTest, DeepNestingIs400AndTheServerLives) {
  // As deep as this server's 64 KiB body limit allows (ingest_process_test sends a million at the
  // default 1 MiB limit).
  std::string deep(60000, '[');
  auto res = Post("/api/client/campaigns/44/trigger", deep, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_NE(res->body.find("nested deeper than 64"), std::string::npos) << res->body;
  std::string nested = R"({"user":{"external_id":"deep","email":"a@b.co"},"event":)" + std::string(70, '[') +
                       std::string(70, ']') + "}";
  res = Post("/api/client/campaigns/44/trigger", nested, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << "still serving";
}

// A trigger larger than the broker takes is 413, never a 503 that a client would retry forever.
TEST(IngestRecordSize, TriggerLargerThanTheBrokerAcceptsIs413) {
  OwnServer own("pv-ingest-size", {}, {{"message.max.bytes", "4000"}, {"batch.size", "4000"}});
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  auto client = server.Client();
  std::string body = R"({"user":{"external_id":"big","email":"a@b.co"},"event":{"pad":")" +
                     std::string(5000, 'p') + R"("}})";
  auto res = client.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), body, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413) << res->body;
  EXPECT_NE(res->body.find("at most 4000 bytes"), std::string::npos) << res->body;
  res = client.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 204) << res->body;
}

// A request whose body never comes is answered 408 by the front and is no longer in flight.
TEST(IngestBodyDeadline, AnAbandonedBodyIs408AndLeavesNothingInFlight) {
  OwnServer own("pv-ingest-body", [](IngestOptions& o) { o.front.body_timeout = 500ms; });
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  pv::testing::RawConnection c(server.port());
  ASSERT_TRUE(c.Send("POST /api/client/campaigns/44/trigger HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                     fixture.secret +
                     "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user\""));
  auto r = c.Read(3s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
  auto metrics = server.Admin().Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("pv_ingest_in_flight_requests 0"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find("pv_ingest_refused_total{reason=\"body_timeout\"} 1"), std::string::npos);
}

// A fatal producer error (the producer can never produce again) stops ingest, unready, so its
// supervisor restarts it: it must not answer 503 for good while /readyz says ready.
TEST(IngestFatal, AFatalProducerErrorStopsTheServerAndMarksItFailed) {
  OwnServer own("pv-ingest-fatal", [](IngestOptions& o) {
    o.shutdown_delay = 5000ms;  // skipped after a fatal error
    o.reload_interval = 100ms;
  });
  Fixture& fixture = own.fixture;
  RunningServer* server = &own.server();
  auto res = server->Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                   "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 204);
  EXPECT_FALSE(server->server().failed());
  ASSERT_TRUE(server->server().producer().InjectFatalError(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                                           "injected by the test"));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(pv::testing::WaitFor([&] { return server->Finished(); }, 5s)) << "Run() returned";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s) << "no shutdown delay after a fatal error";
  EXPECT_TRUE(server->server().failed());
}

// The catalog directory vanishing (a ConfigMap swap) or turning unreadable is a counted reload
// failure that keeps the last good catalog; it never ends the process.
TEST(IngestReload, AVanishingCatalogKeepsTheLastGoodOneAndCountsTheFailure) {
  OwnServer own("pv-ingest-reload");
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  auto post = [&] {
    auto r = server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                  "application/json");
    return r ? r->status : -1;
  };
  ASSERT_EQ(post(), 204);
  std::filesystem::rename(fixture.catalog_dir, fixture.catalog_dir + ".moved");
  auto failed_reloads = [&] {
    auto m = server.Admin().Get("/metrics");
    return m && m->body.find("pv_ingest_reloads_total{result=\"failed\"} 1") != std::string::npos;
  };
  EXPECT_TRUE(pv::testing::WaitFor(failed_reloads, 5s));
  EXPECT_EQ(post(), 204) << "the last good catalog still serves";
  std::filesystem::rename(fixture.catalog_dir + ".moved", fixture.catalog_dir);
  EXPECT_EQ(post(), 204);
  // A symlink loop in the tree: asking it for its type throws ELOOP (it used to end the process
  // from the watcher thread, outside any try).
  std::filesystem::create_symlink("loop.yaml", fixture.catalog_dir + "/extra/loop.yaml");
  auto reloads_failed_twice = [&] {
    auto m = server.Admin().Get("/metrics");
    return m && m->body.find("pv_ingest_reloads_total{result=\"failed\"} 2") != std::string::npos;
  };
  EXPECT_TRUE(pv::testing::WaitFor(reloads_failed_twice, 5s));
  EXPECT_EQ(post(), 204) << "alive, with the last good catalog";
}

TEST_F(IngestTest, PostWithoutBodyIs400) {
  auto res = Post("/api/client/campaigns/44/trigger", "", fixture_->secret);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST_F(IngestTest, NewAndRevokedKeysTakeEffectWithoutRestart) {
  std::string fresh = GenerateKey(KeyScope::kSecret);
  auto keys = KeyStore::LoadFile(fixture_->keys_file)->keys();
  keys.push_back({"key_9", "fresh", "demo", KeyScope::kSecret, HashKey(fresh), "", "", ""});
  KeyStore::SaveFile(fixture_->keys_file, keys);
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fresh);
        return res && res->status == 204;
      },
      5s));
  keys.back().revoked_at = "2026-11-26T00:00:00Z";
  KeyStore::SaveFile(fixture_->keys_file, keys);
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, fresh);
        return res && res->status == 401;
      },
      5s));
}

// The running ingest merges its keys_file with pv.keys by the newest state of each key, so a revoke
// or a deletion wins wherever it was written (before: the topic's record always won, and a tombstone
// never hid the file's entry).
TEST_F(IngestTest, TheNewestStateOfAKeyWinsAcrossTheFileAndTheTopic) {
  struct Case {
    std::string plain = GenerateKey(KeyScope::kSecret);
    ApiKey key;
  };
  std::map<std::string, Case> cases;
  for (const char* id : {"key_topic_revokes", "key_file_revokes", "key_topic_deletes",
                         "key_legacy_file_revokes", "key_sentinel"}) {
    Case& c = cases[id];
    c.key = {id, id, "demo", KeyScope::kSecret, HashKey(c.plain), "", "", ""};
  }
  auto state = [&](const std::string& id, std::int64_t updated_at_ms, bool revoked) {
    ApiKey k = cases.at(id).key;
    k.updated_at_ms = updated_at_ms;
    if (revoked) k.revoked_at = "2026-12-01T00:00:00.000Z";
    return k;
  };
  auto status = [&](const std::string& id, std::string* body = nullptr) {
    auto res = Post("/api/client/campaigns/44/trigger", kSeedEmail, cases.at(id).plain);
    if (res && body != nullptr) *body = res->body;
    return res ? res->status : -1;
  };

  auto file = KeyStore::LoadFile(fixture_->keys_file)->keys();
  file.push_back(state("key_topic_revokes", 1000, false));
  file.push_back(state("key_file_revokes", 3000, true));
  file.push_back(state("key_topic_deletes", 1000, false));
  file.push_back(state("key_legacy_file_revokes", 0, true));
  KeyStore::SaveFile(fixture_->keys_file, file);
  ASSERT_TRUE(pv::testing::WaitFor([&] { return status("key_topic_revokes") == 204; }, 5s));
  ASSERT_EQ(status("key_topic_deletes"), 204);
  ASSERT_EQ(status("key_file_revokes"), 401);

  kafka::Settings settings;
  settings.brokers = broker_->bootstrap();
  settings.properties["log_level"] = "3";
  kafka::Producer producer(settings, {});
  auto group = std::make_shared<kafka::DeliveryGroup>(5);
  auto publish = [&](const ApiKey& k) {
    ASSERT_EQ(producer.Produce("pv.keys", k.id, KeyRecord(k), {}, group), RD_KAFKA_RESP_ERR_NO_ERROR);
  };
  publish(state("key_topic_revokes", 2000, true));
  publish(state("key_file_revokes", 1000, false));  // older than the file's revoke, though read later
  std::vector<kafka::Header> tombstone = {{kKeyUpdatedAtHeader, "2000"}};
  ASSERT_EQ(producer.Produce("pv.keys", "key_topic_deletes", std::string_view{}, tombstone, group),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  publish(state("key_legacy_file_revokes", 0, false));  // both without a version: the revoke wins the tie
  publish(state("key_sentinel", 1, false));  // last on the one partition: when it works, all arrived
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 20s));
  ASSERT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(pv::testing::WaitFor([&] { return status("key_sentinel") == 204; }, 10s));

  std::string body;
  EXPECT_EQ(status("key_topic_revokes", &body), 401);
  EXPECT_NE(body.find("revoked"), std::string::npos) << body;
  EXPECT_EQ(status("key_file_revokes", &body), 401);
  EXPECT_NE(body.find("revoked"), std::string::npos) << body;
  EXPECT_EQ(status("key_topic_deletes", &body), 401);
  EXPECT_NE(body.find("unknown API key"), std::string::npos) << body;
  EXPECT_EQ(status("key_legacy_file_revokes", &body), 401);
  EXPECT_EQ(status("key_sentinel"), 204);
}

// A key revoked on pv.keys while no ingest ran, still active in this ingest's keys_file: the very
// first request after start is refused. Before, the front served from the file alone until the
// key feed had read the topic (a few hundred ms): the revoked key got 204s.
TEST(IngestKeysAtStart, ARevokeOnTheTopicHoldsFromTheFirstRequest) {
  pv::log::SetLevel(pv::log::Level::kError);
  DevBroker broker{1};
  TempDir dir("pv-ingest-keys-start");
  Fixture fixture(dir);
  ApiKey key = KeyStore::LoadFile(fixture.keys_file)->keys().front();
  ASSERT_EQ(key.hash, HashKey(fixture.secret));
  ASSERT_TRUE(key.revoked_at.empty());
  key.updated_at_ms = 5000;  // newer than the file's entry (no version)
  key.revoked_at = "2026-12-01T00:00:00.000Z";
  kafka::Settings settings;
  settings.brokers = broker.bootstrap();
  settings.properties["log_level"] = "3";
  kafka::Producer producer(settings, {});
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  ASSERT_EQ(producer.Produce("pv.keys", key.id, KeyRecord(key), {}, group), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 20s));
  ASSERT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);

  // Not waiting for readiness: the first request races the key feed, as a client's would.
  RunningServer server(TestOptions(fixture), broker.bootstrap(), {}, /*wait_ready=*/false);
  auto res = server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                  "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401) << res->body;
  EXPECT_NE(res->body.find("revoked"), std::string::npos) << res->body;
}

// keys_topic cannot be read (the broker's metadata says it does not exist): past keys_wait the front serves,
// and the API answers 503 with Retry-After (never a 204 on the file's word alone) while /readyz says why;
// once the topic exists and is read, triggers are accepted.
TEST(IngestKeysAtStart, WithoutTheKeysTopicTheApiAnswers503UntilItIsRead) {
  pv::log::SetLevel(pv::log::Level::kError);
  DevBroker broker{1};
  TempDir dir("pv-ingest-keys-missing");
  Fixture fixture(dir);
  // UNKNOWN_TOPIC_OR_PART (3) for pv.keys in every metadata answer until cleared.
  ASSERT_EQ(broker.Control("/topics/error?name=pv.keys&error=3"), 200);
  IngestOptions options = TestOptions(fixture);
  options.keys_wait = 200ms;
  RunningServer server(options, broker.bootstrap(), {}, /*wait_ready=*/false);
  auto post = [&] {
    return server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                "application/json");
  };
  auto res = post();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
  EXPECT_NE(res->body.find("pv.keys"), std::string::npos) << res->body;
  EXPECT_FALSE(res->get_header_value("Retry-After").empty());
  auto ready = server.Admin().Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_NE(ready->body.find("reading API keys from pv.keys"), std::string::npos) << ready->body;
  // Still 503 a while later: the feed waits for the topic, the front does not fall back to the file.
  std::this_thread::sleep_for(1500ms);
  res = post();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;

  ASSERT_EQ(broker.Control("/topics/error?name=pv.keys&error=0"), 200);
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto r = post();
        return r && r->status == 204;
      },
      15s));
  ready = server.Admin().Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;
}

// Its own broker: setting the brokers down must not disturb the other tests.
TEST(IngestBrokerDown, RequestsGet503WithRetryAfterAndNever204ThenRecover) {
  OwnServer own("pv-ingest-down", [](IngestOptions& o) { o.ack_timeout = 1500ms; });
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  auto client = server.Client();
  auto post = [&] {
    return client.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                       "application/json");
  };
  auto res = post();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 204) << "broker up first";

  ASSERT_EQ(own.broker.Control("/brokers/all/down"), 200);
  // Several concurrent requests while down: every one is 503, none 204.
  std::vector<int> statuses(6, 0);
  std::vector<std::string> retry_after(6);
  std::vector<std::thread> threads;
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      auto c = server.Client();
      auto r =
          c.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail, "application/json");
      statuses[i] = r ? r->status : -1;
      if (r) retry_after[i] = r->get_header_value("Retry-After");
    });
  }
  for (auto& t : threads) t.join();
  auto took = std::chrono::steady_clock::now() - started;
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(statuses[i], 503) << i;
    EXPECT_EQ(retry_after[i], "1") << i;
  }
  EXPECT_LT(took, 10s) << "answers come by the ack deadline, not later";
  // A broker outage is not unreadiness (every replica would leave the load balancer at once): it
  // shows in /healthz and the metrics.
  auto admin = server.Admin();
  auto ready = admin.Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto health = admin.Get("/healthz");
        return health && health->status == 200 &&
               health->body.find("\"kafka\":\"unreachable\"") != std::string::npos;
      },
      10s));

  ASSERT_EQ(own.broker.Control("/brokers/all/up"), 200);
  EXPECT_TRUE(pv::testing::WaitFor(
      [&] {
        auto r = post();
        return r && r->status == 204;
      },
      20s));
}

// A request error from the broker that outlasts the ack deadline gives 503 too.
TEST(IngestBrokerDown, ProduceErrorsPastTheDeadlineGive503) {
  OwnServer own("pv-ingest-err", [](IngestOptions& o) { o.ack_timeout = 1000ms; });
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  auto client = server.Client();
  auto res =
      client.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail, "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 204);
  ASSERT_EQ(own.broker.Control("/errors?api=Produce&error=NOT_ENOUGH_REPLICAS&count=100000"), 200);
  res = client.Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503) << res->body;
}

// The producer's local queue full (the broker cannot keep up): 503 at once, not after the deadline.
TEST(IngestBrokerDown, LocalQueueFullIs503Immediately) {
  OwnServer own("pv-ingest-full",
                [](IngestOptions& o) {
                  o.ack_timeout = 3000ms;
                  // A queue of one record, and no broker to drain it: the first request fills it.
                },
                {{"queue.buffering.max.messages", "1"}});
  Fixture& fixture = own.fixture;
  RunningServer& server = own.server();
  auto warm = server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                   "application/json");
  ASSERT_TRUE(warm);
  ASSERT_EQ(warm->status, 204);
  ASSERT_EQ(own.broker.Control("/brokers/all/down"), 200);
  int first_status = 0;
  std::thread first([&] {
    auto r = server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                  "application/json");
    first_status = r ? r->status : -1;
  });
  std::this_thread::sleep_for(300ms);
  auto started = std::chrono::steady_clock::now();
  auto second = server.Client().Post("/api/client/campaigns/44/trigger", Auth(fixture.secret), kSeedEmail,
                                     "application/json");
  auto took = std::chrono::steady_clock::now() - started;
  first.join();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 503);
  EXPECT_EQ(second->get_header_value("Retry-After"), "1");
  EXPECT_NE(second->body.find("overloaded"), std::string::npos) << second->body;
  EXPECT_LT(took, 1000ms) << "a full queue is refused at once";
  EXPECT_EQ(first_status, 503) << "the queued record could not reach the broker by the deadline";
  ASSERT_EQ(own.broker.Control("/brokers/all/up"), 200);
}

}  // namespace
}  // namespace pv::ingest
