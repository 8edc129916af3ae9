#include "pv/testing/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <map>
#include <span>
#include <stdexcept>
#include <thread>

#include "pv/ids.hpp"
#include "pv/testing/records.hpp"

namespace pv::testing {

using namespace std::chrono_literals;

void ProduceAll(const std::string& bootstrap, const std::string& topic,
                const std::vector<std::pair<std::string, std::string>>& key_values) {
  kafka::Settings settings;
  settings.brokers = bootstrap;
  settings.properties["log_level"] = "3";
  kafka::ProducerOptions options;
  options.client_id = "pv-test-producer";
  options.defaults["linger.ms"] = "5";
  kafka::Producer producer(settings, options);
  auto group = std::make_shared<kafka::DeliveryGroup>(static_cast<int>(key_values.size()));
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  for (const auto& [key, value] : key_values) {
    while (true) {
      rd_kafka_resp_err_t err = producer.Produce(topic, key, value, {}, group);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(rd_kafka_err2str(err));
      }
      std::this_thread::sleep_for(5ms);  // the local queue drains as the broker acknowledges
    }
  }
  if (!group->Wait(deadline) || group->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("produce not acknowledged");
  }
}

std::int64_t CommittedOffset(const std::string& bootstrap, const std::string& group, const std::string& topic,
                             std::int32_t partition) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"bootstrap.servers", bootstrap}, {"group.id", group}, {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  // A consumer that never subscribes: it only asks the coordinator (OffsetFetch), it joins nothing.
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  std::int64_t offset = -1;
  if (rd_kafka_committed(rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err == 0) {
    offset = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return offset;
}

TriggerWriter::TriggerWriter(const std::string& bootstrap) {
  kafka::Settings settings;
  settings.brokers = bootstrap;
  kafka::ProducerOptions options;
  options.client_id = "pv-test-triggers";
  options.defaults = {{"linger.ms", "1"}};
  producer_ = std::make_unique<kafka::Producer>(settings, options);
}

std::string TriggerWriter::Write(const std::string& campaign_id, const std::string& external_id,
                                 const std::string& user_json, const std::string& event_json,
                                 const std::string& trigger_id) {
  std::string id = trigger_id.empty() ? NewTriggerId() : trigger_id;
  std::string value = TriggerValue(id, campaign_id, user_json, event_json);
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  kafka::Header header{"pv-trigger-id", id};
  if (producer_->Produce("pv.triggers", external_id, value, std::span<const kafka::Header>(&header, 1),
                         group) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("produce failed");
  }
  groups_.push_back(group);
  return id;
}

bool TriggerWriter::Flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& g : groups_) {
    if (!g->Wait(deadline) || g->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  }
  groups_.clear();
  return true;
}

}  // namespace pv::testing
