#include "pv/produce_errors.hpp"

#include <fmt/format.h>

namespace pv::kafka {
namespace {

// Bytes of an unsigned varint holding `n` (Kafka's record fields are zig-zag varints: one more bit).
std::size_t VarintBytes(std::size_t n) {
  std::size_t zigzag = n << 1U;
  std::size_t bytes = 1;
  while (zigzag >= 0x80) {
    zigzag >>= 7U;
    ++bytes;
  }
  return bytes;
}

constexpr std::size_t kRecordOverhead = 36;       // RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD
constexpr std::size_t kBatchHeaderOverhead = 61;  // RD_KAFKAP_MSGSET_V2_SIZE

}  // namespace

ProduceFailure ProduceFailureOf(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:  // librdkafka's local check says the same
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
      return ProduceFailure::kTooLarge;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
      return ProduceFailure::kUnauthorized;
    // Reported only once librdkafka stopped waiting for the topic to appear
    // (topic.metadata.propagation.max.ms) or its retries ran out (message.timeout.ms).
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:  // an invalid topic name
      return ProduceFailure::kUnknownTopic;
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
      return ProduceFailure::kInvalidRecord;
    case RD_KAFKA_RESP_ERR__FATAL:
      return ProduceFailure::kFatal;
    default:
      // Everything else may pass on a later attempt (see the header on authentication).
      return ProduceFailure::kTransient;
  }
}

ProduceErrorClass ClassOf(ProduceFailure failure) {
  if (failure == ProduceFailure::kTransient) return ProduceErrorClass::kRetriable;
  if (failure == ProduceFailure::kFatal) return ProduceErrorClass::kFatal;
  return ProduceErrorClass::kNeverSucceeds;  // too large, unauthorized, unknown topic, invalid record
}

std::string_view ProduceFailureName(ProduceFailure failure) {
  static constexpr std::string_view kNames[] = {"transient",      "too_large",
                                                "unauthorized",   "unknown_topic",
                                                "invalid_record", "fatal"};  // by ProduceFailure
  return kNames[static_cast<std::size_t>(failure)];
}

std::string DescribeProduceError(std::string_view topic, rd_kafka_resp_err_t err) {
  return fmt::format("{}: {} ({})", topic, rd_kafka_err2str(err), rd_kafka_err2name(err));
}

std::size_t HeaderBytes(std::string_view name, std::string_view value) {
  return VarintBytes(name.size()) + name.size() + VarintBytes(value.size()) + value.size();
}

std::size_t RecordBytes(std::string_view key, std::string_view value, std::span<const Header> headers) {
  std::size_t n = kBatchHeaderOverhead + kRecordOverhead + key.size() + value.size();
  for (const auto& h : headers) n += HeaderBytes(h.name, h.value);
  return n;
}

}  // namespace pv::kafka
