#include "pv/testing/topic_reader.hpp"

#include <librdkafka/rdkafka.h>

#include <stdexcept>
#include <string>

#include "pv/ids.hpp"
#include "pv/json.hpp"

namespace pv::testing {

TopicReader::TopicReader(const std::string& bootstrap, const std::vector<std::string>& topics) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // group.id is required by the consumer API even when partitions are assigned by hand; nothing is
  // committed (auto commit off), and each reader has a group of its own, so readers never disturb
  // each other.
  const std::string group = "pv-test-reader-" + RandomHex(6);
  for (const auto& [name, value] :
       std::vector<std::pair<const char*, std::string>>{{"bootstrap.servers", bootstrap},
                                                        {"group.id", group},
                                                        {"enable.auto.commit", "false"},
                                                        {"enable.partition.eof", "false"},
                                                        {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, name, value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(err);
  rd_kafka_poll_set_consumer(rk);
  rk_ = rk;
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
  for (const auto& topic : topics) {
    // A topic a component has just created may need a few metadata rounds: 50 tries of 2 s at most.
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    for (int attempt = 0; attempt < 50; ++attempt) {
      rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].partition_cnt > 0) break;
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_metadata_destroy(md);
      md = nullptr;
    }
    rd_kafka_topic_destroy(rkt);
    if (md == nullptr) {
      rd_kafka_topic_partition_list_destroy(list);
      rd_kafka_destroy(rk);
      throw std::runtime_error("no metadata for topic " + topic);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      rd_kafka_topic_partition_list_add(list, topic.c_str(), md->topics[0].partitions[p].id)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
}

TopicReader::~TopicReader() {
  auto* rk = static_cast<rd_kafka_t*>(rk_);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

const std::vector<Record>& TopicReader::ReadUntil(const std::function<bool(const std::vector<Record>&)>& done,
                                                  std::chrono::milliseconds timeout) {
  auto* rk = static_cast<rd_kafka_t*>(rk_);
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  // `done` often parses every record read so far, so it is asked when the topic has nothing more
  // for now or every 100 ms, not after each record: asked per record, reading the events of 3000
  // sends cost minutes of parsing under AddressSanitizer and the workers' tests timed out.
  bool finished = done(records_);
  auto asked = Clock::now();
  while (!finished && Clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    const bool idle = m == nullptr;
    if (m != nullptr && m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record r;
      r.topic = rd_kafka_topic_name(m->rkt);
      r.partition = m->partition;
      r.offset = m->offset;
      r.timestamp = FromUnixMillis(rd_kafka_message_timestamp(m, nullptr));
      r.read_at = std::chrono::system_clock::now();
      if (m->key != nullptr) r.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload != nullptr) r.value.assign(static_cast<const char*>(m->payload), m->len);
      r.tombstone = m->payload == nullptr;
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name = nullptr;
        const void* value = nullptr;
        size_t size = 0;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
          r.headers[name] =
              value != nullptr ? std::string(static_cast<const char*>(value), size) : std::string();
        }
      }
      records_.push_back(std::move(r));
    }
    if (m != nullptr) rd_kafka_message_destroy(m);
    if (idle || Clock::now() - asked >= std::chrono::milliseconds(100)) {
      finished = done(records_);
      asked = Clock::now();
    }
  }
  return records_;
}

const std::vector<Record>& TopicReader::ReadFor(std::chrono::milliseconds duration) {
  return ReadUntil([](const std::vector<Record>&) { return false; }, duration);
}

std::vector<Record> TopicReader::Of(const std::string& topic) const {
  std::vector<Record> out;
  for (const auto& r : records_) {
    if (r.topic == topic) out.push_back(r);
  }
  return out;
}

}  // namespace pv::testing
