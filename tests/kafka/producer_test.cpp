// pv::kafka::Producer against the dev broker: its delivery reports with `report_gather` (the dispatcher's
// and the workers' producers): after serving reports the poll thread sleeps, so reports that come
// meanwhile wait for it; with none coming it blocks, so the next report is not stuck behind a sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/testing/dev_broker.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kTopic = "producer.test";

// Records when its one report came.
class Report final : public kafka::DeliveryHandler {
 public:
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t /*partition*/, std::int64_t /*offset*/) override {
    std::lock_guard lock(mu_);
    err_ = err;
    at_ = Clock::now();
    cv_.notify_all();
  }
  // When the report came, or nullopt when none came within `timeout`.
  std::optional<Clock::time_point> Wait(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return at_.has_value(); })) return std::nullopt;
    EXPECT_EQ(err_, RD_KAFKA_RESP_ERR_NO_ERROR);
    return at_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  rd_kafka_resp_err_t err_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::optional<Clock::time_point> at_;
};

class KafkaProducerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    broker_ = std::make_unique<DevBroker>(
        1, std::vector<std::string>{"--no-default-topics", "--topic", std::string(kTopic) + ":1", "--log-level",
                                    "warn"});
  }
  // `linger`: the producer's own linger.ms default; `operator_linger`: the shared settings' (wins).
  std::unique_ptr<kafka::Producer> MakeProducer(std::chrono::microseconds gather, std::string linger = "",
                                                std::string operator_linger = "") {
    kafka::Settings settings;
    settings.brokers = broker_->bootstrap();
    if (!operator_linger.empty()) settings.producer_properties["linger.ms"] = operator_linger;
    kafka::ProducerOptions options;
    options.client_id = "producer-test";
    options.report_gather = gather;
    if (!linger.empty()) options.defaults["linger.ms"] = linger;
    auto producer = std::make_unique<kafka::Producer>(settings, options);
    producer->WarmUp({kTopic}, 10s);
    return producer;
  }
  static void Produce(kafka::Producer& producer, Report& report) {
    ASSERT_EQ(producer.Produce(kTopic, "k", "v", {}, &report), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  std::unique_ptr<DevBroker> broker_;
};

TEST_F(KafkaProducerTest, WithAReportGatherReportsComingWhileItSleepsWaitAndAnIdleOneIsServedAtOnce) {
  auto producer = MakeProducer(400ms);
  Report first;
  Produce(*producer, first);
  auto first_at = first.Wait(10s);
  ASSERT_TRUE(first_at) << "no report for the first record";

  // The poll thread served a report and sleeps for 400 ms: this record's report, acknowledged within
  // milliseconds, is served when it wakes.
  Report second;
  Produce(*producer, second);
  auto second_at = second.Wait(10s);
  ASSERT_TRUE(second_at) << "a report that came while the poll thread slept was never served";
  EXPECT_GE(*second_at - *first_at, 350ms) << "the report was served before the gather was over";

  // Past the sleep, with no report waiting, the thread blocks again: the next report is served (its
  // time is not asserted: this machine may stall for a moment).
  std::this_thread::sleep_for(1s);
  Report third;
  Produce(*producer, third);
  EXPECT_TRUE(third.Wait(10s)) << "a report after an idle second was not served";

  // A stop while it sleeps ends within the sleep.
  Report fourth;
  Produce(*producer, fourth);
  ASSERT_TRUE(fourth.Wait(10s));
  auto stop_at = Clock::now();
  producer.reset();
  EXPECT_LT(Clock::now() - stop_at, 5s);
}

// The workers' outcome_linger_ms reaches librdkafka as the producer's linger.ms default: a lone record
// waits that long before it is sent. The operator's kafka.producer_properties.linger.ms wins.
TEST_F(KafkaProducerTest, ALingerDefaultHoldsALoneRecordAndTheOperatorsLingerWins) {
  auto lingering = MakeProducer(0us, "2000");
  // The first record after WarmUp: a lone record in its partition's queue.
  Report held;
  auto produced_at = Clock::now();
  Produce(*lingering, held);
  auto held_at = held.Wait(10s);
  ASSERT_TRUE(held_at) << "no report for the lingering producer's record";
  EXPECT_GE(*held_at - produced_at, 1900ms) << "the record was sent before its linger.ms";
  lingering.reset();

  auto overridden = MakeProducer(0us, "2000", "0");
  Report prompt;
  produced_at = Clock::now();
  Produce(*overridden, prompt);
  auto prompt_at = prompt.Wait(10s);
  ASSERT_TRUE(prompt_at) << "no report for the overridden producer's record";
  // Well under the default's 2 s, with room for a stall of this machine.
  EXPECT_LT(*prompt_at - produced_at, 1500ms) << "the operator's linger.ms 0 did not win over the default";
}

}  // namespace
}  // namespace pv::testing
