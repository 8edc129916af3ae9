#include "status_feeder.hpp"

#include <fmt/format.h>

#include <map>

#include "pv/log.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

}  // namespace

StatusFeeder::StatusFeeder(const DispatcherOptions& options, const kafka::Settings& settings,
                           DispatcherMetrics& metrics, metrics::Registry& registry, std::atomic<bool>& stop)
    : options_(options),
      metrics_(metrics),
      stop_(stop),
      events_(registry.AddCounter("pv_status_events_total",
                                  "pv.events records read by the status feeder, by result (applied, "
                                  "duplicate, over_limit, invalid)",
                                  {"result"})),
      errors_(registry
                  .AddCounter("pv_status_feeder_errors_total",
                              "Status batches the store did not take (kept and retried)", {})
                  .Get()),
      stalled_(
          registry.AddGauge("pv_status_feeder_stalled", "1 while a status batch waits for Redis", {}).Get()) {
  RedisClient::Options redis;
  redis.url = options.status_redis_url;
  redis.timeout = options.status.redis_timeout;
  redis_ = std::make_unique<RedisClient>(redis);
  kafka::ConsumerOptions consumer_options;
  consumer_options.group_id = options.status.group_id;
  consumer_options.client_id = "pv-dispatcher-status";
  consumer_options.defaults = {{"auto.commit.interval.ms", "1000"}};
  consumer_ = std::make_unique<kafka::Consumer>(settings, consumer_options);
  consumer_->SetRebalanceListener(
      [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
        OnRebalance(kind, parts);
      });
}

StatusFeeder::~StatusFeeder() = default;

void StatusFeeder::OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions) {
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::Info("partitions_assigned", {{"group", options_.status.group_id}, {"count", partitions->cnt}});
    return;
  }
  if (kind != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) return;
  // A kept batch's records of a revoked partition are its next owner's (their offsets were not stored).
  std::erase_if(batch_, [&](const kafka::Message& m) {
    for (int i = 0; i < partitions->cnt; ++i) {
      if (m->partition == partitions->elems[i].partition) return true;
    }
    return false;
  });
}

void StatusFeeder::SetPaused(bool on) {
  if (!on && !paused_) return;
  consumer_->SetAssignmentPaused(on);
  paused_ = on;
}

int StatusFeeder::Run() {
  consumer_->Subscribe({std::string(topics::kEvents)});
  log::Info("consuming", {{"topic", topics::kEvents}, {"group", options_.status.group_id}});
  auto take = [this](kafka::Message m) {
    if (!m) return false;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        log::Warn("consume_error", {{"error", rd_kafka_message_errstr(m.get())}});
      return true;
    }
    batch_.push_back(std::move(m));
    return true;
  };
  auto retry_at = Clock::now();
  auto next_lag = Clock::now();
  while (!stop_.load()) {
    if (Clock::now() >= next_lag) {
      UpdateConsumerLag(*consumer_, options_.status.group_id, metrics_);
      next_lag = Clock::now() + options_.lag_interval;
    }
    if (!batch_.empty() && Clock::now() >= retry_at) {
      if (ProcessBatch()) {
        SetPaused(false);
        stalled_.Set(0);
      } else {
        // Kept and tried again; meanwhile the consumer is polled (group membership, rebalances)
        // with its partitions paused, so the events wait in Kafka, not in memory.
        errors_.Inc();
        SetPaused(true);
        stalled_.Set(1);
        retry_at = Clock::now() + options_.retry_backoff;
      }
      continue;
    }
    if (paused_) SetPaused(true);  // partitions assigned meanwhile start unpaused
    take(consumer_->Poll(milliseconds(100)));
    while (batch_.size() < static_cast<size_t>(options_.status.batch_size) &&
           take(consumer_->Poll(milliseconds(0)))) {
    }
  }
  log::Info("status_feeder_stopping", {{"unfinished", batch_.size()}});
  batch_.clear();
  consumer_->Close();
  return 0;
}

bool StatusFeeder::ProcessBatch() {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(batch_.size());
  size_t invalid = 0;
  for (const kafka::Message& m : batch_) {
    StatusUpdate update;
    std::string error;
    if (!StatusFromEvent(kafka::Payload(m.get()), options_.status.max_field_bytes, update, error)) {
      ++invalid;
      log::Debug("status_event_ignored",
                 {{"partition", m->partition}, {"offset", m->offset}, {"error", error}});
      continue;
    }
    commands.push_back(StatusWriteCommand(update, options_.status));
  }
  std::map<std::string, size_t> results;
  if (!commands.empty()) {
    auto replies = redis_->Pipeline(commands);
    if (!replies) return false;
    for (const auto& r : *replies) {
      if (r.IsError()) {
        // OOM under maxmemory, a read-only replica: the same batch later, not a skipped one.
        log::Warn("status_redis_error", {{"error", r.str}, {"action", "keeping the batch; retrying"}});
        return false;
      }
    }
    for (const auto& r : *replies) ++results[r.str];
  }
  for (const auto& [result, n] : results) events_.With({result}).Inc(static_cast<double>(n));
  if (invalid > 0) events_.With({"invalid"}).Inc(static_cast<double>(invalid));
  if (results.count("over_limit") != 0) {
    log::Warn("status_over_limit", {{"events", results["over_limit"]},
                                    {"max_statuses", options_.status.max_statuses},
                                    {"note", "a trigger's later statuses are not kept"}});
  }
  std::map<std::int32_t, std::int64_t> next;  // one topic
  for (const kafka::Message& m : batch_) {
    auto& n = next[m->partition];
    n = std::max(n, m->offset + 1);
  }
  for (const auto& [partition, offset] : next) consumer_->StoreOffset(topics::kEvents, partition, offset);
  batch_.clear();
  return true;
}

}  // namespace pv::dispatcher
