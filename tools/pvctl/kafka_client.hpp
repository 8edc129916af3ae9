// What the Kafka commands of pvctl (topics, replay, tail) share: the cluster settings from the config
// (or --brokers), a raw librdkafka handle that pvctl owns, and the metadata and offset look-ups.
//
// pvctl uses raw handles rather than pv::kafka::Consumer because it never joins a group: it assigns
// partitions itself (a tail, a replay up to watermarks captured at start) and, for replay, commits
// offsets under a group id without being a member, which Kafka accepts for a group with no members.
#pragma once

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "pv/kafka.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {

// kafka.* from the config; --brokers overrides kafka.brokers. Throws KafkaError when none is set.
kafka::Settings KafkaSettings(const Context& ctx);

// The timeout of one broker round trip (--timeout SECONDS, default 10 s, at most 3600 s).
std::chrono::milliseconds RequestTimeout(const Context& ctx);

// Produces the newest state of `key` on a compacted state topic (pv.keys, pv.campaigns): `value`, or
// for nullopt a tombstone, whose version travels in the header `version_header` (a null value cannot
// carry it). Returns the enqueue error; `group` gets the report.
rd_kafka_resp_err_t ProduceState(kafka::Producer& producer, const std::string& topic, const std::string& key,
                                 const std::optional<std::string>& value, const char* version_header,
                                 std::int64_t version, const std::shared_ptr<kafka::DeliveryGroup>& group);

// Owns an rd_kafka_t (destroyed in the destructor; no consumer close: pvctl never joins a group).
class Client {
 public:
  // `type`: RD_KAFKA_CONSUMER or RD_KAFKA_PRODUCER (also used for Admin API calls). `properties`
  // apply where the operator's kafka.properties do not set the same name. Throws KafkaError.
  Client(rd_kafka_type_t type, const kafka::Settings& settings, const std::string& client_id,
         const std::map<std::string, std::string>& properties = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  rd_kafka_t* get() const { return rk_; }

 private:
  rd_kafka_t* rk_ = nullptr;
};

struct PartitionInfo {
  std::int32_t id = 0;
  std::int32_t leader = -1;
  int replicas = 0;
  int in_sync = 0;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

struct TopicInfo {
  std::string name;
  std::vector<PartitionInfo> partitions;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
};

struct ClusterInfo {
  int brokers = 0;
  std::map<std::string, TopicInfo> topics;  // every topic the cluster reports (none auto-created)
};

// Metadata of all topics. Throws KafkaError when the cluster does not answer within `timeout`.
ClusterInfo Describe(rd_kafka_t* rk, std::chrono::milliseconds timeout);

struct Watermarks {
  std::int64_t low = 0;
  std::int64_t high = 0;
};

// Low and high watermark of each partition (a round trip each). Throws KafkaError.
std::map<std::int32_t, Watermarks> QueryWatermarks(rd_kafka_t* rk, const std::string& topic,
                                                   const std::vector<std::int32_t>& partitions,
                                                   std::chrono::milliseconds timeout);

// The partition ids of `topic`; throws KafkaError naming the topic when it does not exist.
std::vector<std::int32_t> PartitionsOf(rd_kafka_t* rk, const std::string& topic,
                                       std::chrono::milliseconds timeout);

// Assigns `topic`'s partitions to a consumer at the given offsets (partition -> offset), nothing when
// there are none. Throws KafkaError.
void Assign(rd_kafka_t* consumer, const std::string& topic,
            const std::map<std::int32_t, std::int64_t>& offsets);

struct TopicPartition {
  std::string topic;
  std::int32_t partition = 0;
  friend bool operator<(const TopicPartition& a, const TopicPartition& b) {
    return std::tie(a.topic, a.partition) < std::tie(b.topic, b.partition);
  }
};

// Committed offsets of the group of `consumer` (a handle with a group.id that never joins the group)
// for the given partitions (RD_KAFKA_OFFSET_INVALID = none committed). The handle then knows the
// group's coordinator: a later commit on it does not wait for the coordinator look-up. Throws KafkaError.
std::map<TopicPartition, std::int64_t> CommittedOffsets(rd_kafka_t* consumer,
                                                        const std::vector<TopicPartition>& partitions,
                                                        std::chrono::milliseconds timeout);

// Reads `topic` from the beginning of every partition up to the high watermarks taken at the start,
// calling `on_record` for each record (not for error events), oldest first per partition. For the
// compacted topics that hold a whole state (pv.keys, pv.campaigns). Throws KafkaError when the topic
// does not exist or cannot be read to its end within `timeout`.
void ReadToEnd(const kafka::Settings& settings, const std::string& topic, const std::string& client_id,
               std::chrono::milliseconds timeout,
               const std::function<void(const rd_kafka_message_t*)>& on_record);

using kafka::PartitionList;

// Stops long-running commands (tail --follow, replay) on SIGINT/SIGTERM for the scope: the first
// signal sets the flag (the command finishes cleanly), the previous handlers come back afterwards.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  static bool Interrupted();
};

}  // namespace pv::pvctl
