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
  consumer_ = std::make_unique<KeptBatchConsumer>(
      settings, KeptBatchConsumer::Options{options.status.group_id,
                                           "pv-dispatcher-status",
                                           {std::string(topics::kEvents)},
                                           static_cast<size_t>(options.status.batch_size),
                                           options.retry_backoff});
}

StatusFeeder::~StatusFeeder() = default;

int StatusFeeder::Run() {
  auto next_lag = Clock::now();
  KeptBatchConsumer::Handlers handlers;
  handlers.apply = [this](std::span<const kafka::Message> batch) { return Apply(batch); };
  handlers.stalled = [this](bool stalled) {
    if (stalled) errors_.Inc();
    stalled_.Set(stalled ? 1 : 0);
  };
  handlers.tick = [&] {
    if (Clock::now() < next_lag) return;
    UpdateConsumerLag(consumer_->consumer(), options_.status.group_id, metrics_);
    next_lag = Clock::now() + options_.lag_interval;
  };
  size_t unfinished = consumer_->Run(stop_, handlers);
  log::Info("status_feeder_stopping", {{"unfinished", unfinished}});
  return 0;
}

bool StatusFeeder::Apply(std::span<const kafka::Message> batch) {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(batch.size());
  size_t invalid = 0;
  for (const kafka::Message& m : batch) {
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
  auto replies = PipelineOrKeep(*redis_, commands, "status_redis_error");
  if (!replies) return false;
  std::map<std::string, size_t> results;
  for (const auto& r : *replies) ++results[r.str];
  for (const auto& [result, n] : results) events_.With({result}).Inc(static_cast<double>(n));
  if (invalid > 0) events_.With({"invalid"}).Inc(static_cast<double>(invalid));
  if (results.count("over_limit") != 0) {
    log::Warn("status_over_limit", {{"events", results["over_limit"]},
                                    {"max_statuses", options_.status.max_statuses},
                                    {"note", "a trigger's later statuses are not kept"}});
  }
  return true;
}

}  // namespace pv::dispatcher
