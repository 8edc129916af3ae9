// pv-dispatcher against the dev broker (and a real redis-server): triggers in, rendered sends out,
// checked field by field; send windows through the delay ladder; SIGKILL mid-stream; Redis outage;
// catalog reload. Each test starts its own broker and dispatcher processes and stops them by pid.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "pv/delay_ladder.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/kafka.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/process_metrics.hpp"
#include "pv/testing/records.hpp"
#include "pv/testing/redis_server.hpp"
#include "pv/testing/services.hpp"
#include "pv/testing/topic_reader.hpp"
#include "pv/topics.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kEmailCampaign = R"(id: "e1"
project: demo
name: Order shipped
channel: email
provider: log
fallback_provider: smtp
default_locale: en
templates:
  en:
    from: "Shop <shop@example.com>"
    reply_to: "help@example.com"
    subject: "Order {{event.order_id}} for {{user.first_name}}"
    html: "<p>Hi {{user.first_name}}</p>{{#event.items}}<li>{{name}} x {{qty}}</li>{{/event.items}}"
  pt:
    from: "Loja <loja@example.com>"
    subject: "Pedido {{event.order_id}}"
    html: "<p>Olá {{user.first_name}}</p>"
    text: "Olá {{user.first_name}}"
)";

constexpr const char* kTextCampaign = R"(id: "s1"
project: demo
name: Code
channel: text
provider: twilio
templates:
  en: {body: "Code {{event.code}} for {{campaign.name}}"}
)";

constexpr const char* kPushCampaign = R"(id: "p1"
project: demo
name: Cart
channel: push
provider: fcm
templates:
  en: {title: "Hi {{user.first_name}}", body: "{{event.n}} items", badge: "{{event.n}}", sound: default,
       data: {screen: cart, cart_id: "{{event.cart}}"}}
)";

std::string Str(const rapidjson::Value& v, const char* name) {
  auto s = FindString(v, name);
  return s ? std::string(*s) : std::string("<absent>");
}

std::string H(const Record& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string("<absent>") : it->second;
}

// Whether the log shows a non-empty partition assignment in `group` (a joining member's first,
// cooperative, assignment may be empty).
bool HasAssignment(const std::string& log, const std::string& group) {
  std::string needle = fmt::format(R"("event":"partitions_assigned","group":"{}","count":)", group);
  for (size_t pos = log.find(needle); pos != std::string::npos; pos = log.find(needle, pos + 1)) {
    char c = pos + needle.size() < log.size() ? log[pos + needle.size()] : '0';
    if (c >= '1' && c <= '9') return true;
  }
  return false;
}

class DispatcherIT : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.Write("catalog/e1.yaml", kEmailCampaign);
    dir_.Write("catalog/s1.yaml", kTextCampaign);
    dir_.Write("catalog/p1.yaml", kPushCampaign);
  }

  void TearDown() override {
    if (HasFailure()) {
      for (const auto& log : logs_) {
        std::string text = log == "broker.log" && broker_ ? broker_->Log() : ReadFile(dir_.File(log));
        if (text.size() > 6000) text = "..." + text.substr(text.size() - 6000);
        std::fprintf(stderr, "---- %s ----\n%s\n", log.c_str(), text.c_str());
      }
    }
  }

  void StartBroker(const std::vector<std::string>& extra_topics = {"pv.delay.1s:2", "pv.delay.2s:2"}) {
    std::vector<std::string> args = {"--log-level", "warn"};
    for (const auto& topic : extra_topics) {
      args.push_back("--topic");
      args.push_back(topic);
    }
    broker_ = std::make_unique<DevBroker>(1, args);
    logs_.push_back("broker.log");
  }

  // `kafka_properties`: more lines of kafka.producer_properties.
  void WriteConfig(const std::string& redis_url, const std::string& extra = "",
                   const std::string& kafka_properties = "") {
    dir_.Write("config.yaml", "kafka:\n  brokers: \"" + broker_->bootstrap() +
                                  "\"\n  consumer_properties:\n    session.timeout.ms: \"6000\"\n"
                                  "    heartbeat.interval.ms: \"500\"\n"
                                  "  producer_properties:\n    enable.idempotence: \"true\"\n" +
                                  kafka_properties + "catalog_dir: " + dir_.File("catalog") +
                                  "\n"
                                  "redis:\n  url: \"" +
                                  redis_url +
                                  "\"\n"
                                  "log:\n  level: info\n"
                                  "dispatcher:\n  admin_host: 127.0.0.1\n  admin_port: 0\n"
                                  "  delay_tiers: [1s, 2s]\n  lag_interval: 200\n  retry_backoff: 200\n" +
                                  extra);
  }

  // Starts pv-dispatcher and waits until it owns the trigger partitions (the group join takes a few
  // seconds on the dev broker).
  std::unique_ptr<Subprocess> StartDispatcher(const std::string& name = "dispatcher",
                                              bool wait_for_delay_group = true) {
    std::string port_file = dir_.File(name + ".port");
    std::remove(port_file.c_str());
    logs_.push_back(name + ".log");
    auto p = std::make_unique<Subprocess>(
        std::vector<std::string>{DispatcherBinary(), "--config", dir_.File("config.yaml"), "--port-file",
                                 port_file},
        std::map<std::string, std::string>{}, dir_.File(name + ".log"));
    std::string port = WaitForFile(port_file, 20s);
    EXPECT_FALSE(port.empty()) << p->Log();
    admin_port_ = port.empty() ? 0 : std::stoi(port);
    bool assigned = WaitFor(
        [&] {
          std::string log = p->Log();
          return HasAssignment(log, "pv-dispatcher") &&
                 (!wait_for_delay_group || HasAssignment(log, "pv-dispatcher-delay"));
        },
        30s);
    EXPECT_TRUE(assigned) << p->Log();
    return p;
  }

  std::string Metrics() { return HttpGet(admin_port_, "/metrics").second; }

  TempDir dir_;
  std::vector<std::string> logs_;
  std::unique_ptr<DevBroker> broker_;
  int admin_port_ = 0;
};

TEST_F(DispatcherIT, TriggersBecomeRenderedSendsFieldByField) {
  StartBroker();
  RedisServer redis;
  redis.Command({"SADD", "pv:suppress:email", "address:carol@example.com"});
  redis.Command({"SADD", "pv:suppress:text", "user:demo:u-dave"});
  // A campaign whose html grows with the event: over message.max.bytes it fails permanently (DLQ)
  // instead of stalling its partition on a record librdkafka refuses again and again.
  dir_.Write("catalog/big.yaml",
             "id: \"big\"\nproject: demo\nchannel: email\nprovider: log\ntemplates:\n"
             "  en: {from: \"a@example.com\", subject: \"s\", html: \"{{#event.items}}<p>" +
                 std::string(200, 'x') + " {{name}}</p>{{/event.items}}\"}\n");
  WriteConfig(redis.url(), "", "    message.max.bytes: \"20000\"\n");  // a producer property
  auto dispatcher = StartDispatcher();
  // Besides its own families, the build and the process_* metrics (every binary's AdminServer).
  EXPECT_EQ(pv::testing::CheckProcessMetrics(Metrics(), dispatcher->pid()), "");

  TriggerWriter writer(broker_->bootstrap());
  std::string t1 = writer.Write(
      "e1", "u-ana",
      R"({"external_id":"u-ana","email":"ana@example.com","first_name":"Ana <3","locale":"pt-BR"})",
      R"({"order_id":"A-1"})");
  std::string t2 = writer.Write(
      "e1", "u-bob", R"({"external_id":"u-bob","email":"bob@example.com","first_name":"Bob","locale":"fr"})",
      R"({"order_id":"B-2","items":[{"name":"Pen","qty":2},{"name":"Ink","qty":1}]})");
  std::string t3 =
      writer.Write("s1", "u-cy", R"({"external_id":"u-cy","phone":"+15550001111"})", R"({"code":"123456"})");
  std::string t4 =
      writer.Write("p1", "u-di", R"({"external_id":"u-di","device_token":"tok-1","first_name":"Di"})",
                   R"({"n":3,"cart":"c-9"})");
  std::string t5 = writer.Write("e1", "u-carol", R"({"external_id":"u-carol","email":"Carol@Example.com"})",
                                R"({"order_id":"C"})");
  std::string t6 =
      writer.Write("p1", "u-ed", R"({"external_id":"u-ed","device_token":"tok-2"})", R"({"n":"many"})");
  std::string t7 =
      writer.Write("zz", "u-fay", R"({"external_id":"u-fay","email":"fay@example.com"})", R"({})");
  std::string t8 =
      writer.Write("s1", "u-dave", R"({"external_id":"u-dave","phone":"+15550002222"})", R"({"code":"1"})");
  std::string items;
  for (int i = 0; i < 100; ++i) items += fmt::format(R"({}{{"name":"n{}"}})", i ? "," : "", i);
  std::string t9 = writer.Write("big", "u-gus", R"({"external_id":"u-gus","email":"gus@example.com"})",
                                R"({"items":[)" + items + "]}");
  ASSERT_TRUE(writer.Flush());

  TopicReader reader(broker_->bootstrap(), {"pv.send.email", "pv.send.sms", "pv.send.push", "pv.events",
                                            "pv.dlq.push", "pv.dlq.email"});
  reader.ReadUntil(
      [](const std::vector<Record>& rs) {
        std::map<std::string, int> n;
        for (const auto& r : rs) ++n[r.topic];
        return n["pv.events"] >= 9 && n["pv.send.email"] >= 2 && n["pv.send.sms"] >= 1 &&
               n["pv.send.push"] >= 1 && n["pv.dlq.push"] >= 1 && n["pv.dlq.email"] >= 2;
      },
      20s);
  reader.ReadUntil([](const auto&) { return false; }, 500ms);  // anything produced by mistake shows up by now

  // Events: one per trigger, keyed by send_id, with the outcome.
  std::map<std::string, rapidjson::Document> events;
  for (const Record& r : reader.Of("pv.events")) {
    auto d = ParseJson(r.value);
    EXPECT_EQ(r.key, Str(d, "send_id"));
    events[Str(d, "trigger_id")] = std::move(d);
  }
  ASSERT_EQ(events.size(), 9U);
  EXPECT_EQ(Str(events[t1], "status"), "queued");
  EXPECT_EQ(Str(events[t2], "status"), "queued");
  EXPECT_EQ(Str(events[t3], "status"), "queued");
  EXPECT_EQ(Str(events[t4], "status"), "queued");
  EXPECT_EQ(Str(events[t5], "status"), "suppressed");
  EXPECT_EQ(Str(events[t5], "reason"), "address");
  EXPECT_EQ(Str(events[t6], "status"), "failed");
  EXPECT_EQ(Str(events[t6], "error_code"), "render_error");
  EXPECT_EQ(Str(events[t7], "status"), "failed");
  EXPECT_EQ(Str(events[t7], "error_code"), "unknown_campaign");
  EXPECT_EQ(Str(events[t8], "status"), "suppressed");
  EXPECT_EQ(Str(events[t8], "reason"), "user");
  EXPECT_EQ(Str(events[t9], "status"), "failed");
  EXPECT_EQ(Str(events[t9], "error_code"), "send_too_large");
  EXPECT_EQ(Str(events[t1], "send_id"), SendIdFor(t1, "email"));
  EXPECT_EQ(Str(events[t1], "campaign_id"), "e1");
  EXPECT_EQ(Str(events[t1], "channel"), "email");
  EXPECT_EQ(Str(events[t1], "provider"), "log");
  EXPECT_EQ(Str(events[t3], "channel"), "text");
  EXPECT_TRUE(ParseTimestamp(Str(events[t1], "at")).has_value());

  // Email sends.
  auto emails = reader.Of("pv.send.email");
  ASSERT_EQ(emails.size(), 2U);
  std::map<std::string, rapidjson::Document> sends;
  for (const Record& r : emails) {
    auto d = ParseJson(r.value);
    EXPECT_EQ(r.key, Str(d["to"], "external_id"));
    EXPECT_EQ(H(r, "pv-send-id"), Str(d, "send_id"));
    sends[Str(d, "trigger_id")] = std::move(d);
  }
  {
    const auto& d = sends[t1];
    EXPECT_EQ(d["v"].GetInt(), 1);
    EXPECT_EQ(Str(d, "send_id"), SendIdFor(t1, "email"));
    EXPECT_EQ(Str(d, "project"), "demo");
    EXPECT_EQ(Str(d, "campaign_id"), "e1");
    EXPECT_EQ(Str(d, "channel"), "email");
    EXPECT_EQ(Str(d, "provider"), "log");
    EXPECT_EQ(Str(d, "fallback_provider"), "smtp");
    EXPECT_EQ(d["attempt"].GetInt(), 1);
    EXPECT_TRUE(ParseTimestamp(Str(d, "created_at")).has_value());
    EXPECT_EQ(Str(d, "locale"), "pt");
    EXPECT_EQ(Str(d["to"], "email"), "ana@example.com");
    EXPECT_EQ(Str(d["to"], "external_id"), "u-ana");
    EXPECT_EQ(Str(d["content"], "from"), "Loja <loja@example.com>");
    EXPECT_EQ(Str(d["content"], "subject"), "Pedido A-1");
    EXPECT_EQ(Str(d["content"], "html"), "<p>Olá Ana &lt;3</p>");
    EXPECT_EQ(Str(d["content"], "text"), "Olá Ana <3");
    EXPECT_EQ(Str(d["content"], "reply_to"), "<absent>");
  }
  {
    const auto& d = sends[t2];
    EXPECT_EQ(Str(d, "locale"), "en");
    EXPECT_EQ(Str(d["content"], "subject"), "Order B-2 for Bob");
    EXPECT_EQ(Str(d["content"], "reply_to"), "help@example.com");
    EXPECT_EQ(Str(d["content"], "html"), "<p>Hi Bob</p><li>Pen x 2</li><li>Ink x 1</li>");
    EXPECT_EQ(Str(d["content"], "text"), "Hi Bob\n\n- Pen x 2\n- Ink x 1");
  }
  // Text.
  auto texts = reader.Of("pv.send.sms");
  ASSERT_EQ(texts.size(), 1U);
  {
    auto d = ParseJson(texts[0].value);
    EXPECT_EQ(Str(d, "trigger_id"), t3);
    EXPECT_EQ(Str(d, "channel"), "text");
    EXPECT_EQ(Str(d, "send_id"), SendIdFor(t3, "text"));
    EXPECT_EQ(Str(d["to"], "phone"), "+15550001111");
    EXPECT_EQ(Str(d["content"], "body"), "Code 123456 for Code");
    EXPECT_EQ(texts[0].key, "u-cy");
  }
  // Push.
  auto pushes = reader.Of("pv.send.push");
  ASSERT_EQ(pushes.size(), 1U);
  {
    auto d = ParseJson(pushes[0].value);
    EXPECT_EQ(Str(d, "trigger_id"), t4);
    EXPECT_EQ(Str(d["to"], "device_token"), "tok-1");
    EXPECT_EQ(Str(d["content"], "title"), "Hi Di");
    EXPECT_EQ(Str(d["content"], "body"), "3 items");
    EXPECT_EQ(Str(d["content"], "sound"), "default");
    EXPECT_EQ(d["content"]["badge"].GetInt(), 3);
    EXPECT_EQ(Str(d["content"]["data"], "screen"), "cart");
    EXPECT_EQ(Str(d["content"]["data"], "cart_id"), "c-9");
  }
  // Failures: the trigger, unchanged, in the channel's DLQ with the reason.
  auto dlq_push = reader.Of("pv.dlq.push");
  ASSERT_EQ(dlq_push.size(), 1U);
  EXPECT_EQ(Str(ParseJson(dlq_push[0].value), "trigger_id"), t6);
  EXPECT_EQ(dlq_push[0].key, "u-ed");
  EXPECT_EQ(H(dlq_push[0], ladder::kErrorCode), "render_error");
  EXPECT_NE(H(dlq_push[0], ladder::kError).find("badge"), std::string::npos);
  EXPECT_EQ(H(dlq_push[0], ladder::kTarget), "pv.triggers");
  EXPECT_EQ(H(dlq_push[0], ladder::kProvider), "fcm");
  EXPECT_TRUE(ParseTimestamp(H(dlq_push[0], ladder::kFailedAt)).has_value());
  std::map<std::string, std::string> dlq_email;  // trigger -> error code
  for (const auto& r : reader.Of("pv.dlq.email"))
    dlq_email[Str(ParseJson(r.value), "trigger_id")] = H(r, ladder::kErrorCode);
  EXPECT_EQ(dlq_email,
            (std::map<std::string, std::string>{{t7, "unknown_campaign"}, {t9, "send_too_large"}}));

  // Admin endpoints and metrics.
  EXPECT_EQ(HttpGet(admin_port_, "/healthz").first, 200);
  EXPECT_EQ(HttpGet(admin_port_, "/readyz").first, 200);
  std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_consumed_total{topic="pv.triggers"})"), 9);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_queued_total{channel="email"})"), 2);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_suppressed_total{channel="email"})"), 1);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_failed_total{channel="push",error_code="render_error"})"), 1);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_render_seconds_count)"), 6);
  EXPECT_TRUE(WaitFor(
      [&] { return MetricValue(Metrics(), R"(pv_dispatcher_in_flight{pipeline="triggers"})") == 0; }, 5s));
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string text = Metrics();
        double total = 0;
        for (int p = 0; p < 6; ++p) {
          double v = MetricValue(
              text, R"(pv_dispatcher_consumer_lag{group="pv-dispatcher",topic="pv.triggers",partition=")" +
                        std::to_string(p) + "\"}");
          if (v < 0) return false;
          total += v;
        }
        return total == 0;
      },
      5s));
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// The window opens at the start of a UTC minute, so the trigger is deferred through the ladder
// (tiers 1s and 2s: it hops down many times) and must come out at or after that opening. Windows have
// minute resolution and the dispatcher runs on the real clock, so the wait is up to a minute: the
// opening is chosen only once the dispatcher owns its partitions (the group joins take seconds, more
// under load) as the first minute boundary at least 4 s ahead, and the campaign is added then (the
// dispatcher reloads the catalog for an unknown campaign).
TEST_F(DispatcherIT, DeferredSendComesOutNoEarlierThanDue) {
  StartBroker();
  WriteConfig("");
  auto dispatcher = StartDispatcher();
  TriggerWriter writer(broker_->bootstrap());
  TopicReader reader(broker_->bootstrap(), {"pv.events", "pv.send.push", "pv.delay.1s", "pv.delay.2s"});

  auto now = std::chrono::system_clock::now();
  auto opening = std::chrono::ceil<std::chrono::minutes>(now + 4s);
  auto minute_of_day = std::chrono::duration_cast<std::chrono::minutes>(
                           opening - std::chrono::floor<std::chrono::days>(opening))
                           .count();
  auto clock = [](long m) {
    char buf[8];
    std::snprintf(buf, sizeof(buf), "%02ld:%02ld", (m / 60) % 24, m % 60);
    return std::string(buf);
  };
  std::string end = clock((minute_of_day + 5) % 1440);
  if (end == "00:00") end = "24:00";
  dir_.Write("catalog/w1.yaml",
             "id: \"w1\"\nproject: demo\nname: Windowed\nchannel: push\nprovider: log\n"
             "timezone: UTC\nsend_window: {start: \"" +
                 clock(minute_of_day) + "\", end: \"" + end +
                 "\"}\ntemplates:\n  en: {body: \"hello {{user.external_id}}\"}\n");
  std::string id =
      writer.Write("w1", "u-w", R"({"external_id":"u-w","device_token":"tok-w","timezone":"UTC"})", "{}");
  ASSERT_TRUE(writer.Flush());

  // Until the send and its "queued" event are both read: they are two topics, and the reader may get
  // the send first (stopping at the send alone read the event before it arrived, under load).
  auto timeout =
      std::chrono::duration_cast<std::chrono::milliseconds>(opening - std::chrono::system_clock::now()) + 20s;
  reader.ReadUntil(
      [](const std::vector<Record>& rs) {
        bool send = false;
        bool queued = false;
        for (const auto& r : rs) {
          send = send || r.topic == "pv.send.push";
          queued =
              queued || (r.topic == "pv.events" && r.value.find(R"("status":"queued")") != std::string::npos);
        }
        return send && queued;
      },
      timeout);

  auto events = reader.Of("pv.events");
  ASSERT_GE(events.size(), 2U);
  auto deferred = ParseJson(events[0].value);
  EXPECT_EQ(Str(deferred, "status"), "deferred");
  EXPECT_EQ(Str(deferred, "send_id"), SendIdFor(id, "push"));
  EXPECT_EQ(Str(deferred, "due_at"), FormatTimestamp(opening));
  EXPECT_EQ(Str(ParseJson(events[1].value), "status"), "queued");

  auto sends = reader.Of("pv.send.push");
  ASSERT_EQ(sends.size(), 1U);
  auto send = ParseJson(sends[0].value);
  EXPECT_EQ(Str(send, "trigger_id"), id);
  EXPECT_EQ(Str(send, "send_id"), SendIdFor(id, "push"));
  EXPECT_EQ(Str(send["content"], "body"), "hello u-w");
  EXPECT_GE(sends[0].timestamp, std::chrono::floor<std::chrono::milliseconds>(opening));
  EXPECT_GE(sends[0].read_at, opening);
  EXPECT_GE(*ParseTimestamp(Str(send, "created_at")), opening);
  // It was late by little: the ladder sleeps until due, it does not poll on a period.
  EXPECT_LT(sends[0].read_at, opening + 3s);

  // It travelled the ladder: first into the 2 s tier, then hops; every copy carries the due time and
  // the target, and the value unchanged.
  auto delayed = reader.Of("pv.delay.2s");
  auto delayed1 = reader.Of("pv.delay.1s");
  delayed.insert(delayed.end(), delayed1.begin(), delayed1.end());
  ASSERT_GE(delayed.size(), 1U);
  for (const auto& r : delayed) {
    EXPECT_EQ(H(r, ladder::kDueAt), FormatTimestamp(opening));
    EXPECT_EQ(H(r, ladder::kTarget), "pv.triggers");
    EXPECT_EQ(H(r, ladder::kAttempt), "1");
    EXPECT_EQ(Str(ParseJson(r.value), "trigger_id"), id);
    EXPECT_EQ(r.key, "u-w");
  }
  std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_deferred_total{channel="push"})"), 1);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_queued_total{channel="push"})"), 1);
  // Released to its target from one tier or the other (a series not yet incremented is absent: -1).
  double released = 0;
  for (const char* tier : {"1s", "2s"})
    released += std::max(
        0.0, MetricValue(m, fmt::format(R"(pv_dispatcher_delay_released_total{{tier="{}"}})", tier)));
  EXPECT_GE(released, 1);
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// The ladder on its own: a record due in 3.5 s, put in the 2 s tier, hops and reaches its target no
// earlier than due, with its headers; one already overdue goes at once (put in the 2 s tier too, so
// that "at once" and "held for its tier" are 2 s apart, not 1 s: a loaded machine may take a second
// to fetch and produce it; and first, since a partition's records are released in order).
TEST_F(DispatcherIT, LadderReleasesToTheTargetWhenDue) {
  StartBroker({"pv.delay.1s:2", "pv.delay.2s:2", "pv.test.target:1"});
  WriteConfig("");
  auto dispatcher = StartDispatcher();
  kafka::Settings settings;
  settings.brokers = broker_->bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto tiers = ladder::ParseTiers({"1s", "2s"});
  auto group = std::make_shared<kafka::DeliveryGroup>(2);
  auto now = std::chrono::system_clock::now();
  auto due = std::chrono::floor<std::chrono::milliseconds>(now + 3500ms);
  auto overdue = std::chrono::floor<std::chrono::milliseconds>(now - 1min);
  auto slow_tier = ladder::ParseTiers({"2s"});
  ASSERT_EQ(ladder::Schedule(producer, slow_tier, "pv.test.target", "k2", "overdue", overdue, 1, {}, group, now),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  kafka::Header extra{"x-trace", "abc"};
  ASSERT_EQ(ladder::Schedule(producer, tiers, "pv.test.target", "k1", "later", due, 4,
                             std::span<const kafka::Header>(&extra, 1), group, now),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));

  TopicReader reader(broker_->bootstrap(), {"pv.test.target", "pv.delay.2s"});
  reader.ReadUntil([](const std::vector<Record>& rs) {
    return std::count_if(rs.begin(), rs.end(), [](const Record& r) { return r.topic == "pv.test.target"; }) >= 2;
  }, 20s);
  auto out = reader.Of("pv.test.target");
  ASSERT_EQ(out.size(), 2U);
  std::map<std::string, Record> by_key;
  for (const auto& r : out) by_key[r.key] = r;
  std::optional<Record> overdue_held;
  for (const auto& r : reader.Of("pv.delay.2s"))
    if (r.key == "k2") overdue_held = r;
  ASSERT_TRUE(overdue_held.has_value());
  EXPECT_EQ(by_key["k2"].value, "overdue");
  // Overdue: released as soon as it is read, not held for its tier (which would be >= 2 s after it
  // was produced to the tier).
  EXPECT_LT(by_key["k2"].timestamp - overdue_held->timestamp, 1500ms);
  const Record& later = by_key["k1"];
  EXPECT_EQ(later.value, "later");
  EXPECT_GE(later.timestamp, due);       // produced to the target no earlier than due
  EXPECT_LT(later.timestamp - due, 1s);  // and not much later: the scheduler sleeps until due
  EXPECT_EQ(H(later, ladder::kAttempt), "4");
  EXPECT_EQ(H(later, ladder::kTarget), "pv.test.target");
  EXPECT_EQ(H(later, ladder::kDueAt), FormatTimestamp(due));
  EXPECT_EQ(H(later, "x-trace"), "abc");
  std::string m = Metrics();
  EXPECT_GE(MetricValue(m, R"(pv_dispatcher_delay_hops_total{tier="2s"})"), 1);
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// SIGKILL while triggers stream in and sends stream out; after a restart every trigger has its send
// (a trigger whose outputs were produced but whose offset was not committed is processed again: its
// duplicate has the same send_id).
TEST_F(DispatcherIT, SigkillMidStreamThenRestartLosesNothing) {
  StartBroker();
  WriteConfig("", "  max_in_flight: 200\n");
  auto dispatcher = StartDispatcher("dispatcher-1");
  constexpr int kTotal = 3000;
  std::vector<std::string> ids(kTotal);
  std::atomic<int> written{0};
  std::thread feeder([&] {
    TriggerWriter writer(broker_->bootstrap());
    for (int i = 0; i < kTotal; ++i) {
      std::string user = "u-" + std::to_string(i % 97);
      ids[i] = writer.Write(
          "e1", user,
          fmt::format(R"({{"external_id":"{0}","email":"{0}@example.com","first_name":"N"}})", user),
          fmt::format(R"({{"order_id":"{}"}})", i));
      if (i % 100 == 99) {
        writer.Flush();
        written.store(i + 1);
        std::this_thread::sleep_for(60ms);  // ~1,600 triggers/s: the kill lands mid-stream
      }
    }
    writer.Flush();
    written.store(kTotal);
  });
  TopicReader reader(broker_->bootstrap(), {"pv.send.email"});
  reader.ReadUntil([](const std::vector<Record>& rs) { return rs.size() >= 1500; }, 30s);
  dispatcher->Kill();
  int at_kill = written.load();
  size_t sent_at_kill = reader.ReadUntil([](const auto&) { return false; }, 1s).size();
  feeder.join();
  EXPECT_LT(at_kill, kTotal) << "the kill came after the stream ended: the test proves less than it should";

  auto restarted = StartDispatcher("dispatcher-2");
  std::set<std::string> seen;
  size_t checked = 0;
  auto complete = [&](const std::vector<Record>& rs) {  // incremental: called after every record
    for (; checked < rs.size(); ++checked) seen.insert(Str(ParseJson(rs[checked].value), "trigger_id"));
    return seen.size() >= static_cast<size_t>(kTotal);
  };
  reader.ReadUntil(complete, 60s);
  std::map<std::string, std::set<std::string>> send_ids;  // trigger -> send ids
  for (const auto& r : reader.Of("pv.send.email")) {
    auto d = ParseJson(r.value);
    send_ids[Str(d, "trigger_id")].insert(Str(d, "send_id"));
  }
  size_t missing = 0;
  for (const auto& id : ids) {
    auto it = send_ids.find(id);
    if (it == send_ids.end()) {
      ++missing;
      continue;
    }
    EXPECT_EQ(it->second, std::set<std::string>{SendIdFor(id, "email")}) << id;
  }
  EXPECT_EQ(missing, 0U);
  size_t duplicates = reader.Of("pv.send.email").size() - send_ids.size();
  std::fprintf(stderr,
               "killed with %d triggers written and %zu sent; the restarted instance consumed %.0f; "
               "sends: %zu for %d triggers (%zu duplicates)\n",
               at_kill, sent_at_kill,
               MetricValue(Metrics(), R"(pv_dispatcher_consumed_total{topic="pv.triggers"})"),
               reader.Of("pv.send.email").size(), kTotal, duplicates);
  EXPECT_EQ(restarted->Stop(), 0);
}

// Scaling out and in while triggers stream: a second instance joins (the first gives up some partitions
// in a cooperative rebalance, finishing their in-flight work first), then the first is stopped with
// SIGTERM. Every trigger yields its send, with its one send_id; the first instance exits cleanly.
TEST_F(DispatcherIT, RebalanceAndSigtermMidStreamLoseNothing) {
  StartBroker();
  WriteConfig("", "  max_in_flight: 200\n");
  auto first = StartDispatcher("dispatcher-a");
  // The stream goes on until two batches after the first instance has stopped (at most kMax), so both
  // changes land mid-stream however long the rebalance takes on a loaded machine.
  constexpr int kMax = 6000;
  std::vector<std::string> ids(kMax);
  std::atomic<int> written{0};
  std::atomic<bool> first_stopped{false};
  std::thread feeder([&] {
    TriggerWriter writer(broker_->bootstrap());
    int n = 0;
    int batches_after_stop = 0;
    while (n < kMax) {
      std::string user = "u-" + std::to_string(n % 89);
      ids[n] = writer.Write(
          "s1", user, fmt::format(R"({{"external_id":"{}","phone":"+1555000{}"}})", user, 1000 + n % 89),
          fmt::format(R"({{"code":"{}"}})", n));
      ++n;
      if (n % 100 == 0) {
        writer.Flush();
        written.store(n);
        if (first_stopped.load() && ++batches_after_stop >= 2) break;
        // ~170 triggers/s: a cooperative rebalance on the dev broker takes two rounds of about 5 s.
        std::this_thread::sleep_for(600ms);
      }
    }
    writer.Flush();
    written.store(n);
  });
  TopicReader reader(broker_->bootstrap(), {"pv.send.sms"});
  reader.ReadUntil([](const std::vector<Record>& rs) { return rs.size() >= 100; }, 30s);
  auto second = StartDispatcher("dispatcher-b", false);  // returns once it owns trigger partitions
  int at_join = written.load();
  EXPECT_EQ(first->Stop(), 0);
  int at_stop = written.load();
  first_stopped.store(true);
  feeder.join();
  const int total = written.load();  // every trigger written, each must yield its send
  ids.resize(static_cast<size_t>(total));
  EXPECT_LT(at_stop, total) << "the stream ended before the first instance stopped: the test proves less";
  EXPECT_NE(first->Log().find(R"("event":"partitions_revoked","group":"pv-dispatcher",)"), std::string::npos);

  std::set<std::string> seen;
  size_t checked = 0;
  auto complete = [&](const std::vector<Record>& rs) {  // incremental: called after every record
    for (; checked < rs.size(); ++checked) seen.insert(Str(ParseJson(rs[checked].value), "trigger_id"));
    return seen.size() >= static_cast<size_t>(total);
  };
  reader.ReadUntil(complete, 60s);
  std::map<std::string, std::set<std::string>> send_ids;
  for (const auto& r : reader.Of("pv.send.sms")) {
    auto d = ParseJson(r.value);
    send_ids[Str(d, "trigger_id")].insert(Str(d, "send_id"));
  }
  size_t missing = 0;
  for (const auto& id : ids) {
    auto it = send_ids.find(id);
    if (it == send_ids.end()) {
      ++missing;
      continue;
    }
    EXPECT_EQ(it->second, std::set<std::string>{SendIdFor(id, "text")}) << id;
  }
  EXPECT_EQ(missing, 0U);
  std::fprintf(stderr,
               "second joined at %d, first stopped at %d of %d triggers; %zu sends (%zu duplicates)\n",
               at_join, at_stop, total, reader.Of("pv.send.sms").size(),
               reader.Of("pv.send.sms").size() - send_ids.size());
  EXPECT_EQ(second->Stop(), 0);
}

// A stop while the broker does not answer (connections open, nothing coming back: a hung or
// partitioned broker). librdkafka's consumer close waits for the group coordinator's answers to the
// last commit and the LeaveGroup, and its destroy for those requests to time out (60 s by default):
// the dispatcher took a minute to exit. Close is bounded (10 s) and requests time out at 10 s; the
// exit status says the stop was not clean (what was not committed is read again by the next owner).
TEST_F(DispatcherIT, ASigtermWhileTheBrokerDoesNotAnswerEndsWithinItsBoundsAndSaysSo) {
  StartBroker();
  WriteConfig("");
  auto dispatcher = StartDispatcher();
  TriggerWriter writer(broker_->bootstrap());
  for (int i = 0; i < 20; ++i)
    writer.Write("s1", "u-1", R"({"external_id":"u-1","phone":"+15550001000"})", R"({"code":"1"})");
  writer.Flush();
  TopicReader reader(broker_->bootstrap(), {"pv.send.sms"});
  ASSERT_EQ(reader.ReadUntil([](const std::vector<Record>& rs) { return rs.size() >= 20; }, 30s).size(), 20U);
  broker_->process().Signal(SIGSTOP);
  auto asked = std::chrono::steady_clock::now();
  int status = dispatcher->Stop(SIGTERM, 90s);
  auto took = std::chrono::steady_clock::now() - asked;
  broker_->process().Signal(SIGCONT);
  EXPECT_EQ(status, 1);
  EXPECT_LT(took, 30s);
  EXPECT_NE(dispatcher->Log().find(R"("event":"kafka_close_timeout")"), std::string::npos);
  EXPECT_NE(dispatcher->Log().find(R"("event":"dispatcher_stopped","unflushed":0,"clean":false)"), std::string::npos);
}

// Redis unreachable: no trigger goes out unchecked; consumption pauses, /readyz says why; when Redis is
// back the held triggers go out, suppression applied.
TEST_F(DispatcherIT, RedisOutagePausesAndResumes) {
  StartBroker();
  RedisServer redis;
  redis.Command({"SADD", "pv:suppress:text", "address:+15550000002"});
  WriteConfig(redis.url(), "  redis_timeout: 300\n");
  auto dispatcher = StartDispatcher();
  // Frozen, Redis still accepts connections (the kernel does) but answers nothing: the harder case
  // than a refused connection, which the dispatcher treats the same way.
  redis.Signal(SIGSTOP);

  TriggerWriter writer(broker_->bootstrap());
  std::string ok =
      writer.Write("s1", "u-1", R"({"external_id":"u-1","phone":"+15550000001"})", R"({"code":"1"})");
  std::string blocked =
      writer.Write("s1", "u-2", R"({"external_id":"u-2","phone":"+15550000002"})", R"({"code":"2"})");
  ASSERT_TRUE(writer.Flush());
  EXPECT_TRUE(WaitFor([&] { return HttpGet(admin_port_, "/readyz").first == 503; }, 10s));
  EXPECT_NE(HttpGet(admin_port_, "/readyz").second.find("redis"), std::string::npos);
  TopicReader reader(broker_->bootstrap(), {"pv.send.sms", "pv.events"});
  reader.ReadUntil([](const auto&) { return false; }, 1500ms);
  EXPECT_TRUE(reader.Of("pv.send.sms").empty()) << "a send went out without a suppression check";
  EXPECT_TRUE(reader.Of("pv.events").empty());
  EXPECT_EQ(MetricValue(Metrics(), R"(pv_dispatcher_paused{reason="redis"})"), 1);
  EXPECT_EQ(MetricValue(Metrics(), R"(pv_dispatcher_redis_up)"), 0);

  redis.Signal(SIGCONT);
  reader.ReadUntil(
      [](const std::vector<Record>& rs) {
        std::map<std::string, int> n;
        for (const auto& r : rs) ++n[r.topic];
        return n["pv.events"] >= 2 && n["pv.send.sms"] >= 1;
      },
      15s);
  reader.ReadUntil([](const auto&) { return false; }, 300ms);  // a second send would show up by now
  auto sends = reader.Of("pv.send.sms");
  ASSERT_EQ(sends.size(), 1U);
  EXPECT_EQ(Str(ParseJson(sends[0].value), "trigger_id"), ok);
  std::map<std::string, std::string> status;
  for (const auto& r : reader.Of("pv.events")) {
    auto d = ParseJson(r.value);
    status[Str(d, "trigger_id")] = Str(d, "status");
  }
  EXPECT_EQ(status[ok], "queued");
  EXPECT_EQ(status[blocked], "suppressed");
  EXPECT_TRUE(WaitFor([&] { return HttpGet(admin_port_, "/readyz").first == 200; }, 5s));
  EXPECT_EQ(MetricValue(Metrics(), R"(pv_dispatcher_paused{reason="redis"})"), 0);
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// SIGHUP reloads the catalog; a broken catalog is refused and the old one kept.
TEST_F(DispatcherIT, CatalogReloadOnSighup) {
  StartBroker();
  WriteConfig("");
  auto dispatcher = StartDispatcher();
  dir_.Write("catalog/broken.yaml",
             "id: \"x1\"\nproject: demo\nchannel: text\nprovider: log\n"
             "templates:\n  en: {body: \"{{#unclosed}}\"}\n");
  dispatcher->Signal(SIGHUP);
  ASSERT_TRUE(
      WaitFor([&] { return dispatcher->Log().find("catalog_reload_failed") != std::string::npos; }, 10s));
  EXPECT_NE(dispatcher->Log().find("broken.yaml: templates.en.body"), std::string::npos);
  std::remove(dir_.File("catalog/broken.yaml").c_str());
  dir_.Write("catalog/s2.yaml",
             "id: \"s2\"\nproject: demo\nname: New\nchannel: text\nprovider: log\n"
             "templates:\n  en: {body: \"new {{event.x}}\"}\n");
  dispatcher->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor(
      [&] { return dispatcher->Log().find(R"("event":"catalog_reloaded")") != std::string::npos; }, 10s));
  TriggerWriter writer(broker_->bootstrap());
  std::string id =
      writer.Write("s2", "u-1", R"({"external_id":"u-1","phone":"+15550000001"})", R"({"x":"one"})");
  ASSERT_TRUE(writer.Flush());
  TopicReader reader(broker_->bootstrap(), {"pv.send.sms"});
  reader.ReadUntil([](const std::vector<Record>& rs) { return !rs.empty(); }, 15s);
  auto sends = reader.Of("pv.send.sms");
  ASSERT_EQ(sends.size(), 1U);
  EXPECT_EQ(Str(ParseJson(sends[0].value)["content"], "body"), "new one");
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// The partition of pv.triggers a trigger went to, and its offset (from the topic itself).
// Where a trigger landed on pv.triggers. A struct, not a pair taken apart with a structured binding:
// clang 14 cannot capture those in a lambda.
struct Place {
  std::int32_t partition = -1;
  std::int64_t offset = -1;
};

Place PlaceOf(const std::string& bootstrap, const std::string& trigger_id) {
  TopicReader reader(bootstrap, {"pv.triggers"});
  const auto& rs = reader.ReadUntil(
      [&](const std::vector<Record>& all) {
        return std::any_of(all.begin(), all.end(),
                           [&](const Record& r) { return H(r, "pv-trigger-id") == trigger_id; });
      },
      10s);
  for (const auto& r : rs) {
    if (H(r, "pv-trigger-id") == trigger_id) return {r.partition, r.offset};
  }
  return {};
}

// A send window that is closed now (it opens two hours from now, for an hour), in UTC.
std::string ClosedWindow() {
  auto now = std::chrono::system_clock::now();
  long hour = std::chrono::duration_cast<std::chrono::hours>(now - std::chrono::floor<std::chrono::days>(now))
                  .count();
  std::string end = fmt::format("{:02}:00", (hour + 3) % 24);
  return fmt::format(R"({{start: "{:02}:00", end: "{}"}})", (hour + 2) % 24, end == "00:00" ? "24:00" : end);
}

// A trigger that fits pv.triggers with a few bytes to spare, for a campaign whose send window is
// closed: the deferred record (the trigger plus the ladder's three headers) would be over the
// dispatcher producer's message.max.bytes, which librdkafka refuses on every attempt. Before, that
// retried forever and the partition's offset never moved again. Now the trigger is dead-lettered
// (deferred_too_large, without its value: the dead letter is larger still) and later triggers of
// the same partition are processed and their offsets committed.
TEST_F(DispatcherIT, NearLimitTriggerToAClosedWindowIsDeadLetteredAndThePartitionMovesOn) {
  StartBroker();
  constexpr size_t kMaxBytes = 20000;
  dir_.Write("catalog/w2.yaml",
             "id: \"w2\"\nproject: demo\nchannel: push\nprovider: log\ntimezone: UTC\n"
             "send_window: " +
                 ClosedWindow() + "\ntemplates:\n  en: {body: \"hi\"}\n");
  WriteConfig("", "", fmt::format("    message.max.bytes: \"{}\"\n", kMaxBytes));
  auto dispatcher = StartDispatcher();
  TriggerWriter writer(broker_->bootstrap());

  // Padding chosen so the trigger record, with its pv-trigger-id header, is 30 bytes under the limit.
  std::string big_id = NewTriggerId();
  std::string user = R"({"external_id":"u-big","device_token":"tok-big","timezone":"UTC"})";
  auto event = [](size_t pad) { return R"({"pad":")" + std::string(pad, 'x') + "\"}"; };
  kafka::Header id_header{"pv-trigger-id", big_id};
  size_t base = kafka::RecordBytes("u-big", TriggerValue(big_id, "w2", user, event(0)),
                                   std::span<const kafka::Header>(&id_header, 1));
  ASSERT_LT(base, kMaxBytes - 200);
  writer.Write("w2", "u-big", user, event(kMaxBytes - 30 - base), big_id);
  // Later triggers on the same partition (same key).
  std::string t2 = writer.Write("p1", "u-big", R"({"external_id":"u-big","device_token":"tok-2"})",
                                R"({"n":1,"cart":"c"})");
  std::string t3 = writer.Write("p1", "u-big", R"({"external_id":"u-big","device_token":"tok-3"})",
                                R"({"n":2,"cart":"c"})");
  ASSERT_TRUE(writer.Flush());
  const Place big = PlaceOf(broker_->bootstrap(), big_id);
  const Place third = PlaceOf(broker_->bootstrap(), t3);
  ASSERT_EQ(big.partition, third.partition);
  ASSERT_EQ(third.offset, big.offset + 2);

  TopicReader reader(broker_->bootstrap(), {"pv.dlq.push", "pv.send.push", "pv.events"});
  reader.ReadUntil(
      [](const std::vector<Record>& rs) {
        std::map<std::string, int> n;
        for (const auto& r : rs) ++n[r.topic];
        return n["pv.dlq.push"] >= 1 && n["pv.send.push"] >= 2 && n["pv.events"] >= 3;
      },
      20s);
  auto dlq = reader.Of("pv.dlq.push");
  ASSERT_EQ(dlq.size(), 1U);
  EXPECT_EQ(H(dlq[0], ladder::kErrorCode), "deferred_too_large");
  EXPECT_NE(H(dlq[0], ladder::kError).find(fmt::format("over message.max.bytes ({})", kMaxBytes)),
            std::string::npos)
      << H(dlq[0], ladder::kError);
  EXPECT_EQ(H(dlq[0], "pv-trigger-id"), big_id);
  EXPECT_EQ(H(dlq[0], ladder::kTarget), "pv.triggers");
  EXPECT_EQ(dlq[0].value, "");  // the trigger itself would be over the limit with these headers
  EXPECT_GT(std::stoul(H(dlq[0], ladder::kOmittedBytes)), kMaxBytes - 200);
  EXPECT_EQ(reader.Of("pv.send.push").size(), 2U);
  std::map<std::string, std::string> status;
  for (const auto& r : reader.Of("pv.events")) {
    auto d = ParseJson(r.value);
    status[Str(d, "trigger_id")] = Str(d, "status");
  }
  EXPECT_EQ(status[big_id], "failed");
  EXPECT_EQ(status[t2], "queued");
  EXPECT_EQ(status[t3], "queued");

  // Everything up to and past the large trigger is committed.
  EXPECT_TRUE(WaitFor(
      [&] {
        return CommittedOffset(broker_->bootstrap(), "pv-dispatcher", "pv.triggers", big.partition) ==
               third.offset + 1;
      },
      15s))
      << CommittedOffset(broker_->bootstrap(), "pv-dispatcher", "pv.triggers", big.partition);
  std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_failed_total{channel="push",error_code="deferred_too_large"})"),
            1);
  EXPECT_LE(MetricValue(m, R"(pv_dispatcher_delivery_failures_total{pipeline="triggers"})"), 0);  // none
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// pv.dlq.email is missing: the broker's metadata says UNKNOWN_TOPIC_OR_PART for it, as a production
// Kafka without the topic and with auto.create.topics.enable=false does (the mock would otherwise
// create any topic a client asks for). A trigger of an unknown campaign cannot reach its dead letter:
// it is tried dispatcher.dead_letter_attempts times, then skipped, logged and counted, and the
// partition moves on: a later trigger is sent and the offset past both is committed. Before, the
// dead letter was retried forever and the partition's offset never moved again.
TEST_F(DispatcherIT, MissingDeadLetterTopicIsSkippedAfterBoundedAttempts) {
  StartBroker();
  ASSERT_EQ(broker_->Control("/topics/error?name=pv.dlq.email&error=UNKNOWN_TOPIC_OR_PART"), 200);
  // The producer takes a topic missing from metadata for missing after propagation.max.ms.
  WriteConfig(
      "", "  dead_letter_attempts: 2\n",
      "    topic.metadata.propagation.max.ms: \"500\"\n    topic.metadata.refresh.interval.ms: \"500\"\n");
  auto dispatcher = StartDispatcher();
  TriggerWriter writer(broker_->bootstrap());
  std::string lost = writer.Write("zz", "u-k", R"({"external_id":"u-k","email":"k@example.com"})", "{}");
  std::string t2 =
      writer.Write("e1", "u-k", R"({"external_id":"u-k","email":"k@example.com","first_name":"K"})", "{}");
  ASSERT_TRUE(writer.Flush());
  const Place lost_place = PlaceOf(broker_->bootstrap(), lost);
  const Place second = PlaceOf(broker_->bootstrap(), t2);
  ASSERT_EQ(lost_place.partition, second.partition);

  EXPECT_TRUE(WaitFor(
      [&] {
        return MetricValue(Metrics(),
                           R"(pv_dispatcher_skipped_total{pipeline="triggers",reason="unknown_topic"})") == 1;
      },
      30s))
      << Metrics();
  TopicReader reader(broker_->bootstrap(), {"pv.send.email", "pv.events"});
  reader.ReadUntil(
      [](const std::vector<Record>& rs) {
        return std::any_of(rs.begin(), rs.end(), [](const Record& r) { return r.topic == "pv.send.email"; });
      },
      20s);
  ASSERT_EQ(reader.Of("pv.send.email").size(), 1U);
  EXPECT_EQ(Str(ParseJson(reader.Of("pv.send.email")[0].value), "trigger_id"), t2);
  EXPECT_TRUE(WaitFor(
      [&] {
        return CommittedOffset(broker_->bootstrap(), "pv-dispatcher", "pv.triggers", lost_place.partition) ==
               std::max(lost_place.offset, second.offset) + 1;
      },
      15s));
  std::string log = dispatcher->Log();
  EXPECT_NE(log.find(R"("event":"record_skipped","record":"dead_letter")"), std::string::npos) << log;
  EXPECT_NE(log.find("pv.dlq.email"), std::string::npos);
  // Attempt 1 and 2, no third.
  EXPECT_NE(log.find(R"("dead_letter_attempt":1)"), std::string::npos);
  EXPECT_EQ(log.find(R"("dead_letter_attempt":3)"), std::string::npos);
  EXPECT_EQ(
      MetricValue(Metrics(), R"(pv_dispatcher_failed_total{channel="email",error_code="unknown_campaign"})"),
      1);
  EXPECT_EQ(dispatcher->Stop(), 0);
}

// The delay scheduler under the same rules: a due record whose target can never take it (pv.send.email
// missing) goes to that channel's DLQ with every header it had plus the reason; one that would be
// over the dispatcher's message.max.bytes with its headers goes to its DLQ without its value; both
// offsets move on. Before, both were re-published forever.
TEST_F(DispatcherIT, LadderRecordsTheTargetCanNeverTakeAreDeadLettered) {
  StartBroker();
  ASSERT_EQ(broker_->Control("/topics/error?name=pv.send.email&error=UNKNOWN_TOPIC_OR_PART"), 200);
  constexpr size_t kMaxBytes = 20000;
  WriteConfig("", "",
              fmt::format("    message.max.bytes: \"{}\"\n    topic.metadata.propagation.max.ms: \"500\"\n"
                          "    topic.metadata.refresh.interval.ms: \"500\"\n",
                          kMaxBytes));
  auto dispatcher = StartDispatcher();
  kafka::Settings settings;
  settings.brokers = broker_->bootstrap();
  kafka::Producer producer(settings, kafka::ProducerOptions{});
  auto tiers = ladder::ParseTiers({"1s", "2s"});
  auto group = std::make_shared<kafka::DeliveryGroup>(2);
  auto now = std::chrono::system_clock::now();
  kafka::Header extra{"x-trace", "abc"};
  ASSERT_EQ(ladder::Schedule(producer, tiers, "pv.send.email", "k-missing", R"({"send_id":"s-1"})", now, 2,
                             std::span<const kafka::Header>(&extra, 1), group, now),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  std::string big(kMaxBytes - 150, 'b');  // fits the ladder under the test producer's 1 MB, not 20 KB
  ASSERT_EQ(ladder::Schedule(producer, tiers, "pv.send.push", "k-big", big, now, 1, {}, group, now),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(group->Wait(std::chrono::steady_clock::now() + 10s));
  ASSERT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);

  TopicReader reader(broker_->bootstrap(), {"pv.dlq.email", "pv.dlq.push"});
  reader.ReadUntil([](const std::vector<Record>& rs) { return rs.size() >= 2; }, 20s);
  auto email = reader.Of("pv.dlq.email");
  ASSERT_EQ(email.size(), 1U);
  EXPECT_EQ(email[0].key, "k-missing");
  EXPECT_EQ(email[0].value, R"({"send_id":"s-1"})");
  EXPECT_EQ(H(email[0], ladder::kErrorCode), "produce_unknown_topic");
  EXPECT_NE(H(email[0], ladder::kError).find("pv.send.email"), std::string::npos)
      << H(email[0], ladder::kError);
  EXPECT_EQ(H(email[0], ladder::kTarget), "pv.send.email");  // a replay puts it back there
  EXPECT_EQ(H(email[0], ladder::kAttempt), "2");
  EXPECT_EQ(H(email[0], "x-trace"), "abc");
  EXPECT_TRUE(ParseTimestamp(H(email[0], ladder::kFailedAt)).has_value());
  auto push = reader.Of("pv.dlq.push");
  ASSERT_EQ(push.size(), 1U);
  EXPECT_EQ(H(push[0], ladder::kErrorCode), "release_too_large");
  EXPECT_EQ(push[0].value, "");
  EXPECT_EQ(H(push[0], ladder::kOmittedBytes), std::to_string(big.size()));

  std::string m = Metrics();
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_delay_dead_lettered_total{error_code="produce_unknown_topic"})"),
            1);
  EXPECT_EQ(MetricValue(m, R"(pv_dispatcher_delay_dead_lettered_total{error_code="release_too_large"})"), 1);
  // Both ladder records are finished: nothing held, nothing in flight, offsets committed past them.
  EXPECT_TRUE(WaitFor(
      [&] {
        std::int64_t total = 0;
        for (int p = 0; p < 2; ++p) {
          total += std::max<std::int64_t>(
              0, CommittedOffset(broker_->bootstrap(), "pv-dispatcher-delay", "pv.delay.1s", p));
        }
        return total == 2;
      },
      15s));
  EXPECT_EQ(dispatcher->Stop(), 0);
}

}  // namespace
}  // namespace pv::testing
