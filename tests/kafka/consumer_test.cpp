// pv::kafka::Consumer against the dev broker (integration): its Close, which serves the close's
// queue itself so that it can bound the wait.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/kafka.hpp"

namespace pv::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTopic = "consumer.test";

// Records fetched ahead and never taken by the application reach the close's queue with the revoke.
// Served as callbacks (rd_kafka_queue_poll_callback), librdkafka 2.0.2 aborts on them
// ("rd_kafka_q_serve: assert: res != RD_KAFKA_OP_RES_PASS": no consume callback is set); Close must
// drop them instead (their offsets were never stored) and still commit what was and leave the group.
TEST(KafkaConsumerTest, CloseWithRecordsFetchedAndNotTakenDropsThemAndCommitsWhatWasStored) {
  DevBroker broker(1, {"--no-default-topics", "--topic", std::string(kTopic) + ":2", "--log-level", "warn"});
  std::vector<std::pair<std::string, std::string>> records;
  for (int i = 0; i < 4000; ++i) records.emplace_back("k" + std::to_string(i), std::string(200, 'v'));
  ProduceAll(broker.bootstrap(), kTopic, records);

  kafka::Settings settings;
  settings.brokers = broker.bootstrap();
  kafka::ConsumerOptions options;
  options.group_id = "consumer-test";
  options.client_id = "consumer-test";
  auto consumer = std::make_unique<kafka::Consumer>(settings, options);
  int revoked = 0;
  consumer->SetRebalanceListener([&](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t*) {
    if (kind == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) ++revoked;
  });
  consumer->Subscribe({kTopic});
  kafka::Message first;
  for (auto deadline = std::chrono::steady_clock::now() + 30s; !first && std::chrono::steady_clock::now() < deadline;) {
    first = consumer->Poll(100ms);
    if (first && first->err) first.reset();
  }
  ASSERT_TRUE(first) << "no record within 30 s";
  consumer->StoreOffset(kTopic, first->partition, first->offset + 1);
  const std::int32_t partition = first->partition;
  const std::int64_t next = first->offset + 1;
  first.reset();
  // Let the consumer fetch ahead: thousands of records wait in its queue, none taken.
  std::this_thread::sleep_for(1s);

  EXPECT_TRUE(consumer->Close(10s));
  EXPECT_GE(revoked, 1) << "the close's revoke did not reach the listener";
  consumer.reset();
  EXPECT_EQ(CommittedOffset(broker.bootstrap(), "consumer-test", kTopic, partition), next);
}

}  // namespace
}  // namespace pv::testing
