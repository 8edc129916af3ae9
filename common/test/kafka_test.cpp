// The broker-free parts of pv::kafka: the delivery group, settings. The producer
// and consumer against a broker are covered by the integration tests with the dev broker.
#include "pv/kafka.hpp"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "pv/config.hpp"
#include "test_util.hpp"

namespace pv::kafka {
namespace {

using ::pv::testing::ErrorMessage;
using ::pv::testing::ScopedEnv;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(DeliveryCountdownTest, OnlyTheReportThatEndsTheSetSaysSoAndTheFirstErrorStays) {
  DeliveryCountdown c(3);
  EXPECT_FALSE(c.Report(1, RD_KAFKA_RESP_ERR_NO_ERROR));
  EXPECT_FALSE(c.Report(1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
  EXPECT_TRUE(c.Report(1, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
  EXPECT_EQ(c.first_error(), RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  EXPECT_FALSE(c.Report(1, RD_KAFKA_RESP_ERR_NO_ERROR)) << "a stray report past the end ends nothing again";

  DeliveryCountdown abandoned(4);
  EXPECT_FALSE(abandoned.Report(1, RD_KAFKA_RESP_ERR_NO_ERROR));
  EXPECT_TRUE(abandoned.Report(3, RD_KAFKA_RESP_ERR__QUEUE_FULL));  // three never enqueued
  EXPECT_EQ(abandoned.first_error(), RD_KAFKA_RESP_ERR__QUEUE_FULL);
}

TEST(DeliveryCountdownTest, ExactlyOneOfManyThreadsEndsTheSet) {
  constexpr int kThreads = 4;
  constexpr int kEach = 5000;
  DeliveryCountdown c(kThreads * kEach);
  std::atomic<int> ends{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        if (c.Report(1, RD_KAFKA_RESP_ERR_NO_ERROR)) ends.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ends.load(), 1);
  EXPECT_EQ(c.first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST(DeliveryGroupTest, WaitReturnsWhenAllReported) {
  auto group = std::make_shared<DeliveryGroup>(3);
  std::thread reporter([group] {
    for (int i = 0; i < 3; ++i) {
      std::this_thread::sleep_for(milliseconds(5));
      group->OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 2, 40 + i);
    }
  });
  auto start = steady_clock::now();
  EXPECT_TRUE(group->Wait(start + std::chrono::seconds(10)));
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  reporter.join();
  EXPECT_EQ(group->first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(group->last_partition(), 2);
  EXPECT_EQ(group->last_offset(), 42);
}

// The last report wakes a waiter only when one said it may sleep: a report racing with waiters that
// are about to sleep must not leave any of them asleep until its deadline (a lost wake-up).
TEST(DeliveryGroupTest, EveryWaiterWakesWhateverTheRaceWithTheLastReport) {
  for (int round = 0; round < 300; ++round) {
    auto group = std::make_shared<DeliveryGroup>(1);
    auto start = steady_clock::now();
    std::vector<std::thread> waiters;
    for (int w = 0; w < 3; ++w) {
      waiters.emplace_back([group] { group->Wait(steady_clock::now() + std::chrono::seconds(5)); });
    }
    if (round % 3 == 1) std::this_thread::yield();
    if (round % 3 == 2) std::this_thread::sleep_for(std::chrono::microseconds(200));
    group->OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, round);
    for (auto& t : waiters) t.join();
    // A lost wake-up leaves its waiter asleep until the 5 s deadline.
    ASSERT_LT(steady_clock::now() - start, std::chrono::seconds(3)) << "round " << round;
  }
}

TEST(DeliveryGroupTest, WaitTimesOutWhileRecordsArePending) {
  DeliveryGroup group(2);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 1);
  auto start = steady_clock::now();
  EXPECT_FALSE(group.Wait(start + milliseconds(50)));
  EXPECT_GE(steady_clock::now() - start, milliseconds(45));
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 2);
  EXPECT_TRUE(group.Wait(steady_clock::now()));
}

TEST(DeliveryGroupTest, EmptyGroupIsDoneAtOnce) {
  DeliveryGroup group(0);
  EXPECT_TRUE(group.Wait(steady_clock::now()));
  EXPECT_EQ(group.first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST(DeliveryGroupTest, FirstErrorIsKept) {
  DeliveryGroup group(4);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 1);
  EXPECT_EQ(group.first_error(), RD_KAFKA_RESP_ERR_NO_ERROR);
  group.OnDelivery(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, -1);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0, -1);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 2);
  EXPECT_TRUE(group.Wait(steady_clock::now()));
  EXPECT_EQ(group.first_error(), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
}

TEST(DeliveryGroupTest, AbandonCountsRecordsThatWereNeverEnqueued) {
  DeliveryGroup group(3);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 1);
  EXPECT_FALSE(group.Wait(steady_clock::now()));
  group.Abandon(2, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  EXPECT_TRUE(group.Wait(steady_clock::now()));
  EXPECT_EQ(group.first_error(), RD_KAFKA_RESP_ERR__QUEUE_FULL);
}

TEST(DeliveryGroupTest, AbandonKeepsAnEarlierError) {
  DeliveryGroup group(3);
  group.OnDelivery(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, -1);
  group.Abandon(1, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  EXPECT_FALSE(group.Wait(steady_clock::now()));
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 1, 5);
  EXPECT_TRUE(group.Wait(steady_clock::now()));
  EXPECT_EQ(group.first_error(), RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
}

// The worker's outcome records hand the group's result to its inbox this way.
TEST(DeliveryGroupTest, OnCompleteIsCalledOnceByTheReportThatEndsTheGroup) {
  struct Handed : DeliveryGroup {
    using DeliveryGroup::DeliveryGroup;
    void OnComplete() override { results.push_back(first_error()); }
    std::vector<rd_kafka_resp_err_t> results;
  };
  Handed group(4);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 1);
  group.OnDelivery(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, 2);
  EXPECT_TRUE(group.results.empty());
  group.Abandon(2, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  ASSERT_EQ(group.results.size(), 1U);
  EXPECT_EQ(group.results[0], RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
  group.OnDelivery(RD_KAFKA_RESP_ERR_NO_ERROR, 0, 3);  // a report past the end: not again
  EXPECT_EQ(group.results.size(), 1U);
}

TEST(DeliveryGroupTest, AbandonWakesAWaiter) {
  auto group = std::make_shared<DeliveryGroup>(2);
  std::thread abandoner([group] {
    std::this_thread::sleep_for(milliseconds(10));
    group->Abandon(2, RD_KAFKA_RESP_ERR__QUEUE_FULL);
  });
  auto start = steady_clock::now();
  EXPECT_TRUE(group->Wait(start + std::chrono::seconds(10)));
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
  abandoner.join();
}

TEST(KafkaSettingsTest, LoadSettingsReadsBrokersAndProperties) {
  ScopedEnv e1("PV_KAFKA_BROKERS", std::nullopt);
  ScopedEnv e2("PV_KAFKA_PROPERTIES__LINGER_MS", "5");
  Config config =
      Config::FromYaml("kafka:\n  brokers: 127.0.0.1:9092\n  properties:\n    compression.type: lz4\n");
  Settings s = LoadSettings(config);
  EXPECT_EQ(s.brokers, "127.0.0.1:9092");
  EXPECT_THAT(s.properties, UnorderedElementsAre(Pair("compression.type", "lz4"), Pair("linger.ms", "5")));
}

TEST(KafkaSettingsTest, ProducerRejectsEmptyBrokersAndBadProperties) {
  Settings empty;
  EXPECT_THAT(ErrorMessage<KafkaError>([&] { Producer p(empty, {}); }), HasSubstr("kafka.brokers is empty"));

  Settings bad;
  bad.brokers = "127.0.0.1:1";
  bad.properties["no.such.property"] = "x";
  EXPECT_THAT(ErrorMessage<KafkaError>([&] { Producer p(bad, {}); }),
              HasSubstr("kafka property no.such.property=x"));
}

// What one property ends as, from each layer BuildConf stacks.
std::string Built(const rd_kafka_conf_t* conf, const char* name) {
  char value[256];
  size_t size = sizeof(value);
  if (rd_kafka_conf_get(conf, name, value, &size) != RD_KAFKA_CONF_OK) return "<unset>";
  return value;
}

TEST(KafkaSettingsTest, BuildConfStacksDefaultsOperatorRoleAndFixedInThatOrder) {
  Settings s;
  s.brokers = "127.0.0.1:1";
  s.properties = {{"linger.ms", "7"}, {"socket.timeout.ms", "7000"}, {"enable.partition.eof", "false"}};
  s.consumer_properties = {{"socket.timeout.ms", "8000"}};
  rd_kafka_conf_t* conf =
      BuildConf(s, s.consumer_properties, "me",
                {{"linger.ms", "1"}, {"queue.buffering.max.ms", "2"}, {"socket.timeout.ms", "3000"}},
                {{"enable.partition.eof", "true"}});
  EXPECT_EQ(Built(conf, "bootstrap.servers"), "127.0.0.1:1");
  EXPECT_EQ(Built(conf, "client.id"), "me");
  EXPECT_EQ(Built(conf, "linger.ms"), "7");                // the operator's over our default
  EXPECT_EQ(Built(conf, "socket.timeout.ms"), "8000");     // the role's over the operator's shared one
  EXPECT_EQ(Built(conf, "enable.partition.eof"), "true");  // fixed over the operator's
  rd_kafka_conf_destroy(conf);

  s.properties["no.such.property"] = "x";
  EXPECT_THAT(ErrorMessage<KafkaError>([&] { rd_kafka_conf_destroy(BuildConf(s, {}, "me", {}, {})); }),
              HasSubstr("kafka property no.such.property=x"));
}

TEST(KafkaProducerTest, StopsPromptlyWhileIdle) {
  // The poll thread waits up to a second for delivery reports; the destructor must end that wait.
  // A listening socket that never answers: the client connects and waits quietly (a refused
  // connection would post error events, which end the wait by themselves).
  int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  Settings settings;
  settings.brokers = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  auto producer = std::make_unique<Producer>(settings, ProducerOptions{});
  std::this_thread::sleep_for(milliseconds(50));  // the poll thread is waiting now
  auto start = steady_clock::now();
  producer.reset();
  EXPECT_LT(steady_clock::now() - start, milliseconds(500));
  ::close(listener);
}

std::string ConfValue(const Consumer& consumer, const char* name) {
  return consumer.Property(name).value_or("?");
}

TEST(KafkaConsumerTest, ConsumerPropertiesWinOverSharedPropertiesAndComponentDefaults) {
  Settings settings;
  settings.brokers = "127.0.0.1:1";
  settings.properties = {{"fetch.wait.max.ms", "100"}, {"client.rack", "r1"}};
  settings.consumer_properties = {{"fetch.wait.max.ms", "321"}, {"auto.commit.interval.ms", "2500"}};
  settings.producer_properties = {{"fetch.error.backoff.ms", "7"}};
  ConsumerOptions options;
  options.group_id = "g";
  options.defaults = {{"auto.commit.interval.ms", "1000"}, {"fetch.min.bytes", "1"}};
  Consumer consumer(settings, options);
  EXPECT_EQ(ConfValue(consumer, "fetch.wait.max.ms"), "321");
  EXPECT_EQ(ConfValue(consumer, "auto.commit.interval.ms"), "2500");
  EXPECT_EQ(ConfValue(consumer, "client.rack"), "r1");
  EXPECT_EQ(ConfValue(consumer, "fetch.min.bytes"), "1");
  EXPECT_EQ(ConfValue(consumer, "fetch.error.backoff.ms"), "500") << "a producer property leaked";
}

}  // namespace
}  // namespace pv::kafka
