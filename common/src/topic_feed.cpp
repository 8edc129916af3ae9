#include "pv/topic_feed.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "pv/log.hpp"
#include "pv/state_record.hpp"
#include "pv/strings.hpp"

namespace pv::kafka {

TopicFeed::TopicFeed(const Settings& settings, std::string topic, const std::string& client_id,
                     Callbacks callbacks)
    : topic_(std::move(topic)), callbacks_(std::move(callbacks)) {
  // Not the operator's to change: partitions are assigned by hand and nothing is committed (the group
  // id is required by the API but never joined, so replicas do not share or rebalance the topic), and
  // the end-of-partition events tell how far the feed has read where compaction left gaps.
  rd_kafka_conf_t* conf =
      BuildConf(settings, settings.consumer_properties, client_id, {},
                {{"group.id", client_id}, {"enable.auto.commit", "false"}, {"enable.partition.eof", "true"}});
  char err[512];
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw KafkaError(fmt::format("kafka consumer {}: {}", client_id, err));
  }
  rd_kafka_poll_set_consumer(rk_);
  thread_ = std::thread([this] { Run(); });
}

TopicFeed::~TopicFeed() {
  {
    std::lock_guard lock(mutex_);  // so that no waiter misses the notification
    stop_.store(true);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
}

int TopicFeed::PartitionCount() {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, topic_.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  int partitions = 0;
  if (rd_kafka_metadata(rk_, 0, rkt, &md, 1000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (md->topic_cnt == 1) {
      if (md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        partitions = md->topics[0].partition_cnt;
      } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        partitions = -1;
      }
    }
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_topic_destroy(rkt);
  return partitions;
}

bool TopicFeed::ReachedLocked(const std::map<std::int32_t, std::int64_t>& marks) const {
  for (const auto& [partition, high] : marks) {
    auto it = next_.find(partition);
    if (it == next_.end() || it->second < high) return false;
  }
  return true;
}

void TopicFeed::Run() {
  // Find the topic (a deployment creates it with `pvctl topics create`).
  int partitions = 0;
  while (!stop_.load()) {
    partitions = PartitionCount();
    if (partitions > 0) break;
    if (partitions < 0) {
      std::lock_guard lock(mutex_);
      missing_ = true;
    }
    cv_.notify_all();
    if (callbacks_.on_waiting) callbacks_.on_waiting(partitions < 0);
    std::unique_lock lock(mutex_);
    cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_.load(); });
  }
  if (stop_.load()) return;

  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, topic_.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  {
    std::lock_guard lock(mutex_);
    for (int p = 0; p < partitions; ++p) next_[p] = 0;
    missing_ = false;
    assigned_ = true;
  }
  cv_.notify_all();
  log::Info("topic_feed_started", {{"topic", topic_}, {"partitions", partitions}});

  while (!stop_.load()) {
    // Where reading started counts as "caught up" once the feed reached the high watermarks of that
    // moment; asked until the broker answers.
    if (static_cast<int>(start_marks_.size()) < partitions) {
      for (int p = 0; p < partitions; ++p) {
        if (start_marks_.count(p) != 0) continue;
        std::int64_t low = 0;
        std::int64_t high = 0;
        if (rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), p, &low, &high, 1000) ==
            RD_KAFKA_RESP_ERR_NO_ERROR) {
          std::lock_guard lock(mutex_);
          start_marks_[p] = high;
          next_[p] = std::max(next_[p], low);  // nothing to read below the low watermark
        }
      }
      cv_.notify_all();
    }
    bool changed = false;
    std::map<std::int32_t, std::int64_t> advanced;
    // Drain what is ready, then report once.
    for (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 200); m != nullptr;
         m = rd_kafka_consumer_poll(rk_, 0)) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (callbacks_.on_record(m)) changed = true;
        advanced[m->partition] = m->offset + 1;
      } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        // The end of the partition: offsets before it that were never delivered are compaction's
        // gaps (or transaction markers).
        advanced[m->partition] = std::max(advanced[m->partition], m->offset);
      }
      rd_kafka_message_destroy(m);
      if (stop_.load()) break;
    }
    if (changed) callbacks_.on_change();
    bool reached = false;
    {
      std::lock_guard lock(mutex_);
      for (const auto& [p, next] : advanced) next_[p] = std::max(next_[p], next);
      reached =
          !caught_up_ && static_cast<int>(start_marks_.size()) == partitions && ReachedLocked(start_marks_);
    }
    if (!advanced.empty()) cv_.notify_all();
    if (reached) {
      caught_up_ = true;
      if (callbacks_.on_caught_up) callbacks_.on_caught_up();
    }
  }
}

bool TopicFeed::WaitCaughtUp(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [this] {
    if (missing_) return true;
    if (!assigned_ || start_marks_.size() < next_.size()) return false;
    return ReachedLocked(start_marks_);
  });
}

bool TopicFeed::Sync(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::int32_t> partitions;
  {
    std::unique_lock lock(mutex_);
    if (!cv_.wait_until(lock, deadline, [this] { return missing_ || assigned_ || stop_.load(); }))
      return false;
    if (missing_) return true;
    if (!assigned_) return false;
    for (const auto& [p, next] : next_) partitions.push_back(p);
  }
  std::map<std::int32_t, std::int64_t> marks;
  for (std::int32_t p : partitions) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    std::int64_t low = 0;
    std::int64_t high = 0;
    // librdkafka's handles are thread-safe: this asks the broker while the feed's thread polls.
    if (rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), p, &low, &high,
                                         static_cast<int>(left.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      return false;
    }
    marks[p] = high;
  }
  std::unique_lock lock(mutex_);
  return cv_.wait_until(lock, deadline, [&] { return stop_.load() || ReachedLocked(marks); }) &&
         !stop_.load();
}

}  // namespace pv::kafka

// ---- state records (state_record.hpp): what the feeds of pv.keys and pv.campaigns read ----
namespace pv {

bool TombstoneVersion(const StateRecordView& record, std::string_view header, std::int64_t& out,
                      std::string& error) {
  if (!record.updated_at_header) {
    out = std::max<std::int64_t>(record.timestamp_ms, 0);
    return true;
  }
  if (ParseDigits(*record.updated_at_header, out)) return true;
  error = fmt::format("tombstone header {} must be a number of milliseconds", header);
  return false;
}

bool ParseStateMessage(const rd_kafka_message_s* message, const char* header,
                       const std::function<bool(const StateRecordView&)>& parse) {
  StateRecordView view;
  view.record_key = kafka::Key(message);
  if (message->payload != nullptr) view.value = kafka::Payload(message);
  std::optional<std::string> header_value = kafka::HeaderValue(message, header);
  if (header_value) view.updated_at_header = *header_value;
  rd_kafka_timestamp_type_t type = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
  view.timestamp_ms = rd_kafka_message_timestamp(message, &type);
  return parse(view);
}

}  // namespace pv
