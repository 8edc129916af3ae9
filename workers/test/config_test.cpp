// Worker settings from the deployment config, the Redis URL, the log provider, provider loading.
#include "pv/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "pv/json.hpp"
#include "pv/workers/providers/factory.hpp"
#include "pv/workers/providers/log_provider.hpp"
#include "pv/workers/redis.hpp"
#include "pv/workers/worker.hpp"
#include "pv/workers/worker_main.hpp"

namespace pv::workers {
namespace {

using namespace std::chrono_literals;

TEST(WorkerConfigTest, ChannelSettingsOverrideTheSharedOnes) {
  Config config = Config::FromYaml(
      "kafka: {brokers: \"b:9092\"}\n"
      "dispatcher: {delay_tiers: [\"30s\", \"5s\"]}\n"
      "workers: {max_in_flight: 100, max_attempts: 5, backoff_base_ms: 1000}\n"
      "worker:\n  sms: {max_in_flight: 20, id: sms-a}\n");
  WorkerOptions email = LoadWorkerOptions(config, Channel::kEmail);
  EXPECT_EQ(email.max_in_flight, 100);
  EXPECT_EQ(email.max_buffered, 800);
  EXPECT_EQ(email.max_attempts, 5);
  EXPECT_EQ(email.backoff.base, 1000ms);
  EXPECT_EQ(email.group_id, "pv-email-worker");
  ASSERT_EQ(email.tiers.size(), 2U);
  EXPECT_EQ(email.tiers[0].topic, "pv.delay.5s");
  EXPECT_FALSE(email.worker_id.empty());
  WorkerOptions sms = LoadWorkerOptions(config, Channel::kSms);
  EXPECT_EQ(sms.max_in_flight, 20);
  EXPECT_EQ(sms.max_attempts, 5);
  EXPECT_EQ(sms.worker_id, "sms-a");
  EXPECT_EQ(sms.group_id, "pv-sms-worker");

  Config bad = Config::FromYaml("dispatcher: {delay_tiers: [\"soon\"]}\n");
  EXPECT_THROW(LoadWorkerOptions(bad, Channel::kEmail), ConfigError);
  Config bad_redis = Config::FromYaml("redis: {url: \"http://x\"}\n");
  EXPECT_THROW(LoadDedupeOptions(bad_redis, Channel::kEmail, "w"), ConfigError);
}

TEST(WorkerConfigTest, OutcomeLingerReachesTheProducerAndIsBounded) {
  WorkerOptions defaults = LoadWorkerOptions(Config::FromYaml("kafka: {brokers: \"b:9092\"}\n"), Channel::kEmail);
  EXPECT_EQ(defaults.outcome_linger_ms, 20);
  kafka::ProducerOptions producer = OutcomeProducerOptions(defaults);
  EXPECT_EQ(producer.defaults.at("linger.ms"), "20");
  EXPECT_EQ(producer.client_id, "pv-email-worker");
  EXPECT_EQ(producer.report_gather, kafka::kOffPathReportGather);

  Config config = Config::FromYaml(
      "kafka: {brokers: \"b:9092\"}\n"
      "workers: {outcome_linger_ms: 50}\n"
      "worker:\n  push: {outcome_linger_ms: 0}\n");
  WorkerOptions sms = LoadWorkerOptions(config, Channel::kSms);
  EXPECT_EQ(OutcomeProducerOptions(sms).defaults.at("linger.ms"), "50");
  EXPECT_EQ(OutcomeProducerOptions(sms).client_id, "pv-sms-worker");
  EXPECT_EQ(OutcomeProducerOptions(LoadWorkerOptions(config, Channel::kPush)).defaults.at("linger.ms"), "0");

  for (const char* bad : {"-1", "1001", "soon"}) {
    Config c = Config::FromYaml(std::string("workers: {outcome_linger_ms: ") + bad + "}\n");
    EXPECT_THROW(LoadWorkerOptions(c, Channel::kEmail), ConfigError) << bad;
  }
}

TEST(WorkerConfigTest, RedisUrls) {
  RedisEndpoint e = ParseRedisEndpoint("redis://:pw@cache.local:6380/2");
  EXPECT_EQ(e.host, "cache.local");
  EXPECT_EQ(e.port, 6380);
  EXPECT_EQ(e.password, "pw");
  EXPECT_EQ(e.db, 2);
  e = ParseRedisEndpoint("redis://127.0.0.1");
  EXPECT_EQ(e.port, 6379);
  EXPECT_THROW(ParseRedisEndpoint("redis://h:99999"), std::invalid_argument);
  EXPECT_THROW(ParseRedisEndpoint("tcp://h:1"), std::invalid_argument);
}

// The errors of a bad redis.url end up in logs and on the terminal: never with the password.
TEST(WorkerConfigTest, RedisUrlErrorsMaskThePassword) {
  for (const char* url : {"redis://:s3cret@h:99999", "redis://u:s3cret@h/x", "rediss://:s3cret@h:1"}) {
    try {
      ParseRedisEndpoint(url);
      ADD_FAILURE() << "accepted " << url;
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(":****@h"), std::string::npos) << e.what();
    }
  }
}

// The workers refuse rediss:// as the dispatcher and pvctl do: same message, same recipe.
TEST(WorkerConfigTest, RedissIsRefusedWithTheTunnelRecipe) {
  try {
    ParseRedisEndpoint("rediss://:s3cret@h:6380");
    ADD_FAILURE() << "accepted rediss://";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("TLS to Redis (rediss://) is not supported"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("stunnel"), std::string::npos) << e.what();
  }
}

TEST(WorkerConfigTest, ProvidersServeTheirChannelsOnly) {
  auto dir = std::filesystem::temp_directory_path() / ("pv-providers-" + std::to_string(::getpid()));
  Config config = Config::FromYaml(
      "workers: {outbox_dir: \"" + dir.string() +
      "\"}\n"
      "providers:\n"
      "  relay: {type: smtp, base_url: \"smtp://127.0.0.1:2525\", tls: none, rate_limit: {per_minute: 600}}\n"
      "  tw: {type: twilio, account_sid: AC1, auth_token: t, from: \"+1500\"}\n");
  CurlLoop loop;
  auto email = providers::LoadProviders(config, Channel::kEmail, loop);
  EXPECT_EQ(email.providers.size(), 2U);  // relay + the implicit log
  EXPECT_TRUE(email.providers.count("relay"));
  EXPECT_TRUE(email.providers.count("log"));
  EXPECT_EQ(email.rate_limits.at("relay").per_minute, 600);
  auto sms = providers::LoadProviders(config, Channel::kSms, loop);
  EXPECT_TRUE(sms.providers.count("tw"));
  EXPECT_FALSE(sms.providers.count("relay"));
  Config unknown = Config::FromYaml("providers: {x: {type: pigeon}}\n");
  EXPECT_THROW(providers::LoadProviders(unknown, Channel::kEmail, loop), ConfigError);
  loop.Stop();
  std::filesystem::remove_all(dir);
}

TEST(LogProviderTest, AppendsOneJsonLinePerSend) {
  auto dir = std::filesystem::temp_directory_path() / ("pv-outbox-" + std::to_string(::getpid()));
  providers::LogProvider provider("log", dir.string(), Channel::kSms);
  std::string error;
  auto send = ParseSend(
      R"({"send_id":"s-9","trigger_id":"t-9","campaign_id":"45","channel":"text","provider":"log","attempt":1,)"
      R"("to":{"phone":"+34600111222","external_id":"u"},"content":{"body":"Código 1234: válido 10 minutos, no lo compartas con nadie. Gracias por usar Demo, que tengas un buen día!"}})",
      "u", Channel::kSms, error);
  ASSERT_TRUE(send) << error;
  EXPECT_EQ(provider.Cost(*send), 2);  // UCS-2 (ó), 96 units: two segments of 67
  std::promise<DeliveryResult> done;
  provider.Deliver(send, [&](DeliveryResult r) { done.set_value(std::move(r)); });
  DeliveryResult r = done.get_future().get();
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.provider_message_id, "log-s-9");
  std::ifstream in(dir / "text.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  rapidjson::Document d;
  d.Parse(line.c_str());
  ASSERT_FALSE(d.HasParseError()) << line;
  EXPECT_STREQ(d["send_id"].GetString(), "s-9");
  EXPECT_STREQ(d["trigger_id"].GetString(), "t-9");
  EXPECT_STREQ(d["campaign_id"].GetString(), "45");
  EXPECT_STREQ(d["channel"].GetString(), "text");
  EXPECT_STREQ(d["to"]["phone"].GetString(), "+34600111222");
  EXPECT_TRUE(d["content"]["body"].IsString());
  EXPECT_FALSE(std::getline(in, line));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pv::workers
