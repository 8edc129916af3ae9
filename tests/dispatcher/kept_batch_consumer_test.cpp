// The dispatcher's side-consumer loop (dispatcher/src/kept_batch_consumer.hpp) against the dev broker:
// how a batch gathers (`gather`: the status feeder's status.batch_wait_ms), that a full batch does not
// wait for it, and that a stop applies and commits what was gathering.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../dispatcher/src/kept_batch_consumer.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/kafka.hpp"
#include "pv/testing/process.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using dispatcher::KeptBatchConsumer;

constexpr const char* kTopic = "kept.test";
constexpr const char* kGroup = "kept-test";

class KeptBatchConsumerTest : public ::testing::Test {
 protected:
  // A broker of its own per test: a new group reads its topic from the start.
  void SetUp() override {
    broker_ = std::make_unique<DevBroker>(
        1, std::vector<std::string>{"--no-default-topics", "--topic", std::string(kTopic) + ":1", "--log-level",
                                    "warn"});
    settings_.brokers = broker_->bootstrap();
    kafka::ProducerOptions options;
    options.client_id = "kept-test-producer";
    producer_ = std::make_unique<kafka::Producer>(settings_, options);
  }

  struct Batch {
    size_t size = 0;
    Clock::time_point at;
  };

  // Runs a consumer of kTopic in its own group on a thread until Stop().
  void Start(std::chrono::milliseconds gather, size_t batch_size) {
    consumer_ = std::make_unique<KeptBatchConsumer>(
        settings_, KeptBatchConsumer::Options{kGroup, "kept-test", {kTopic}, batch_size, 1000ms, gather, {}});
    KeptBatchConsumer::Handlers handlers;
    handlers.apply = [this](std::span<const kafka::Message> batch) {
      std::lock_guard lock(mu_);
      batches_.push_back({batch.size(), Clock::now()});
      return true;
    };
    handlers.stalled = [](bool) {};
    thread_ = std::thread([this, handlers] { unfinished_ = consumer_->Run(stop_, handlers); });
  }
  size_t Stop() {
    stop_ = true;
    thread_.join();
    return unfinished_;
  }
  void TearDown() override {
    if (thread_.joinable()) Stop();
    consumer_.reset();
    producer_.reset();
    broker_.reset();
  }

  std::vector<Batch> Batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }
  size_t Applied() {
    size_t n = 0;
    for (const Batch& b : Batches()) n += b.size;
    return n;
  }
  // Waits (bounded) until `n` records were applied in all.
  bool WaitApplied(size_t n, std::chrono::milliseconds timeout) {
    return WaitFor([&] { return Applied() >= n; }, timeout);
  }
  // n records, acknowledged.
  void Produce(int n) {
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(producer_->Produce(kTopic, "k", "v" + std::to_string(produced_)), RD_KAFKA_RESP_ERR_NO_ERROR);
      ++produced_;
    }
    ASSERT_EQ(producer_->Flush(10s), 0) << "the broker did not acknowledge";
  }
  // One record, applied: the group joined and the partition assigned.
  Clock::time_point Warm() {
    Produce(1);
    EXPECT_TRUE(WaitApplied(1, 30s)) << "the consumer never applied its first record";
    std::lock_guard lock(mu_);
    batches_.clear();
    return Clock::now();
  }

  std::unique_ptr<DevBroker> broker_;
  kafka::Settings settings_;
  std::unique_ptr<kafka::Producer> producer_;
  int produced_ = 0;
  std::unique_ptr<KeptBatchConsumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  size_t unfinished_ = 0;
  std::mutex mu_;
  std::vector<Batch> batches_;
};

// Five records 60 ms apart, each in a Fetch answer of its own: with a gather of 1.5 s they are one
// batch, applied no sooner than the gather after the first; without one, each answer is a batch.
TEST_F(KeptBatchConsumerTest, RecordsArrivingWithinTheGatherAreOneBatchAppliedAfterIt) {
  Start(1500ms, 1000);
  Warm();
  auto first = Clock::now();
  for (int i = 0; i < 5; ++i) {
    Produce(1);
    std::this_thread::sleep_for(60ms);
  }
  ASSERT_TRUE(WaitApplied(5, 20s));
  auto batches = Batches();
  ASSERT_EQ(batches.size(), 1u) << "records gathering were applied in more than one batch";
  EXPECT_EQ(batches[0].size, 5u);
  EXPECT_GE(batches[0].at - first, 1400ms) << "the batch was applied before its gather was over";
}

TEST_F(KeptBatchConsumerTest, WithoutAGatherEachFetchAnswerIsABatch) {
  Start(0ms, 1000);
  Warm();
  for (int i = 0; i < 5; ++i) {
    Produce(1);
    std::this_thread::sleep_for(60ms);
  }
  ASSERT_TRUE(WaitApplied(5, 20s));
  EXPECT_GE(Batches().size(), 3u) << "records 60 ms apart were held together without a gather";
}

// A batch that fills does not wait: 120 records, batches of 50, a gather of 60 s. The two full
// batches are applied as soon as the group is joined; the last 20 gather, and a stop applies and
// commits them.
TEST_F(KeptBatchConsumerTest, AFullBatchIsAppliedAtOnceAndAStopAppliesAndCommitsWhatGathers) {
  Produce(120);
  Start(60000ms, 50);
  ASSERT_TRUE(WaitFor([&] { return Applied() >= 100; }, 30s))
      << "full batches waited for the gather (applied so far: " << Applied() << ")";
  auto batches = Batches();
  ASSERT_GE(batches.size(), 2u);
  EXPECT_EQ(batches[0].size, 50u);
  EXPECT_EQ(batches[1].size, 50u);
  EXPECT_EQ(Applied(), 100u) << "the short batch did not wait for its gather";

  std::this_thread::sleep_for(300ms);  // the last 20 are taken and gathering
  EXPECT_EQ(Stop(), 0u) << "records left unapplied at the stop";
  EXPECT_EQ(Applied(), 120u);
  EXPECT_EQ(CommittedOffset(broker_->bootstrap(), kGroup, kTopic, 0), produced_)
      << "what the stop applied was not committed: the next owner would read it again";
}

}  // namespace
}  // namespace pv::testing

namespace pv::testing {
namespace {

// The batching Fetch settings go as a pair, and only where the configuration sets neither: an
// operator's fetch.wait.max.ms alone (latency_test.sh sets 450 for every consumer) must not become the
// wait of every Fetch for fetch.min.bytes.
TEST(FetchBatchDefaultsTest, BothOrNoneAndTheConfigurationWins) {
  kafka::Settings settings;
  auto both = dispatcher::FetchBatchDefaults(settings, 65536, 5);
  EXPECT_EQ(both, (std::map<std::string, std::string>{{"fetch.min.bytes", "65536"}, {"fetch.wait.max.ms", "5"}}));
  settings.consumer_properties["fetch.wait.max.ms"] = "450";
  EXPECT_TRUE(dispatcher::FetchBatchDefaults(settings, 65536, 5).empty());
  settings.consumer_properties.clear();
  settings.properties["fetch.min.bytes"] = "1";
  EXPECT_TRUE(dispatcher::FetchBatchDefaults(settings, 65536, 5).empty());
  settings.properties.clear();
  settings.consumer_properties["session.timeout.ms"] = "6000";  // others do not matter
  EXPECT_EQ(dispatcher::FetchBatchDefaults(settings, 1024, 50).size(), 2U);
}

}  // namespace
}  // namespace pv::testing
