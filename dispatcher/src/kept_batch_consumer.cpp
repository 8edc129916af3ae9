#include "kept_batch_consumer.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <map>
#include <thread>
#include <utility>

#include "pv/log.hpp"

namespace pv::dispatcher {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

KeptBatchConsumer::KeptBatchConsumer(const kafka::Settings& settings, Options options)
    : options_(std::move(options)),
      consumer_(MakeConsumer(settings, options_.group_id, options_.client_id,
                             [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
                               OnRebalance(kind, parts);
                             },
                             options_.consumer_defaults)) {}

KeptBatchConsumer::~KeptBatchConsumer() = default;

void KeptBatchConsumer::OnRebalance(rd_kafka_resp_err_t kind,
                                    const rd_kafka_topic_partition_list_t* partitions) {
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::Info("partitions_assigned", {{"group", options_.group_id}, {"count", partitions->cnt}});
    return;
  }
  if (kind != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) return;
  std::erase_if(batch_, [&](const kafka::Message& m) {
    for (int i = 0; i < partitions->cnt; ++i) {
      if (m->partition == partitions->elems[i].partition &&
          std::string_view(rd_kafka_topic_name(m->rkt)) == partitions->elems[i].topic) {
        return true;
      }
    }
    return false;
  });
}

void KeptBatchConsumer::SetPaused(bool on) {
  if (!on && !paused_) return;
  consumer_->SetAssignmentPaused(on);
  paused_ = on;
}

bool KeptBatchConsumer::Take(kafka::Message m) {
  if (!m) return false;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      log::Warn("consume_error", {{"group", options_.group_id}, {"error", rd_kafka_message_errstr(m.get())}});
    }
    return true;
  }
  batch_.push_back(std::move(m));
  return true;
}

void KeptBatchConsumer::TakeReady() {
  while (batch_.size() < options_.batch_size && Take(consumer_->Poll(milliseconds(0)))) {
  }
}

void KeptBatchConsumer::StoreOffsets() {
  // A batch is applied whole and in order: each partition's next offset is one past its last record.
  std::map<std::pair<std::string_view, std::int32_t>, std::int64_t> next;
  for (const kafka::Message& m : batch_) {
    auto& n = next[{rd_kafka_topic_name(m->rkt), m->partition}];
    n = std::max(n, m->offset + 1);
  }
  for (const auto& [tp, offset] : next) consumer_->StoreOffset(tp.first, tp.second, offset);
}

size_t KeptBatchConsumer::Run(const std::atomic<bool>& stop, const Handlers& handlers) {
  consumer_->Subscribe(options_.topics);
  log::Info("consuming",
            {{"topic", fmt::format("{}", fmt::join(options_.topics, ","))}, {"group", options_.group_id}});
  auto retry_at = Clock::now();
  // When the batch's first record was taken: it gathers until options_.gather after. A batch short of
  // batch_size was taken until the consumer held no more (TakeReady), so there is nothing to take
  // before the next step.
  Clock::time_point first_at{};
  while (!stop.load()) {
    if (handlers.tick) handlers.tick();
    if (!batch_.empty() && batch_.size() < options_.batch_size && !paused_) {
      auto left = first_at + options_.gather - Clock::now();
      if (left > Clock::duration::zero()) {
        std::this_thread::sleep_for(std::min<Clock::duration>(left, kGatherStep));
        TakeReady();
        continue;
      }
    }
    if (!batch_.empty() && Clock::now() >= retry_at) {
      bool applied = handlers.apply(batch_);
      if (applied) {
        StoreOffsets();
        batch_.clear();
        SetPaused(false);
      } else {
        SetPaused(true);
        retry_at = Clock::now() + options_.retry_backoff;
      }
      handlers.stalled(!applied);
      continue;
    }
    if (paused_) SetPaused(true);  // partitions assigned meanwhile start unpaused
    bool was_empty = batch_.empty();
    Take(consumer_->Poll(milliseconds(100)));
    if (was_empty) first_at = Clock::now();
    TakeReady();
  }
  // A batch still gathering at the stop is applied (one try, bounded by its handler's own timeouts),
  // so that a stop does not leave the next owner up to `gather` of records to read again. Without a
  // gather a batch is applied as soon as it is taken, and the stop stays as short as it was.
  if (options_.gather.count() > 0 && !batch_.empty() && !paused_ && handlers.apply(batch_)) {
    StoreOffsets();
    batch_.clear();
  }
  size_t unfinished = batch_.size();
  batch_.clear();
  closed_ = consumer_->Close();
  return unfinished;
}

std::unique_ptr<kafka::Consumer> MakeConsumer(const kafka::Settings& settings, std::string group_id,
                                              std::string client_id,
                                              kafka::Consumer::RebalanceListener on_rebalance,
                                              const std::map<std::string, std::string>& defaults) {
  kafka::ConsumerOptions options;
  options.group_id = std::move(group_id);
  options.client_id = std::move(client_id);
  options.defaults = defaults;
  options.defaults.emplace("auto.commit.interval.ms", "1000");
  auto consumer = std::make_unique<kafka::Consumer>(settings, options);
  consumer->SetRebalanceListener(std::move(on_rebalance));
  return consumer;
}

std::map<std::string, std::string> FetchBatchDefaults(const kafka::Settings& settings, int min_bytes, int wait_ms) {
  for (const char* name : {"fetch.min.bytes", "fetch.wait.max.ms"}) {
    if (settings.properties.count(name) > 0 || settings.consumer_properties.count(name) > 0) return {};
  }
  return {{"fetch.min.bytes", std::to_string(min_bytes)}, {"fetch.wait.max.ms", std::to_string(wait_ms)}};
}

std::optional<std::vector<RedisReply>> PipelineOrKeep(RedisClient& redis,
                                                      const std::vector<std::vector<std::string>>& commands,
                                                      std::string_view event) {
  RedisCommands batch;
  for (const auto& cmd : commands) batch.Add(cmd);
  return PipelineOrKeep(redis, batch, event);
}

std::optional<std::vector<RedisReply>> PipelineOrKeep(RedisClient& redis, const RedisCommands& commands,
                                                      std::string_view event) {
  if (commands.empty()) return std::vector<RedisReply>();
  auto replies = redis.Pipeline(commands);
  if (!replies) return std::nullopt;
  for (const auto& r : *replies) {
    if (r.IsError()) {
      log::Warn(event, {{"error", r.str}, {"action", "keeping the batch; retrying"}});
      return std::nullopt;
    }
  }
  return replies;
}

}  // namespace pv::dispatcher
