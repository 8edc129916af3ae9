// Delivery feedback end to end, with the provider fake sending real signed webhooks: pv-ingest
// verifies them and publishes pv.receipts, pv-dispatcher's feedback pipeline turns them into events
// and suppressions, and the dispatcher then suppresses the next trigger naming the reason. The SMS
// path goes through a real sms-worker, whose record of Twilio's MessageSid maps the status callback
// back to its send. One stack (dev broker, redis-server, fake, ingest, dispatcher, sms-worker) serves
// every test; each test uses addresses of its own.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>

#include "process.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/log.hpp"
#include "pv/topics.hpp"
#include "topic_reader.hpp"
#include "worker_env.hpp"

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

// Waits for a port file written by a process we started.
int WaitPort(const std::string& path, Subprocess& process, const std::string& log) {
  bool ok = WaitFor([&] { return std::filesystem::exists(path) || !process.Running(); }, 30s);
  if (!ok || !process.Running()) throw std::runtime_error("did not start: " + ReadFile(log));
  return std::stoi(Trim(ReadFile(path)));
}

// The value of one series in a Prometheus exposition, or 0.
double Metric(const std::string& exposition, const std::string& series) {
  size_t pos = 0;
  while ((pos = exposition.find(series, pos)) != std::string::npos) {
    bool line_start = pos == 0 || exposition[pos - 1] == '\n';
    if (line_start && pos + series.size() < exposition.size() && exposition[pos + series.size()] == ' ') {
      return std::stod(exposition.substr(pos + series.size() + 1));
    }
    pos += series.size();
  }
  return 0;
}

class FeedbackTest : public ::testing::Test {
 protected:
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
    ProviderFake fake{{"--twilio-sid", "AC1", "--twilio-token", "tw-token"}};
    std::string secret = GenerateKey(KeyScope::kSecret);
    int ingest_admin = FreePort();
    std::unique_ptr<Subprocess> ingest;
    std::unique_ptr<Subprocess> dispatcher;
    std::unique_ptr<WorkerProcess> worker;
    int ingest_port = 0;
    int dispatcher_admin = 0;

    Stack() {
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
                         {{"key_1", "test", "demo", KeyScope::kSecret, HashKey(secret), "", "", ""}});
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
          "workers:\n  admin_port: 0\n  outbox_dir: \"{}\"\n",
          broker.bootstrap(), dir.File("catalog"), dir.File("keys.yaml"), redis.url(), ingest_admin,
          public_key, fake.url(), dir.File("outbox"));
      WriteFile(dir.File("config.yaml"), config);
      ingest = std::make_unique<Subprocess>(
          std::vector<std::string>{PV_INGEST_BIN, "--config", dir.File("config.yaml"), "--port-file",
                                   dir.File("ingest.port")},
          std::map<std::string, std::string>{}, dir.File("ingest.log"));
      ingest_port = WaitPort(dir.File("ingest.port"), *ingest, dir.File("ingest.log"));
      dispatcher = std::make_unique<Subprocess>(
          std::vector<std::string>{PV_DISPATCHER_BIN, "--config", dir.File("config.yaml"), "--port-file",
                                   dir.File("dispatcher.port")},
          std::map<std::string, std::string>{}, dir.File("dispatcher.log"));
      dispatcher_admin = WaitPort(dir.File("dispatcher.port"), *dispatcher, dir.File("dispatcher.log"));
      worker = std::make_unique<WorkerProcess>(Channel::kSms, config, dir.File("sms-worker.log"));
      worker->Start();
      // Every consumer owns its partitions before the first test (group joins take seconds here).
      bool joined = WaitFor(
          [&] {
            std::string log = ReadFile(dir.File("dispatcher.log"));
            return log.find(R"("group":"pv-feedback","count":)") != std::string::npos &&
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
    TopicReader reader(s_->broker.bootstrap(), "pv.events");
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
  TopicReader receipts(s_->broker.bootstrap(), "pv.receipts");
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

}  // namespace
}  // namespace pv::testing
