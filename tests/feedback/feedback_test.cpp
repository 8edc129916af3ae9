// Delivery feedback end to end, with the provider fake sending real signed webhooks: pv-ingest
// verifies them and publishes pv.receipts, pv-dispatcher's feedback pipeline turns them into events
// and suppressions, and the dispatcher then suppresses the next trigger naming the reason. The SMS
// path goes through a real sms-worker, whose record of Twilio's MessageSid maps the status callback
// back to its send. One stack (dev broker, redis-server, a second one for statuses, fake, ingest,
// dispatcher, sms-worker) serves every test; each test uses addresses of its own. The status API (GET
// /api/client/triggers/:id, the dispatcher's status feeder, pvctl status) is tested on the same stack, at the
// end of this file; its last test stops and restarts both redis-servers.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/log.hpp"
#include "pv/status_store.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/fakes.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/process_metrics.hpp"
#include "pv/testing/records.hpp"
#include "pv/testing/redis_server.hpp"
#include "pv/testing/services.hpp"
#include "pv/testing/topic_reader.hpp"
#include "pv/topics.hpp"
#include "pvctl.hpp"
#include "test/pvctl_runner.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;

std::string Str(const rapidjson::Value& v, const char* name) {
  auto s = FindString(v, name);
  return s ? std::string(*s) : std::string();
}

std::string Unique(const std::string& base) {
  static std::atomic<int> n{0};
  return base + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// The value of one series in a Prometheus exposition, or 0.
double Metric(const std::string& exposition, const std::string& series) {
  return MetricValue(exposition, series, 0);
}

class FeedbackTest : public ::testing::Test {
 protected:
  static constexpr int kMaxStatuses = 6;  // status.max_statuses: more than any send here but one test's

  static void SetUpTestSuite() {
    pv::log::SetLevel(pv::log::Level::kWarn);
    s_ = new Stack();
  }
  static void TearDownTestSuite() {
    delete s_;
    s_ = nullptr;
  }
  void TearDown() override {
    if (HasFailure()) {
      for (const char* name : {"ingest.log", "dispatcher.log", "sms-worker.log"}) {
        std::string text = ReadFile(s_->dir.File(name));
        if (text.size() > 5000) text = "..." + text.substr(text.size() - 5000);
        std::fprintf(stderr, "---- %s ----\n%s\n", name, text.c_str());
      }
    }
  }

  struct Stack {
    TempDir dir{"pv-feedback"};
    DevBroker broker{1};
    RedisServer redis;
    RedisServer status_redis;  // status.redis_url: the status store on a Redis of its own
    ProviderFake fake{{"--twilio-sid", "AC1", "--twilio-token", "tw-token"}};
    std::string secret = GenerateKey(KeyScope::kSecret);
    std::string other_secret = GenerateKey(KeyScope::kSecret);  // project "other"
    int ingest_admin = FreePort();
    std::unique_ptr<Subprocess> ingest;
    std::unique_ptr<Subprocess> dispatcher;
    std::unique_ptr<WorkerProcess> worker;
    int ingest_port = 0;
    int dispatcher_admin = 0;

    Stack() {
      // As compose's and the dev stack's status-redis: a send's hash stays a listpack while its
      // entries are at most 1 KiB (checked below on the entries the pipeline writes).
      if (status_redis.Command({"CONFIG", "SET", "hash-max-listpack-value", "1024"}) != "OK")
        throw std::runtime_error("status-redis refused CONFIG SET hash-max-listpack-value");
      WriteFile(dir.File("catalog/e1.yaml"),
                "id: \"e1\"\nproject: demo\nchannel: email\nprovider: log\n"
                "templates:\n  en: {from: \"shop@example.com\", subject: \"s\", text: \"t\"}\n");
      WriteFile(
          dir.File("catalog/t1.yaml"),
          "id: \"t1\"\nproject: demo\nchannel: text\nprovider: tw\ntemplates:\n  en: {body: \"code 1\"}\n");
      WriteFile(dir.File("catalog/p1.yaml"),
                "id: \"p1\"\nproject: demo\nchannel: push\nprovider: log\n"
                "templates:\n  en: {title: \"t\", body: \"b\"}\n");
      KeyStore::SaveFile(dir.File("keys.yaml"),
                         {{"key_1", "test", "demo", KeyScope::kSecret, HashKey(secret), "", "", ""},
                          {"key_2", "other", "other", KeyScope::kSecret, HashKey(other_secret), "", "", ""}});
      std::string public_key =
          Str(ParseJson(HttpGet(fake.port(), "/_fake/sendgrid-key").second), "public_key");
      std::string config = fmt::format(
          "kafka:\n  brokers: \"{}\"\n  properties:\n    log_level: \"3\"\n"
          "  consumer_properties:\n    session.timeout.ms: \"6000\"\n    heartbeat.interval.ms: \"500\"\n"
          "catalog_dir: \"{}\"\nkeys_file: \"{}\"\nredis:\n  url: \"{}\"\nlog:\n  level: info\n"
          "ingest:\n  host: 127.0.0.1\n  port: 0\n  admin_host: 127.0.0.1\n  admin_port: {}\n"
          "  shutdown_delay_ms: 0\n"
          "dispatcher:\n  admin_host: 127.0.0.1\n  admin_port: 0\n  retry_backoff: 200\n"
          "receipts:\n  sendgrid:\n    sg: {{public_key: \"{}\"}}\n"
          "  twilio:\n    tw: {{auth_token: tw-token, public_url: \"https://pv.example.com/\"}}\n"
          "providers:\n  tw: {{type: twilio, base_url: \"{}\", account_sid: AC1, auth_token: tw-token, "
          "from: \"+15550001111\"}}\n"
          "workers:\n  admin_port: 0\n  outbox_dir: \"{}\"\n"
          "status:\n  max_statuses: {}\n  redis_url: \"{}\"\n",
          broker.bootstrap(), dir.File("catalog"), dir.File("keys.yaml"), redis.url(), ingest_admin,
          public_key, fake.url(), dir.File("outbox"), kMaxStatuses, status_redis.url());
      WriteFile(dir.File("config.yaml"), config);
      ingest = std::make_unique<Subprocess>(
          std::vector<std::string>{PV_INGEST_BIN, "--config", dir.File("config.yaml"), "--port-file",
                                   dir.File("ingest.port")},
          std::map<std::string, std::string>{}, dir.File("ingest.log"));
      ingest_port = WaitForPortFile(dir.File("ingest.port"), *ingest, 30s);
      dispatcher = std::make_unique<Subprocess>(
          std::vector<std::string>{DispatcherBinary(), "--config", dir.File("config.yaml"), "--port-file",
                                   dir.File("dispatcher.port")},
          std::map<std::string, std::string>{}, dir.File("dispatcher.log"));
      dispatcher_admin = WaitForPortFile(dir.File("dispatcher.port"), *dispatcher, 30s);
      worker = std::make_unique<WorkerProcess>(Channel::kSms, config, dir.File("sms-worker.log"));
      worker->Start();
      // Every consumer owns its partitions before the first test (group joins take seconds here).
      bool joined = WaitFor(
          [&] {
            std::string log = ReadFile(dir.File("dispatcher.log"));
            return log.find(R"("group":"pv-feedback","count":)") != std::string::npos &&
                   log.find(R"("group":"pv-status","count":)") != std::string::npos &&
                   log.find(R"("group":"pv-dispatcher","count":)") != std::string::npos;
          },
          40s);
      if (!joined)
        throw std::runtime_error("dispatcher did not join: " + ReadFile(dir.File("dispatcher.log")));
      WaitFor([&] { return HttpGet(ingest_admin, "/readyz").first == 200; }, 20s);
    }
    ~Stack() {
      worker.reset();
      if (dispatcher) dispatcher->Stop(SIGTERM, 15s);
      if (ingest) ingest->Stop(SIGTERM, 15s);
    }
  };

  // POSTs a trigger to ingest; returns its trigger id.
  static std::string Trigger(const std::string& campaign, const std::string& user_json) {
    httplib::Client c("127.0.0.1", s_->ingest_port);
    c.set_read_timeout(10, 0);
    auto r = c.Post(fmt::format("/api/client/campaigns/{}/trigger", campaign).c_str(),
                    {{"Authorization", "Bearer " + s_->secret}}, R"({"user":)" + user_json + "}",
                    "application/json");
    EXPECT_TRUE(r && r->status == 204) << (r ? r->body : "no answer");
    return r ? r->get_header_value("X-Trigger-Id") : "";
  }

  // Has the fake send a signed webhook (spec: the fake's /_fake/webhook body without url); returns
  // ingest's answer {status, body}.
  static std::pair<int, std::string> Webhook(const std::string& path, const std::string& spec_fields) {
    std::string spec =
        fmt::format(R"({{"url":"http://127.0.0.1:{}{}",{}}})", s_->ingest_port, path, spec_fields);
    auto [status, body] = HttpPost(s_->fake.port(), "/_fake/webhook", spec);
    if (status != 200) return {-1, body};
    auto d = ParseJson(body);
    return {d["status"].GetInt(), Str(d, "body")};
  }

  static std::pair<int, std::string> SendGrid(const std::string& events, const std::string& extra = "") {
    return Webhook("/api/providers/sendgrid/events", R"("provider":"sendgrid","events":)" + events + extra);
  }
  static std::pair<int, std::string> Twilio(const std::string& route, const std::string& params,
                                            const std::string& extra = "") {
    return Webhook(
        "/api/providers/twilio/" + route,
        fmt::format(R"("provider":"twilio","public_url":"https://pv.example.com/api/providers/twilio/{}",)"
                    R"("params":{}{})",
                    route, params, extra));
  }

  // The statuses of pv.events for `send_id`, once `done` holds for them (or after `timeout`).
  static std::vector<rapidjson::Document> EventsOf(const std::string& send_id,
                                                   const std::function<bool(size_t)>& done,
                                                   std::chrono::milliseconds timeout = 20s) {
    TopicReader reader(s_->broker.bootstrap(), {"pv.events"});
    auto mine = [&](const std::vector<Record>& all) {
      size_t n = 0;
      for (const auto& r : all) n += r.key == send_id ? 1 : 0;
      return n;
    };
    const auto& all = reader.ReadUntil([&](const auto& records) { return done(mine(records)); }, timeout);
    std::vector<rapidjson::Document> out;
    for (const auto& r : all) {
      if (r.key == send_id) out.push_back(ParseJson(r.value));
    }
    return out;
  }
  static std::vector<std::string> Statuses(const std::vector<rapidjson::Document>& events) {
    std::vector<std::string> out;
    out.reserve(events.size());
    for (const auto& e : events) out.push_back(Str(e, "status"));
    return out;
  }
  static bool Has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  static std::string Why(const std::string& channel, const std::string& member) {
    return s_->redis.Command({"HGET", "pv:suppress:" + channel + ":why", member});
  }
  static bool Suppressed(const std::string& channel, const std::string& member) {
    return s_->redis.Command({"SISMEMBER", "pv:suppress:" + channel, member}).find('1') != std::string::npos;
  }
  static std::string DispatcherMetrics() { return HttpGet(s_->dispatcher_admin, "/metrics").second; }
  static std::string IngestMetrics() { return HttpGet(s_->ingest_admin, "/metrics").second; }

  static inline Stack* s_ = nullptr;

 public:
  static int IngestPort() { return s_->ingest_port; }
  static const std::string& Secret() { return s_->secret; }
  static std::string ConfigPath() { return s_->dir.File("config.yaml"); }
};

TEST_F(FeedbackTest, SendGridEventsBecomeEventsAndABounceSuppressesTheNextTrigger) {
  std::string email = Unique("ana") + "@example.com";
  std::string trigger_id = Trigger("e1", R"({"external_id":"u-ana","email":")" + email + R"("})");
  std::string send_id = SendIdFor(trigger_id, "email");
  auto [status, body] = SendGrid(fmt::format(
      R"([{{"event":"processed","email":"{0}","send_id":"{1}","sg_event_id":"{2}-p","timestamp":1764000000}},)"
      R"({{"event":"delivered","email":"{0}","send_id":"{1}","trigger_id":"{3}","campaign_id":"e1",)"
      R"("sg_event_id":"{2}-d","sg_message_id":"m1.filter","timestamp":1764000001}},)"
      R"({{"event":"bounce","type":"bounce","status":"5.1.1","reason":"550 no such user","email":"{0}",)"
      R"("send_id":"{1}","trigger_id":"{3}","campaign_id":"e1","sg_event_id":"{2}-b","timestamp":1764000002}}])",
      email, send_id, Unique("sg"), trigger_id));
  EXPECT_EQ(status, 204) << body;

  auto events = EventsOf(send_id, [&](size_t n) { return n >= 3; });  // queued, delivered, bounced
  auto statuses = Statuses(events);
  EXPECT_TRUE(Has(statuses, "delivered")) << ::testing::PrintToString(statuses);
  ASSERT_TRUE(Has(statuses, "bounced")) << ::testing::PrintToString(statuses);
  for (const auto& e : events) {
    if (Str(e, "status") != "bounced") continue;
    EXPECT_EQ(Str(e, "trigger_id"), trigger_id);
    EXPECT_EQ(Str(e, "channel"), "email");
    EXPECT_EQ(Str(e, "provider"), "sg");
    EXPECT_EQ(Str(e, "error_code"), "5.1.1");
    EXPECT_EQ(Str(e, "error"), "550 no such user");
  }
  EXPECT_TRUE(Suppressed("email", "address:" + email));
  EXPECT_NE(Why("email", "address:" + email).find(R"("reason":"bounce")"), std::string::npos);

  // The next trigger to the address: suppressed, and the event says why.
  std::string next =
      SendIdFor(Trigger("e1", R"({"external_id":"u-ana2","email":")" + email + R"("})"), "email");
  auto later = EventsOf(next, [](size_t n) { return n >= 1; });
  ASSERT_EQ(later.size(), 1U);
  EXPECT_EQ(Str(later[0], "status"), "suppressed");
  EXPECT_EQ(Str(later[0], "suppression_reason"), "bounce");
  EXPECT_FALSE(Str(later[0], "suppressed_at").empty());
}

TEST_F(FeedbackTest, BadSignatureStaleTimestampAndMissingHeadersAre401AndPublishNothing) {
  std::string email = Unique("eve") + "@example.com";
  std::string events = fmt::format(
      R"([{{"event":"spamreport","email":"{}","send_id":"s-forged","sg_event_id":"forged","timestamp":1764000000}}])",
      email);
  double before = Metric(IngestMetrics(),
                         R"(pv_ingest_receipt_requests_total{route="sendgrid_events",result="unverified"})");
  EXPECT_EQ(SendGrid(events, R"(,"tamper":true)").first, 401);
  long long old = ToUnixMillis(std::chrono::system_clock::now()) / 1000 - 3600;
  auto stale = SendGrid(events, fmt::format(R"(,"timestamp":{})", old));
  EXPECT_EQ(stale.first, 401);
  EXPECT_NE(stale.second.find("Timestamp is"), std::string::npos) << stale.second;
  auto bare = HttpPost(s_->ingest_port, "/api/providers/sendgrid/events", events);  // no signature headers
  EXPECT_EQ(bare.first, 401) << bare.second;
  EXPECT_EQ(Twilio("inbound", R"({"MessageSid":"SMforged","From":"+15550009999","Body":"STOP"})",
                   R"(,"tamper":true)")
                .first,
            401);

  std::string metrics = IngestMetrics();
  EXPECT_EQ(
      Metric(metrics, R"(pv_ingest_receipt_requests_total{route="sendgrid_events",result="unverified"})"),
      before + 2);
  EXPECT_GE(Metric(metrics, R"(pv_ingest_receipt_requests_total{route="sendgrid_events",result="stale"})"),
            1);
  TopicReader receipts(s_->broker.bootstrap(), {"pv.receipts"});
  for (const auto& r : receipts.ReadFor(2s)) {
    EXPECT_EQ(r.value.find(email), std::string::npos) << r.value;
    EXPECT_EQ(r.value.find("SMforged"), std::string::npos) << r.value;
  }
  EXPECT_FALSE(Suppressed("email", "address:" + email));
  EXPECT_FALSE(Suppressed("text", "address:+15550009999"));
}

TEST_F(FeedbackTest, ARepeatedReceiptHasOneEffect) {
  std::string email = Unique("rep") + "@example.com";
  std::string send_id = NewSendId();
  std::string event = fmt::format(
      R"([{{"event":"spamreport","email":"{}","send_id":"{}","sg_event_id":"{}","timestamp":1764000000}}])",
      email, send_id, Unique("dup"));
  double before =
      Metric(DispatcherMetrics(), R"(pv_feedback_receipts_total{source="sendgrid",result="duplicate"})");
  EXPECT_EQ(SendGrid(event).first, 204);
  EXPECT_EQ(SendGrid(event).first, 204);  // SendGrid delivers again after a lost answer
  WaitFor(
      [&] {
        return Metric(DispatcherMetrics(),
                      R"(pv_feedback_receipts_total{source="sendgrid",result="duplicate"})") > before;
      },
      20s);
  auto events = EventsOf(
      send_id, [](size_t) { return false; }, 3s);
  EXPECT_EQ(Statuses(events), std::vector<std::string>{"complained"});
  EXPECT_NE(Why("email", "address:" + email).find(R"("reason":"complaint")"), std::string::npos);
  EXPECT_EQ(
      Metric(DispatcherMetrics(), R"(pv_feedback_receipts_total{source="sendgrid",result="duplicate"})"),
      before + 1);
}

TEST_F(FeedbackTest, TwilioStatusOfAWorkerSendIsMappedByItsMessageSidAndAnUnknownOneIsCounted) {
  std::string phone = fmt::format("+1555{:07d}", ::getpid() % 10000000);
  std::string trigger_id = Trigger("t1", R"({"external_id":"u-sms","phone":")" + phone + R"("})");
  std::string send_id = SendIdFor(trigger_id, "text");
  auto sent = EventsOf(send_id, [](size_t n) { return n >= 2; });  // queued, sent
  ASSERT_TRUE(Has(Statuses(sent), "sent")) << ::testing::PrintToString(Statuses(sent));
  std::string sid;
  for (const auto& e : sent)
    if (Str(e, "status") == "sent") sid = Str(e, "provider_message_id");
  // The worker measured it from ingest's receipt of the trigger to Twilio's acceptance (item 5).
  std::string worker_metrics = HttpGet(s_->worker->admin_port(), "/metrics").second;
  EXPECT_GE(Metric(worker_metrics, R"(pv_send_latency_seconds_count{channel="text"})"), 1) << worker_metrics;
  EXPECT_GE(Metric(worker_metrics, R"(pv_send_latency_seconds_bucket{channel="text",le="+Inf"})"), 1);
  ASSERT_EQ(sid.substr(0, 2), "SM");
  EXPECT_NE(s_->redis.Command({"GET", "pv:msg:twilio:" + sid}).find(send_id), std::string::npos);

  auto ok =
      Twilio("status",
             fmt::format(R"({{"MessageSid":"{}","MessageStatus":"delivered","To":"{}","AccountSid":"AC1"}})",
                         sid, phone));
  EXPECT_EQ(ok.first, 204) << ok.second;
  auto failed =
      Twilio("status", fmt::format(R"({{"MessageSid":"{}","MessageStatus":"undelivered","ErrorCode":"30005",)"
                                   R"("To":"{}","AccountSid":"AC1"}})",
                                   sid, phone));
  EXPECT_EQ(failed.first, 204) << failed.second;
  auto events = EventsOf(send_id, [](size_t n) { return n >= 4; });
  auto statuses = Statuses(events);
  EXPECT_TRUE(Has(statuses, "delivered")) << ::testing::PrintToString(statuses);
  EXPECT_TRUE(Has(statuses, "bounced")) << ::testing::PrintToString(statuses);
  for (const auto& e : events) {
    if (Str(e, "status") == "delivered") {
      EXPECT_EQ(Str(e, "trigger_id"), trigger_id);
      EXPECT_EQ(Str(e, "provider"), "tw");
      EXPECT_EQ(Str(e, "provider_message_id"), sid);
    }
  }
  EXPECT_TRUE(WaitFor([&] { return Suppressed("text", "address:" + phone); }, 10s));

  double unknown =
      Metric(DispatcherMetrics(), R"(pv_feedback_receipts_total{source="twilio",result="unknown_send"})");
  EXPECT_EQ(
      Twilio("status", R"({"MessageSid":"SMnobody","MessageStatus":"delivered","To":"+15550000001"})").first,
      204);
  EXPECT_TRUE(WaitFor(
      [&] {
        return Metric(DispatcherMetrics(),
                      R"(pv_feedback_receipts_total{source="twilio",result="unknown_send"})") == unknown + 1;
      },
      20s));
}

TEST_F(FeedbackTest, StopSuppressesThePhoneAndStartLiftsIt) {
  std::string phone = fmt::format("+1666{:07d}", ::getpid() % 10000000);
  auto stop = Twilio("inbound",
                     fmt::format(R"({{"MessageSid":"{}","From":"{}","To":"+15550001111","Body":" stop "}})",
                                 Unique("SMin"), phone));
  EXPECT_EQ(stop.first, 200) << stop.second;
  EXPECT_NE(stop.second.find("<Response>"), std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return Suppressed("text", "address:" + phone); }, 20s));
  EXPECT_NE(Why("text", "address:" + phone).find(R"("reason":"stop")"), std::string::npos);
  std::string blocked =
      SendIdFor(Trigger("t1", R"({"external_id":"u-stop","phone":")" + phone + R"("})"), "text");
  auto events = EventsOf(blocked, [](size_t n) { return n >= 1; });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(Str(events[0], "status"), "suppressed");
  EXPECT_EQ(Str(events[0], "suppression_reason"), "stop");

  auto start =
      Twilio("inbound", fmt::format(R"({{"MessageSid":"{}","From":"{}","To":"+15550001111","Body":"START"}})",
                                    Unique("SMin"), phone));
  EXPECT_EQ(start.first, 200) << start.second;
  ASSERT_TRUE(WaitFor([&] { return !Suppressed("text", "address:" + phone); }, 20s));
  std::string again =
      SendIdFor(Trigger("t1", R"({"external_id":"u-stop","phone":")" + phone + R"("})"), "text");
  auto after = EventsOf(again, [](size_t n) { return n >= 1; });
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(Str(after[0], "status"), "queued");
}

TEST_F(FeedbackTest, AStartDoesNotLiftASuppressionForAnotherReason) {
  std::string phone = fmt::format("+1777{:07d}", ::getpid() % 10000000);
  s_->redis.Command({"SADD", "pv:suppress:text", "address:" + phone});  // by hand, before reasons existed
  auto start = Twilio(
      "inbound", fmt::format(R"({{"MessageSid":"{}","From":"{}","Body":"start"}})", Unique("SMin"), phone));
  EXPECT_EQ(start.first, 200);
  std::this_thread::sleep_for(2s);
  EXPECT_TRUE(Suppressed("text", "address:" + phone));
}

TEST_F(FeedbackTest, ADeadPushTokenIsSuppressedSoTheNextTriggerToItIsSuppressed) {
  std::string token = Unique("tok-dead");
  SendSpec spec;
  spec.channel = Channel::kPush;
  spec.campaign_id = "p1";
  spec.address = token;
  std::string value = SendValue(spec);
  // What a push worker writes for FCM UNREGISTERED / APNs 410: the send, dead-lettered with its reason.
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  kafka::Header headers[] = {{"pv-error-code", "unregistered"}, {"pv-error", "HTTP 404: UNREGISTERED"}};
  ASSERT_EQ(producer.Produce("pv.dlq.push", "user-1", value, headers, group), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  ASSERT_TRUE(WaitFor([&] { return Suppressed("push", "address:" + token); }, 20s)) << DispatcherMetrics();
  EXPECT_NE(Why("push", "address:" + token).find(R"("reason":"unregistered")"), std::string::npos);

  std::string next =
      SendIdFor(Trigger("p1", R"({"external_id":"u-push","device_token":")" + token + R"("})"), "push");
  auto events = EventsOf(next, [](size_t n) { return n >= 1; });
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(Str(events[0], "status"), "suppressed");
  EXPECT_EQ(Str(events[0], "suppression_reason"), "unregistered");
}

// ---- the status API: GET /api/client/triggers/:triggerId, the status feeder, pvctl status ----

struct Answer {
  int status = -1;
  std::string body;
  std::string retry_after;
};

Answer GetStatus(const std::string& id, const std::string& key) {
  httplib::Client c("127.0.0.1", FeedbackTest::IngestPort());
  c.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  auto r = c.Get(("/api/client/triggers/" + id).c_str(), headers);
  if (!r) return {};
  return {r->status, r->body, r->get_header_value("Retry-After")};
}

// The statuses of the trigger's (only) send, in the order the API lists them.
std::vector<std::string> StatusList(const std::string& body) {
  std::vector<std::string> out;
  auto d = ParseJson(body);
  if (!d.IsObject() || !d.HasMember("sends") || d["sends"].Empty()) return out;
  for (const auto& s : d["sends"][0]["statuses"].GetArray()) out.push_back(Str(s, "status"));
  return out;
}

// Polls the route until the trigger's statuses include every one of `wanted`; returns the last body.
std::string WaitForStatuses(const std::string& trigger_id, const std::vector<std::string>& wanted) {
  std::string body;
  WaitFor(
      [&] {
        Answer a = GetStatus(trigger_id, FeedbackTest::Secret());
        body = a.body;
        if (a.status != 200) return false;
        auto have = StatusList(a.body);
        for (const auto& w : wanted)
          if (std::find(have.begin(), have.end(), w) == have.end()) return false;
        return true;
      },
      20s);
  return body;
}

int Pvctl(const std::vector<std::string>& words, std::string& out, std::string& err) {
  std::vector<std::string> line = {"--config", FeedbackTest::ConfigPath()};
  line.insert(line.end(), words.begin(), words.end());
  pv::testing::PvctlResult r = pv::testing::RunPvctl(line);
  out = r.out;
  err = r.err;
  return r.rc;
}

TEST_F(FeedbackTest, StatusMovesQueuedSentDeliveredAndPvctlPrintsIt) {
  std::string phone = fmt::format("+1888{:07d}", ::getpid() % 10000000);
  std::string trigger_id = Trigger("t1", R"({"external_id":"u-status","phone":")" + phone + R"("})");
  std::string send_id = SendIdFor(trigger_id, "text");
  std::string body = WaitForStatuses(trigger_id, {"queued", "sent"});
  ASSERT_EQ(StatusList(body), (std::vector<std::string>{"queued", "sent"})) << body;
  auto d = ParseJson(body);
  EXPECT_EQ(Str(d, "trigger_id"), trigger_id);
  EXPECT_EQ(Str(d, "campaign_id"), "t1");
  ASSERT_EQ(d["sends"].Size(), 1U);
  const auto& send = d["sends"][0];
  EXPECT_EQ(Str(send, "send_id"), send_id);
  EXPECT_EQ(Str(send, "channel"), "text");
  const auto& sent = send["statuses"][1];
  EXPECT_EQ(Str(sent, "provider"), "tw");
  std::string sid = Str(sent, "provider_message_id");
  ASSERT_EQ(sid.substr(0, 2), "SM") << body;
  EXPECT_FALSE(Str(sent, "at").empty());

  // A signed Twilio status callback: delivered.
  auto ok = Twilio("status",
                   fmt::format(R"({{"MessageSid":"{}","MessageStatus":"delivered","To":"{}"}})", sid, phone));
  ASSERT_EQ(ok.first, 204) << ok.second;
  body = WaitForStatuses(trigger_id, {"delivered"});
  EXPECT_EQ(StatusList(body), (std::vector<std::string>{"queued", "sent", "delivered"})) << body;
  // Every entry fits status-redis's hash-max-listpack-value (1 KiB, compose's): the hash is a
  // listpack, 0.83 of a hashtable's memory (docs/operations.md "Redis").
  EXPECT_EQ(s_->status_redis.Command({"OBJECT", "ENCODING", StatusKeyOfSend(send_id)}), "listpack");
  // Its TTL came with the dispatcher's event (status.ttl_seconds, 7 days); the worker's and the
  // receipt's writes sent none, and the hash keeps it.
  const long long ttl_ms = std::stoll(s_->status_redis.Command({"PTTL", StatusKeyOfSend(send_id)}));
  EXPECT_GT(ttl_ms, 7LL * 24 * 3600 * 1000 - 600 * 1000);
  EXPECT_LE(ttl_ms, 7LL * 24 * 3600 * 1000);

  // pvctl status: by trigger id and by send id, text and --json (the API's body).
  std::string out;
  std::string err;
  ASSERT_EQ(Pvctl({"status", trigger_id}, out, err), 0) << err;
  EXPECT_NE(out.find("trigger " + trigger_id + "  campaign t1  project demo"), std::string::npos) << out;
  EXPECT_NE(out.find("send " + send_id + " (text)"), std::string::npos) << out;
  EXPECT_NE(out.find("provider_message_id=" + sid), std::string::npos) << out;
  size_t q = out.find("queued");
  size_t se = out.find("sent");
  size_t de = out.find("delivered");
  EXPECT_TRUE(q < se && se < de && de != std::string::npos) << out;
  ASSERT_EQ(Pvctl({"status", send_id, "--json"}, out, err), 0) << err;
  EXPECT_EQ(out, body + "\n");
  EXPECT_EQ(Pvctl({"status", "no-such-trigger"}, out, err), 3);
  EXPECT_NE(err.find("no statuses for no-such-trigger"), std::string::npos) << err;
  EXPECT_EQ(Pvctl({"status", "a/b"}, out, err), 2);

  // The feeder's Fetches wait status.batch_wait_ms (50 ms) for status.fetch_min_bytes of events, the
  // trigger consumer's dispatcher.fetch_wait_ms (5 ms) for dispatcher.fetch_min_bytes of triggers (the
  // dev broker honours both; the statuses above came through them).
  auto fetches = ParseJson(s_->broker.ControlGet("/long-poll"));
  ASSERT_TRUE(fetches.IsObject() && fetches.HasMember("fetch_wait_ms_by_client"));
  const auto& waits = fetches["fetch_wait_ms_by_client"];
  ASSERT_TRUE(waits.HasMember("pv-dispatcher-status") && waits.HasMember("pv-dispatcher"));
  EXPECT_EQ(waits["pv-dispatcher-status"].GetInt(), 50);
  EXPECT_EQ(waits["pv-dispatcher"].GetInt(), 5);
  ASSERT_TRUE(fetches.HasMember("fetch_min_bytes_by_client"));
  const auto& min_bytes = fetches["fetch_min_bytes_by_client"];
  ASSERT_TRUE(min_bytes.HasMember("pv-dispatcher-status") && min_bytes.HasMember("pv-dispatcher"));
  EXPECT_EQ(min_bytes["pv-dispatcher-status"].GetInt(), 256 * 1024);
  EXPECT_EQ(min_bytes["pv-dispatcher"].GetInt(), 64 * 1024);
}

// Statuses written before 2026-12-06 (the trigger's own hash, the send index) are still found, by
// the route and by pvctl, by trigger id and by send id, and with the ones written since.
TEST_F(FeedbackTest, StatusesInTheTriggersOwnHashAndTheSendIndexAreStillFound) {
  const std::string trigger_id = Unique("told");
  const std::string send_id = Unique("sold");
  const std::string queued =
      fmt::format(R"({{"send_id":"{}","channel":"email","status":"queued","at":"2026-06-10T15:00:00.001Z",)"
                  R"("project":"demo","campaign_id":"e1","provider":"log"}})",
                  send_id);
  ASSERT_EQ(s_->status_redis.Command({"HSET", "pv:status:" + trigger_id, "e:00000000000000aa", queued}), "1");
  ASSERT_EQ(s_->status_redis.Command({"SET", "pv:status:send:" + send_id, trigger_id}), "OK");
  Answer a = GetStatus(trigger_id, Secret());
  ASSERT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(StatusList(a.body), std::vector<std::string>{"queued"}) << a.body;
  std::string out;
  std::string err;
  ASSERT_EQ(Pvctl({"status", send_id, "--json"}, out, err), 0) << err;
  EXPECT_EQ(out, a.body + "\n");

  // The worker's event, read since: in the send's hash, shown with the one before.
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  producer.Produce(
      "pv.events", send_id,
      fmt::format(R"({{"v":1,"send_id":"{}","trigger_id":"{}","campaign_id":"e1","channel":"email",)"
                  R"("status":"sent","provider":"log","at":"2026-06-10T15:00:00.009Z"}})",
                  send_id, trigger_id),
      {}, group);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  std::string body = WaitForStatuses(trigger_id, {"queued", "sent"});
  EXPECT_EQ(StatusList(body), (std::vector<std::string>{"queued", "sent"})) << body;
  EXPECT_EQ(s_->status_redis.Command({"HLEN", StatusKeyOfSend(SendIdFor(trigger_id, "email"))}), "1");
  // A worker's event sends no TTL; this one made the send's hash, so the feeder gave it the TTL in a
  // second round trip (a hash without one would never expire, nor be evicted by volatile-ttl).
  const std::string hash = StatusKeyOfSend(SendIdFor(trigger_id, "email"));
  ASSERT_TRUE(WaitFor([&] { return std::stoll(s_->status_redis.Command({"PTTL", hash})) > 0; }, 10s))
      << s_->status_redis.Command({"PTTL", hash});
  EXPECT_LE(std::stoll(s_->status_redis.Command({"PTTL", hash})), 7LL * 24 * 3600 * 1000);
  EXPECT_GE(Metric(DispatcherMetrics(), "pv_status_ttl_writes_total"), 1) << DispatcherMetrics();
  ASSERT_EQ(Pvctl({"status", send_id, "--json"}, out, err), 0) << err;
  EXPECT_EQ(out, body + "\n");
}

TEST_F(FeedbackTest, StatusRouteRefusesUnknownOtherProjectsAndBadKeys) {
  std::string trigger_id =
      Trigger("e1", R"({"external_id":"u-st404","email":")" + Unique("st") + R"(@example.com"})");
  WaitForStatuses(trigger_id, {"queued"});
  Answer unknown = GetStatus("0190f1c2-7a3b-7c4d-9e5f-a1b2c3d4e5f6", Secret());
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find(R"("error":"trigger 0190f1c2-7a3b-7c4d-9e5f-a1b2c3d4e5f6 not found")"),
            std::string::npos)
      << unknown.body;
  // Another project's key: the same answer as an unknown trigger.
  Answer other = GetStatus(trigger_id, s_->other_secret);
  EXPECT_EQ(other.status, 404) << other.body;
  EXPECT_NE(other.body.find("trigger " + trigger_id + " not found"), std::string::npos) << other.body;
  EXPECT_EQ(GetStatus(trigger_id, GenerateKey(KeyScope::kSecret)).status, 401);
  EXPECT_EQ(GetStatus(trigger_id, "").status, 401);
  EXPECT_EQ(GetStatus("x%20y", Secret()).status, 404);
  EXPECT_EQ(GetStatus(std::string(65, 'a'), Secret()).status, 404);
  EXPECT_EQ(GetStatus(trigger_id + "/more", Secret()).status, 404);
  auto post = HttpPost(s_->ingest_port, "/api/client/triggers/" + trigger_id, "{}");
  EXPECT_EQ(post.first, 405);
  std::string metrics = IngestMetrics();
  EXPECT_GE(Metric(metrics, R"(pv_ingest_status_lookups_total{result="other_project"})"), 1) << metrics;
  EXPECT_GE(Metric(metrics, R"(pv_ingest_status_lookups_total{result="found"})"), 1);
  EXPECT_GE(Metric(metrics, R"(pv_ingest_requests_total{route="status",status="404"})"), 4);
}

TEST_F(FeedbackTest, StatusEventsReadAgainAreShownOnce) {
  std::string trigger_id =
      Trigger("e1", R"({"external_id":"u-replay","email":")" + Unique("rp") + R"(@example.com"})");
  std::string send_id = SendIdFor(trigger_id, "email");
  std::string body = WaitForStatuses(trigger_id, {"queued"});
  TopicReader reader(s_->broker.bootstrap(), {"pv.events"});
  std::string value;  // the record's bytes, as a redelivery reads them
  reader.ReadUntil(
      [&](const std::vector<Record>& all) {
        for (const auto& r : all)
          if (r.key == send_id) value = r.value;
        return !value.empty();
      },
      20s);
  ASSERT_FALSE(value.empty());
  double before = Metric(DispatcherMetrics(), R"(pv_status_events_total{result="duplicate"})");
  // The same record twice more, as a redelivery after a crash before the offset commit reads it.
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto group = std::make_shared<kafka::DeliveryGroup>(2);
  for (int i = 0; i < 2; ++i) producer.Produce("pv.events", send_id, value, {}, group);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  ASSERT_TRUE(WaitFor(
      [&] {
        return Metric(DispatcherMetrics(), R"(pv_status_events_total{result="duplicate"})") >= before + 2;
      },
      20s))
      << DispatcherMetrics();
  Answer again = GetStatus(trigger_id, Secret());
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(StatusList(again.body), std::vector<std::string>{"queued"}) << again.body;
  EXPECT_EQ(again.body, body);
}

// Past status.max_statuses, a trigger keeps its first statuses, also when they arrive in one batch
// (the feeder writes the whole batch, then removes the latest entries over the limit), and again when
// the same records are read twice.
TEST_F(FeedbackTest, StatusPastMaxStatusesKeepsTheFirstOnesAndCountsTheRest) {
  std::string trigger_id = Unique("tlimit");
  std::string send_id = Unique("slimit");
  std::vector<std::string> values;
  for (int i = 0; i < kMaxStatuses + 3; ++i) {
    values.push_back(fmt::format(
        R"({{"v":1,"send_id":"{}","trigger_id":"{}",{}"campaign_id":"e1","channel":"email",)"
        R"("status":"{}","receipt_id":"r-{}","at":"2026-06-10T15:00:{:02d}.000Z"}})",
        send_id, trigger_id, i == 0 ? R"("project":"demo",)" : "", i == 0 ? "queued" : "delivered", i, i));
  }
  auto over = [] { return Metric(DispatcherMetrics(), R"(pv_status_events_total{result="over_limit"})"); };
  auto duplicate = [] {
    return Metric(DispatcherMetrics(), R"(pv_status_events_total{result="duplicate"})");
  };
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  std::vector<std::string> kept;  // receipt ids of the entries in the store, by time
  for (int round = 0; round < 2; ++round) {
    double over_before = over();
    double duplicate_before = duplicate();
    auto group = std::make_shared<kafka::DeliveryGroup>(values.size());
    for (const auto& v : values) producer.Produce("pv.events", send_id, v, {}, group);
    ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
    ASSERT_TRUE(WaitFor([&] { return over() >= over_before + 3; }, 20s)) << DispatcherMetrics();
    EXPECT_EQ(over(), over_before + 3);
    EXPECT_EQ(duplicate(), duplicate_before + (round == 0 ? 0 : kMaxStatuses));
    Answer a = GetStatus(trigger_id, Secret());
    ASSERT_EQ(a.status, 200) << a.body;
    auto d = ParseJson(a.body);
    kept.clear();
    for (const auto& st : d["sends"][0]["statuses"].GetArray())
      kept.push_back(st.HasMember("receipt_id") ? Str(st, "receipt_id") : "");
    EXPECT_EQ(kept, (std::vector<std::string>{"r-0", "r-1", "r-2", "r-3", "r-4", "r-5"})) << a.body;
    // Entries only, in the send's hash: the project and campaign are in the dispatcher's entry, not
    // fields of their own, and the hash is found by the send's id, with no index.
    const std::string hash = StatusKeyOfSend(SendIdFor(trigger_id, "email"));
    EXPECT_EQ(s_->status_redis.Command({"HLEN", hash}), std::to_string(kMaxStatuses));
    EXPECT_EQ(s_->status_redis.Command({"EXISTS", "pv:status:" + trigger_id}), "0");
    EXPECT_EQ(s_->status_redis.Command({"EXISTS", "pv:status:send:" + send_id}), "0");
    EXPECT_EQ(s_->redis.Command({"EXISTS", hash}), "0");  // not in the marks Redis
  }
}

// The feeder writes a batch trigger by trigger: events of several triggers read interleaved land on
// their own trigger, and the limit of one that passes it takes nothing from the others.
TEST_F(FeedbackTest, InterleavedTriggersOfABatchKeepTheirOwnStatusesAndLimits) {
  const std::string over_trigger = Unique("tmix-over");
  const std::string small_trigger = Unique("tmix-small");
  const std::string other_trigger = Unique("tmix-other");
  auto event = [](const std::string& trigger, const std::string& send, int i) {
    return fmt::format(R"({{"v":1,"send_id":"{}","trigger_id":"{}",{}"campaign_id":"e1","channel":"email",)"
                       R"("status":"{}","receipt_id":"r-{}","at":"2026-06-10T15:01:{:02d}.000Z"}})",
                       send, trigger, i == 0 ? R"("project":"demo",)" : "", i == 0 ? "queued" : "delivered",
                       i, i);
  };
  // over_trigger: kMaxStatuses + 3 events; the two others two each, between them (fewer than the
  // three removed: counting a removal against another trigger would show).
  std::vector<std::pair<std::string, std::string>> records;  // key, value
  const std::string over_send = Unique("smix-over");
  const std::string small_send = Unique("smix-small");
  const std::string other_send = Unique("smix-other");
  for (int i = 0; i < kMaxStatuses + 3; ++i) {
    records.emplace_back(over_send, event(over_trigger, over_send, i));
    if (i < 2) {
      records.emplace_back(small_send, event(small_trigger, small_send, i));
      records.emplace_back(other_send, event(other_trigger, other_send, i));
    }
  }
  auto metric = [](const char* result) {
    return Metric(DispatcherMetrics(), fmt::format(R"(pv_status_events_total{{result="{}"}})", result));
  };
  const double over_before = metric("over_limit");
  const double applied_before = metric("applied");
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto group = std::make_shared<kafka::DeliveryGroup>(records.size());
  for (const auto& [key, value] : records) producer.Produce("pv.events", key, value, {}, group);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  ASSERT_TRUE(WaitFor(
      [&] {
        return metric("applied") + metric("over_limit") >=
               applied_before + over_before + static_cast<double>(records.size());
      },
      20s))
      << DispatcherMetrics();
  EXPECT_EQ(metric("over_limit"), over_before + 3);
  EXPECT_EQ(metric("applied"), applied_before + static_cast<double>(records.size()) - 3);
  auto receipts = [&](const std::string& trigger) {
    Answer a = GetStatus(trigger, Secret());
    EXPECT_EQ(a.status, 200) << a.body;
    std::vector<std::string> out;
    if (a.status != 200) return out;
    auto d = ParseJson(a.body);
    for (const auto& st : d["sends"][0]["statuses"].GetArray()) out.push_back(Str(st, "receipt_id"));
    return out;
  };
  EXPECT_EQ(receipts(over_trigger), (std::vector<std::string>{"r-0", "r-1", "r-2", "r-3", "r-4", "r-5"}));
  EXPECT_EQ(receipts(small_trigger), (std::vector<std::string>{"r-0", "r-1"}));
  EXPECT_EQ(receipts(other_trigger), (std::vector<std::string>{"r-0", "r-1"}));
}

// Last: stops both redis-servers (marks and suppressions; statuses). Triggers go on (204), the route
// answers 503 with Retry-After, and the feeder, paused meanwhile, applies what it missed once Redis is
// back.
TEST_F(FeedbackTest, ZStatusStoreDownTriggersGoOnStatusIs503AndNothingIsLost) {
  s_->redis.Stop();
  s_->status_redis.Stop();
  std::string trigger_id =
      Trigger("e1", R"({"external_id":"u-down","email":")" + Unique("dn") + R"(@example.com"})");
  ASSERT_FALSE(trigger_id.empty());
  Answer down = GetStatus(trigger_id, Secret());
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_EQ(down.retry_after, "1");
  EXPECT_NE(down.body.find("trigger statuses are unavailable"), std::string::npos) << down.body;
  // The dispatcher waits for its suppression store (the same redis-server here) before it queues the
  // trigger; an event of a worker's arrives meanwhile, and the feeder holds it until Redis is back.
  std::string send_id = SendIdFor(trigger_id, "email");
  std::string worker_event = fmt::format(
      R"({{"v":1,"send_id":"{}","trigger_id":"{}","campaign_id":"e1","channel":"email","status":"retrying",)"
      R"("provider":"log","error_code":"timeout","error":"provider timed out","attempt":1,"at":"{}"}})",
      send_id, trigger_id, FormatTimestamp(std::chrono::system_clock::now()));
  kafka::Settings settings;
  settings.brokers = s_->broker.bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  producer.Produce("pv.events", send_id, worker_event, {}, group);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  EXPECT_TRUE(WaitFor([] { return Metric(DispatcherMetrics(), "pv_status_feeder_stalled") == 1; }, 20s))
      << DispatcherMetrics();
  // A receipt meanwhile: the feedback pipeline keeps its batch (its marks are in the same Redis) and
  // applies it once Redis is back.
  auto [receipt_status, receipt_body] = SendGrid(fmt::format(
      R"([{{"event":"delivered","email":"x@example.com","send_id":"{}","trigger_id":"{}","campaign_id":"e1",)"
      R"("sg_event_id":"{}","sg_message_id":"m-down.filter","timestamp":1764000001}}])",
      send_id, trigger_id, Unique("sg-down")));
  EXPECT_EQ(receipt_status, 204) << receipt_body;
  EXPECT_TRUE(WaitFor([] { return Metric(DispatcherMetrics(), "pv_feedback_stalled") == 1; }, 20s))
      << DispatcherMetrics();
  std::string out;
  std::string err;
  EXPECT_EQ(Pvctl({"status", trigger_id, "--timeout", "1"}, out, err), 1);

  s_->redis.Start();
  s_->status_redis.Start();
  std::string body = WaitForStatuses(trigger_id, {"queued", "retrying"});  // and maybe delivered
  auto statuses = StatusList(body);
  std::sort(statuses.begin(), statuses.end());
  EXPECT_TRUE(Has(statuses, "queued")) << body;
  EXPECT_TRUE(Has(statuses, "retrying")) << body;
  EXPECT_TRUE(WaitFor([] { return Metric(DispatcherMetrics(), "pv_status_feeder_stalled") == 0; }, 10s));
  auto delivered = EventsOf(send_id, [](size_t n) { return n >= 3; });  // queued, retrying, delivered
  EXPECT_TRUE(Has(Statuses(delivered), "delivered")) << ::testing::PrintToString(Statuses(delivered));
  EXPECT_TRUE(WaitFor([] { return Metric(DispatcherMetrics(), "pv_feedback_stalled") == 0; }, 10s));
}

}  // namespace
}  // namespace pv::testing
