#include "kafka_client.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <csignal>

namespace pv::pvctl {

kafka::Settings KafkaSettings(const Context& ctx) {
  kafka::Settings settings = kafka::LoadSettings(ctx.config);
  if (!ctx.brokers.empty()) settings.brokers = ctx.brokers;
  if (settings.brokers.empty()) {
    throw kafka::KafkaError(
        "no Kafka brokers: set kafka.brokers in the config (--config or PV_CONFIG), "
        "PV_KAFKA_BROKERS, or pass --brokers HOST:PORT");
  }
  return settings;
}

std::chrono::milliseconds RequestTimeout(const Context& ctx) {
  // The command line checked the range, (0, 3600] seconds; a fraction of a millisecond is one.
  return std::chrono::milliseconds(
      std::max<std::int64_t>(1, static_cast<std::int64_t>(ctx.timeout_seconds * 1000)));
}

Client::Client(rd_kafka_type_t type, const kafka::Settings& settings, const std::string& client_id,
               const std::map<std::string, std::string>& properties) {
  // A command-line tool: only librdkafka's errors belong on the operator's terminal.
  std::map<std::string, std::string> defaults = {{"log_level", "3"}};
  for (const auto& [k, v] : properties) defaults[k] = v;
  rd_kafka_conf_t* conf = kafka::BuildConf(
      settings, type == RD_KAFKA_CONSUMER ? settings.consumer_properties : settings.producer_properties,
      client_id, defaults);
  char err[512];
  rk_ = rd_kafka_new(type, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw kafka::KafkaError(fmt::format("kafka client: {}", err));
  }
}

Client::~Client() {
  // No consumer_close: pvctl never joins a group, and close would commit nothing it wants.
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

ClusterInfo Describe(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw kafka::KafkaError(
        fmt::format("cannot read cluster metadata within {} ms: {}", timeout.count(), rd_kafka_err2str(err)));
  }
  ClusterInfo info;
  info.brokers = md->broker_cnt;
  for (int t = 0; t < md->topic_cnt; ++t) {
    const rd_kafka_metadata_topic_t& mt = md->topics[t];
    TopicInfo topic;
    topic.name = mt.topic;
    topic.err = mt.err;
    for (int p = 0; p < mt.partition_cnt; ++p) {
      const rd_kafka_metadata_partition_t& mp = mt.partitions[p];
      topic.partitions.push_back({mp.id, mp.leader, mp.replica_cnt, mp.isr_cnt, mp.err});
    }
    std::sort(topic.partitions.begin(), topic.partitions.end(),
              [](const PartitionInfo& a, const PartitionInfo& b) { return a.id < b.id; });
    info.topics[topic.name] = std::move(topic);
  }
  rd_kafka_metadata_destroy(md);
  return info;
}

std::map<std::int32_t, Watermarks> QueryWatermarks(rd_kafka_t* rk, const std::string& topic,
                                                   const std::vector<std::int32_t>& partitions,
                                                   std::chrono::milliseconds timeout) {
  std::map<std::int32_t, Watermarks> out;
  for (std::int32_t p : partitions) {
    Watermarks w;
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &w.low, &w.high,
                                                               static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw kafka::KafkaError(fmt::format("watermarks of {} [{}]: {}", topic, p, rd_kafka_err2str(err)));
    }
    out[p] = w;
  }
  return out;
}

std::vector<std::int32_t> PartitionsOf(rd_kafka_t* rk, const std::string& topic,
                                       std::chrono::milliseconds timeout) {
  ClusterInfo info = Describe(rk, timeout);
  auto it = info.topics.find(topic);
  if (it == info.topics.end() || it->second.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    throw kafka::KafkaError(fmt::format("topic {} does not exist", topic));
  }
  if (it->second.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw kafka::KafkaError(fmt::format("topic {}: {}", topic, rd_kafka_err2str(it->second.err)));
  }
  std::vector<std::int32_t> out;
  for (const auto& p : it->second.partitions) out.push_back(p.id);
  return out;
}

void Assign(rd_kafka_t* consumer, const std::string& topic,
            const std::map<std::int32_t, std::int64_t>& offsets) {
  if (offsets.empty()) return;
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& [p, offset] : offsets)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = offset;
  if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer, list.get()); err) {
    throw kafka::KafkaError(fmt::format("assigning {}: {}", topic, rd_kafka_err2str(err)));
  }
}

std::map<TopicPartition, std::int64_t> CommittedOffsets(rd_kafka_t* consumer,
                                                        const std::vector<TopicPartition>& partitions,
                                                        std::chrono::milliseconds timeout) {
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (const auto& tp : partitions)
    rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
  rd_kafka_resp_err_t err = rd_kafka_committed(consumer, list.get(), static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw kafka::KafkaError(fmt::format("reading committed offsets: {}", rd_kafka_err2str(err)));
  }
  std::map<TopicPartition, std::int64_t> out;
  for (int i = 0; i < list->cnt; ++i) {
    const auto& tp = list->elems[i];
    out[{tp.topic, tp.partition}] =
        tp.err == RD_KAFKA_RESP_ERR_NO_ERROR ? tp.offset : RD_KAFKA_OFFSET_INVALID;
  }
  return out;
}

void ReadToEnd(const kafka::Settings& settings, const std::string& topic, const std::string& client_id,
               std::chrono::milliseconds timeout,
               const std::function<void(const rd_kafka_message_t*)>& on_record) {
  Client consumer(
      RD_KAFKA_CONSUMER, settings, client_id,
      // librdkafka wants a group id even for assigned partitions; nothing is joined or committed.
      // The end-of-partition event also ends the read where the offsets before the
      // high watermark have gaps (compaction, transaction markers).
      {{"group.id", client_id}, {"enable.auto.commit", "false"}, {"enable.partition.eof", "true"}});
  std::vector<std::int32_t> partitions = PartitionsOf(consumer.get(), topic, timeout);
  auto marks = QueryWatermarks(consumer.get(), topic, partitions, timeout);
  std::map<std::int32_t, std::int64_t> next;  // the offset to read next, per partition still to read
  for (auto p : partitions) {
    if (marks[p].high > marks[p].low) next[p] = marks[p].low;
  }
  if (next.empty()) return;
  Assign(consumer.get(), topic, next);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pending = [&] {
    return std::any_of(next.begin(), next.end(),
                       [&](const auto& n) { return n.second < marks[n.first].high; });
  };
  while (pending()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw kafka::KafkaError(fmt::format("reading {}: not at its end after {} ms", topic, timeout.count()));
    }
    kafka::Message m(rd_kafka_consumer_poll(consumer.get(), 100));
    if (m == nullptr) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (next.count(m->partition) != 0) next[m->partition] = std::max(next[m->partition], m->offset);
        continue;
      }
      throw kafka::KafkaError(fmt::format("reading {}: {}", topic, rd_kafka_message_errstr(m.get())));
    }
    next[m->partition] = m->offset + 1;
    on_record(m.get());
  }
}

rd_kafka_resp_err_t ProduceState(kafka::Producer& producer, const std::string& topic, const std::string& key,
                                 const std::optional<std::string>& value, const char* version_header,
                                 std::int64_t version, const std::shared_ptr<kafka::DeliveryGroup>& group) {
  if (value) return producer.Produce(topic, key, *value, {}, group);
  // A null value (not an empty one: std::string_view{} has no data) is Kafka's tombstone. The header
  // holds views: the version text must outlive the Produce call (ASan caught a temporary here).
  const std::string version_text = std::to_string(version);
  std::vector<kafka::Header> headers = {{version_header, version_text}};
  return producer.Produce(topic, key, std::string_view{}, headers, group);
}

namespace {
std::atomic<bool> g_interrupted{false};
struct sigaction g_old_int {};
struct sigaction g_old_term {};

void OnSignal(int) {
  g_interrupted.store(true);
}
}  // namespace

InterruptScope::InterruptScope() {
  g_interrupted.store(false);
  struct sigaction sa {};
  sa.sa_handler = &OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

bool InterruptScope::Interrupted() {
  return g_interrupted.load();
}

}  // namespace pv::pvctl
