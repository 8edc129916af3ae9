// What a failed produce means for the record: retry it, or give up on this destination because the
// broker will never take it. Shared by the dispatcher (trigger pipeline, delay scheduler) and the
// workers' outcome records, so that "can never succeed" means the same everywhere.
//
// librdkafka error -> ProduceFailure (kind) -> ProduceErrorClass, in the shape of
// workers/runtime/src/errors.cpp: the kind -> class switch is exhaustive without `default:`, so a new
// kind does not compile until it has a class. librdkafka's own codes are many (about 200, more with
// each release); ProduceFailureOf names the ones that can never succeed and maps every other code to
// kTransient, which is what every producer here did with every error before (retry).
//
// Why authentication and cluster-wide authorization stay transient: they fail every record alike, so
// dead-lettering them would empty the pipeline into DLQs (or skip records) while an operator fixes a
// credential; retrying waits for that fix. A per-topic refusal (TOPIC_AUTHORIZATION_FAILED, an unknown
// topic) fails only the records of that topic, so their inputs can move on.
//
// Tests: common/test/produce_errors_test.cpp.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "pv/kafka.hpp"

namespace pv::kafka {

enum class ProduceFailure {
  kTransient,     // timeouts, leader changes, broker down, full queue, not enough replicas, anything unlisted
  kTooLarge,      // MSG_SIZE_TOO_LARGE (librdkafka's own check or the topic's max.message.bytes), ...
  kUnauthorized,  // TOPIC_AUTHORIZATION_FAILED
  kUnknownTopic,  // the topic or partition does not exist (and is not auto-created)
  kInvalidRecord,  // the broker refuses this record's content (INVALID_RECORD, INVALID_TIMESTAMP)
  kFatal,          // the producer itself can never produce again (rd_kafka_fatal_error)
};

enum class ProduceErrorClass {
  kRetriable,      // produce the same record again later
  kNeverSucceeds,  // the same record to the same topic is refused every time: send it elsewhere or skip
  kFatal,          // the process must exit and start a new producer
};

ProduceFailure ProduceFailureOf(rd_kafka_resp_err_t err);
ProduceErrorClass ClassOf(ProduceFailure failure);
inline ProduceErrorClass ProduceErrorClassOf(rd_kafka_resp_err_t err) {
  return ClassOf(ProduceFailureOf(err));
}
// "transient", "too_large", "unauthorized", "unknown_topic", "invalid_record", "fatal": metric labels
// and the suffix of dead-letter error codes (produce_too_large, ...).
std::string_view ProduceFailureName(ProduceFailure failure);
// "<topic>: <librdkafka's message> (<ERROR_NAME>)", for pv-error headers and logs.
std::string DescribeProduceError(std::string_view topic, rd_kafka_resp_err_t err);

// The size a record can take on the wire in a batch of its own, over-estimated: key, value, each
// header's name and value with their length varints, the record's varints and attributes (librdkafka's
// RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD, 36 bytes) and a record batch header (61 bytes). Not larger than
// Producer::MaxMessageBytes() means librdkafka will not refuse it for size, and neither will a topic
// whose max.message.bytes is at least that.
std::size_t RecordBytes(std::string_view key, std::string_view value, std::span<const Header> headers);
// The header part alone (add it to a record's size when a header is added later, e.g. by the ladder).
std::size_t HeaderBytes(std::string_view name, std::string_view value);
// RecordBytes of headers held as strings before producing: a range of {name, value} (std::pair or a struct).
template <typename Headers>
std::size_t RecordBytesOf(std::string_view key, std::string_view value, const Headers& headers) {
  std::size_t n = RecordBytes(key, value, {});
  for (const auto& [name, v] : headers) n += HeaderBytes(name, v);
  return n;
}

}  // namespace pv::kafka
