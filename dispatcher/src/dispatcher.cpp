#include "pv/dispatcher/dispatcher.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <set>
#include <thread>
#include <vector>

#include "catalog_source.hpp"
#include "delay_runner.hpp"
#include "dispatcher_metrics.hpp"
#include "feedback_pipeline.hpp"
#include "pv/admin_server.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/dispatcher/suppression.hpp"
#include "pv/log.hpp"
#include "pv/topics.hpp"
#include "status_feeder.hpp"
#include "trigger_pipeline.hpp"

namespace pv::dispatcher {

DispatcherOptions DispatcherOptions::FromConfig(const Config& config) {
  DispatcherOptions o;
  o.catalog_dir = config.GetString("catalog_dir", o.catalog_dir);
  o.campaigns_topic = config.GetString("campaigns_topic", o.campaigns_topic);
  o.campaigns_start_timeout = config.GetMillis("campaigns_start_timeout_ms", o.campaigns_start_timeout);
  o.group_id = config.GetString("dispatcher.group_id", o.group_id);
  o.delay_group_id = config.GetString("dispatcher.delay.group_id", o.delay_group_id);
  o.delay_enabled = config.GetBool("dispatcher.delay.enabled", o.delay_enabled);
  o.delay_tiers = config.GetList("dispatcher.delay_tiers", topics::DefaultDelayTiers());
  try {
    ladder::ParseTiers(o.delay_tiers);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("setting dispatcher.delay_tiers: {}", e.what()));
  }
  o.max_in_flight = static_cast<int>(config.GetInt("dispatcher.max_in_flight", o.max_in_flight, 1, 1000000));
  o.batch_size = static_cast<int>(config.GetInt("dispatcher.batch_size", o.batch_size, 1, 100000));
  o.revoke_timeout = config.GetMillis("dispatcher.revoke_timeout", o.revoke_timeout);
  o.shutdown_timeout = config.GetMillis("dispatcher.shutdown_timeout", o.shutdown_timeout);
  o.retry_backoff = config.GetMillis("dispatcher.retry_backoff", o.retry_backoff);
  o.dead_letter_attempts =
      static_cast<int>(config.GetInt("dispatcher.dead_letter_attempts", o.dead_letter_attempts, 1, 1000));
  o.lag_interval = config.GetMillis("dispatcher.lag_interval", o.lag_interval);
  o.catalog_retry_interval = config.GetMillis("dispatcher.catalog_retry_interval", o.catalog_retry_interval);
  std::string missing = config.GetString("dispatcher.render.missing_variables", "empty");
  if (missing != "empty" && missing != "fail") {
    throw ConfigError(
        fmt::format("setting dispatcher.render.missing_variables: '{}' is not one of empty, fail", missing));
  }
  o.missing_variables = missing == "fail" ? MissingVariables::kFail : MissingVariables::kEmpty;
  o.redis_url = SuppressionRedisUrl(config, o.redis_url);
  o.redis_timeout = config.GetMillis("dispatcher.redis_timeout", o.redis_timeout);
  o.admin_host = config.GetString("dispatcher.admin_host", o.admin_host);
  o.admin_port = static_cast<int>(config.GetInt("dispatcher.admin_port", o.admin_port, 0, 65535));
  o.linger_ms = static_cast<int>(config.GetInt("dispatcher.linger_ms", o.linger_ms, 0, 60000));
  o.fetch_min_bytes =
      static_cast<int>(config.GetInt("dispatcher.fetch_min_bytes", o.fetch_min_bytes, 1, 16 * 1024 * 1024));
  o.fetch_wait_ms = static_cast<int>(config.GetInt("dispatcher.fetch_wait_ms", o.fetch_wait_ms, 1, 10000));
  o.feedback_enabled = config.GetBool("feedback.enabled", o.feedback_enabled);
  o.feedback_group_id = config.GetString("feedback.group_id", o.feedback_group_id);
  o.feedback_redis_url = config.GetString("redis.url", "");
  o.feedback_batch_size =
      static_cast<int>(config.GetInt("feedback.batch_size", o.feedback_batch_size, 1, 100000));
  o.receipt_ttl = config.GetMillis("feedback.receipt_ttl_ms", o.receipt_ttl);
  if (o.receipt_ttl.count() < 1000)
    throw ConfigError("setting feedback.receipt_ttl_ms must be at least 1000");
  o.suppress.bounce = config.GetBool("feedback.suppress.bounce", o.suppress.bounce);
  o.suppress.complaint = config.GetBool("feedback.suppress.complaint", o.suppress.complaint);
  o.suppress.unsubscribe = config.GetBool("feedback.suppress.unsubscribe", o.suppress.unsubscribe);
  o.suppress.stop = config.GetBool("feedback.suppress.stop", o.suppress.stop);
  o.suppress.unregistered = config.GetBool("feedback.suppress.unregistered", o.suppress.unregistered);
  o.status = StatusOptions::FromConfig(config);
  o.status_redis_url = o.status.redis_url.empty() ? o.redis_url : o.status.redis_url;
  return o;
}

void UpdateConsumerLag(const kafka::Consumer& consumer, const std::string& group, DispatcherMetrics& m) {
  std::set<std::pair<std::string, std::string>> seen;
  for (const kafka::PartitionLag& p : consumer.Lag()) {
    std::string partition = std::to_string(p.partition);
    m.consumer_lag.With({group, p.topic, partition}).Set(static_cast<double>(p.lag));
    seen.emplace(p.topic, std::move(partition));
  }
  m.consumer_lag.ForEach([&](const std::vector<std::string>& labels, metrics::Gauge& gauge) {
    if (labels[0] == group && seen.count({labels[1], labels[2]}) == 0) gauge.Set(0);
  });
}

Dispatcher::Dispatcher(DispatcherOptions options, kafka::Settings kafka_settings)
    : options_(std::move(options)),
      kafka_settings_(std::move(kafka_settings)),
      metrics_(std::make_unique<DispatcherMetrics>(registry_)) {
  catalogs_ = std::make_unique<CatalogSource>(options_.catalog_dir, kafka_settings_, options_.campaigns_topic,
                                              *metrics_);
  kafka::ProducerOptions producer_options;
  producer_options.client_id = "pv-dispatcher";
  // Its reports only store offsets and count what is in flight: served in batches (docs/performance.md
  // "Delivery reports in batches").
  producer_options.report_gather = kafka::kOffPathReportGather;
  producer_options.defaults = {{"linger.ms", std::to_string(options_.linger_ms)}};
  producer_ = std::make_unique<kafka::Producer>(kafka_settings_, producer_options);
  WarmUpProducer();
  pipeline_ =
      std::make_unique<TriggerPipeline>(options_, kafka_settings_, *producer_, *metrics_, *catalogs_, stop_);
  if (options_.delay_enabled) {
    scheduler_ = std::make_unique<DelayScheduler>(options_, kafka_settings_, *producer_, *metrics_, stop_);
  }
  if (options_.feedback_enabled && !options_.redis_url.empty()) {
    feedback_ = std::make_unique<FeedbackPipeline>(options_, kafka_settings_, *producer_, registry_, stop_);
  } else if (options_.feedback_enabled) {
    log::Warn("feedback_disabled", {{"reason", "no suppression store (suppression.redis_url, redis.url)"}});
  }
  if (options_.status.enabled && !options_.status_redis_url.empty()) {
    status_ = std::make_unique<StatusFeeder>(options_, kafka_settings_, *metrics_, registry_, stop_);
  } else if (options_.status.enabled) {
    log::Warn("status_feeder_disabled", {{"reason", "no Redis (status.redis_url, redis.url)"}});
  }
  registry_.AddCallbackGauge("pv_dispatcher_producer_queue", "Records in the producer's queue or in flight",
                             [p = producer_.get()] { return static_cast<double>(p->QueueLength()); });
}

Dispatcher::~Dispatcher() {
  if (admin_) admin_->Stop();
  // The producer first: its last delivery reports go to the pipelines' completion queues, which must
  // still exist. The consumers were closed when Run returned.
  producer_.reset();
  status_.reset();
  feedback_.reset();
  scheduler_.reset();
  pipeline_.reset();
  catalogs_.reset();
}

void Dispatcher::WarmUpProducer() {
  // The producer learns a topic's partition leaders when it first produces to it; until then records
  // wait in its queue. Learning them now keeps the first seconds of a busy start from stalling (seen on
  // the dev broker: 40,000 records queued for most of a second).
  std::vector<std::string> topics = {std::string(topics::kEvents)};
  for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush}) {
    topics.push_back(topics::Send(c));
    topics.push_back(topics::DeadLetter(c));
  }
  for (const auto& tier : ladder::ParseTiers(options_.delay_tiers)) topics.push_back(tier.topic);
  topics.emplace_back(topics::kTriggers);
  producer_->WarmUp(topics, std::chrono::milliseconds(2000));
}

int Dispatcher::StartAdmin() {
  admin_ = std::make_unique<AdminServer>(registry_, [this] { return Readiness(); });
  return admin_->Start(options_.admin_host, options_.admin_port);
}

std::string Dispatcher::Readiness() {
  if (stop_.load()) return "stopping";
  if (!campaigns_read_.load()) return "reading the campaigns topic (" + options_.campaigns_topic + ")";
  if (!producer_->BrokersReachable(std::chrono::milliseconds(500))) return "kafka brokers unreachable";
  return pipeline_->Readiness();
}

int Dispatcher::Run() {
  // The side parts, each on a thread of its own. A scheduler or feedback pipeline that cannot go on stops
  // the whole process (the scheduler's records would otherwise wait unseen); statuses are a view, never on
  // the triggers' path: the dispatcher goes on without them. Each part's status (non-zero: it failed, or
  // its consumer could not leave its group within the bound) makes the exit status, whatever the part.
  int scheduler_status = 0;
  int feedback_status = 0;
  int statuses_status = 0;
  std::vector<std::thread> threads;
  // Each named (at most 15 characters), so that `top -H` and perf tell them apart.
  auto start = [&](auto* part, const char* name, const char* failed_event, bool fatal, int* result) {
    if (part == nullptr) return;
    threads.emplace_back([this, part, name, failed_event, fatal, result] {
      ::pthread_setname_np(::pthread_self(), name);
      int status = 1;
      try {
        status = part->Run();
      } catch (const std::exception& e) {
        log::Error(failed_event, {{"error", e.what()}});
      }
      *result = status;
      if (fatal && status != 0) Stop();
    });
  };
  start(scheduler_.get(), "pv-delays", "delay_scheduler_failed", true, &scheduler_status);
  start(feedback_.get(), "pv-feedback", "feedback_pipeline_failed", true, &feedback_status);
  start(status_.get(), "pv-statuses", "status_feeder_failed", false, &statuses_status);
  int status = 1;
  try {
    catalogs_->WaitForTopic(options_.campaigns_start_timeout, stop_);
    campaigns_read_.store(true);
    status = pipeline_->Run();
  } catch (const std::exception& e) {
    log::Error("trigger_pipeline_failed", {{"error", e.what()}});
  }
  if (status != 0) Stop();
  for (std::thread& t : threads) t.join();
  int left = producer_->Flush(options_.shutdown_timeout);
  for (int part : {scheduler_status, feedback_status, statuses_status})
    if (status == 0) status = part;
  log::Info("dispatcher_stopped", {{"unflushed", left}, {"clean", status == 0}});
  return status;
}

void Dispatcher::Stop() {
  stop_.store(true);
}

bool Dispatcher::Reload() {
  return catalogs_->ReloadFiles("SIGHUP");
}

}  // namespace pv::dispatcher
