// Which produce errors are retried and which can never succeed (pv/produce_errors.hpp), and the record
// size estimate checked against librdkafka's own refusal.
#include "pv/produce_errors.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pv::kafka {
namespace {

TEST(ProduceErrorsTest, WhatTheBrokerWillNeverTakeIsNotRetried) {
  struct Case {
    rd_kafka_resp_err_t err;
    ProduceFailure kind;
    const char* name;
  };
  const std::vector<Case> cases = {
      {RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, ProduceFailure::kTooLarge, "too_large"},
      {RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, ProduceFailure::kTooLarge, "too_large"},
      {RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE, ProduceFailure::kTooLarge, "too_large"},
      {RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, ProduceFailure::kUnauthorized, "unauthorized"},
      {RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, ProduceFailure::kUnknownTopic, "unknown_topic"},
      {RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC, ProduceFailure::kUnknownTopic, "unknown_topic"},
      {RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION, ProduceFailure::kUnknownTopic, "unknown_topic"},
      {RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION, ProduceFailure::kUnknownTopic, "unknown_topic"},
      {RD_KAFKA_RESP_ERR_INVALID_RECORD, ProduceFailure::kInvalidRecord, "invalid_record"},
      {RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP, ProduceFailure::kInvalidRecord, "invalid_record"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(rd_kafka_err2name(c.err));
    EXPECT_EQ(ProduceFailureOf(c.err), c.kind);
    EXPECT_EQ(ProduceFailureName(c.kind), c.name);
    EXPECT_EQ(ProduceErrorClassOf(c.err), ProduceErrorClass::kNeverSucceeds);
  }
}

TEST(ProduceErrorsTest, OutagesAndCredentialsAreRetried) {
  // Each of these passes once the broker, the network or an operator's fix is back; the last ones
  // fail every record alike, so giving up on records would empty the pipeline (see the header).
  for (rd_kafka_resp_err_t err :
       {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__TRANSPORT,
        RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
        RD_KAFKA_RESP_ERR__AUTHENTICATION, RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED,
        RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED}) {
    SCOPED_TRACE(rd_kafka_err2name(err));
    EXPECT_EQ(ProduceFailureOf(err), ProduceFailure::kTransient);
    EXPECT_EQ(ProduceErrorClassOf(err), ProduceErrorClass::kRetriable);
  }
  EXPECT_EQ(ProduceErrorClassOf(RD_KAFKA_RESP_ERR__FATAL), ProduceErrorClass::kFatal);
}

TEST(ProduceErrorsTest, DescriptionNamesTopicAndCode) {
  EXPECT_EQ(DescribeProduceError("pv.dlq.email", RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE),
            "pv.dlq.email: Broker: Message size too large (MSG_SIZE_TOO_LARGE)");
}

// The estimate is never below what librdkafka counts: a record just at the estimate's limit is
// accepted by a producer with that message.max.bytes, one byte of value more is not our problem to
// prove, but a record over the estimate by the overhead is refused by librdkafka itself.
TEST(ProduceErrorsTest, RecordBytesCountsHeadersAndIsNotBelowLibrdkafkasCheck) {
  std::string key = "u-1";
  std::string value(5000, 'v');
  std::vector<Header> headers = {{"pv-due-at", "2026-12-02T10:00:00.000Z"}, {"pv-target", "pv.triggers"}};
  std::size_t bare = RecordBytes(key, value, {});
  std::size_t with = RecordBytes(key, value, headers);
  EXPECT_EQ(with - bare,
            HeaderBytes(headers[0].name, headers[0].value) + HeaderBytes(headers[1].name, headers[1].value));
  EXPECT_EQ(HeaderBytes("pv-target", "pv.triggers"), 1 + 9 + 1 + 11);
  EXPECT_EQ(HeaderBytes("n", std::string(100, 'x')), 1 + 1 + 2 + 100);  // 100 needs two zig-zag bytes

  // librdkafka refuses at produce time what is over its message.max.bytes; a limit of exactly our
  // estimate must be accepted (the estimate is an upper bound of its count).
  Settings settings;
  settings.brokers = "127.0.0.1:1";  // never reached: nothing is flushed
  ProducerOptions options;
  options.defaults = {{"message.max.bytes", std::to_string(with)}, {"message.timeout.ms", "1"}};
  Producer fits(settings, options);
  EXPECT_EQ(fits.MaxMessageBytes(), with);
  EXPECT_EQ(fits.Produce("t", key, value, headers), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(fits.Produce("t", key, value + std::string(200, 'v'), headers),
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  fits.Flush(std::chrono::milliseconds(0));
}

}  // namespace
}  // namespace pv::kafka
