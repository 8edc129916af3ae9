#include "trigger_pipeline.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <thread>

#include "kept_batch_consumer.hpp"
#include "pv/log.hpp"
#include "pv/produce_errors.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string TopicOf(const rd_kafka_message_t* m) {
  return rd_kafka_topic_name(m->rkt);
}

// The produced-records metric's kinds of an output record, in ProducedCounter's order.
enum class Kind { kSend, kEvent, kDelay, kDeadLetter };
constexpr const char* kKindNames[] = {"send", "event", "delay", "dlq"};

Kind KindOf(const OutputRecord& record) {
  if (record.via_ladder) return Kind::kDelay;
  if (record.topic.rfind("pv.dlq.", 0) == 0) return Kind::kDeadLetter;
  return record.topic == topics::kEvents ? Kind::kEvent : Kind::kSend;
}

}  // namespace

TriggerPipeline::TriggerPipeline(const DispatcherOptions& options, const kafka::Settings& settings,
                                 kafka::Producer& producer, DispatcherMetrics& metrics,
                                 CatalogSource& catalogs, std::atomic<bool>& stop)
    : options_(options),
      producer_(producer),
      metrics_(metrics),
      stop_(stop),
      tiers_(ladder::ParseTiers(options.delay_tiers)),
      processor_(ProcessorOptions{options.missing_variables, std::string(topics::kTriggers),
                                  std::string(topics::kEvents), producer.MaxMessageBytes()}),
      catalogs_(catalogs),
      catalog_(catalogs.Current()),
      consumed_(&metrics.consumed.With({std::string(topics::kTriggers)})),
      in_flight_gauge_(&metrics.in_flight.With({"triggers"})),
      render_seconds_(&metrics.render_seconds.Get()) {
  if (options.redis_url.empty()) {
    log::Warn("suppression_disabled", {{"reason", "suppression.redis_url and redis.url are empty"}});
    metrics_.redis_up.Get().Set(1);
  } else {
    try {
      suppression_ = std::make_unique<SuppressionStore>(options.redis_url, options.redis_timeout);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(std::string("setting suppression.redis_url (or redis.url): ") + e.what());
    }
    const RedisEndpoint& address = suppression_->endpoint();
    log::Info("suppression_enabled", {{"redis", fmt::format("{}:{}", address.host, address.port)}});
    ProbeRedis();
  }
  // Fetches that wait for a batch of triggers (DispatcherOptions::fetch_min_bytes), unless the
  // configuration's consumer properties set fetch.* themselves.
  consumer_ = MakeConsumer(
      settings, options.group_id, "pv-dispatcher",
      [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) { OnRebalance(kind, parts); },
      FetchBatchDefaults(settings, options.fetch_min_bytes, options.fetch_wait_ms));
}

TriggerPipeline::~TriggerPipeline() = default;

std::string TriggerPipeline::Readiness() const {
  if (!redis_ok_.load()) return "suppression store (redis) unreachable: consuming paused";
  return {};
}

void TriggerPipeline::ProbeRedis() {
  std::string error;
  bool ok = suppression_->Ping(error);
  metrics_.redis_up.Get().Set(ok ? 1 : 0);
  if (ok && !redis_ok_.exchange(true)) log::Info("suppression_store_reachable", {});
  if (!ok && redis_ok_.exchange(false)) log::Error("suppression_store_unreachable", {{"error", error}});
}

int TriggerPipeline::Run() {
  consumer_->Subscribe({std::string(topics::kTriggers)});
  log::Info("consuming", {{"topic", topics::kTriggers}, {"group", options_.group_id}});
  auto next_lag = Clock::now() + options_.lag_interval;
  while (!stop_.load()) {
    catalog_ = catalogs_.Current();  // a reload or a campaigns record since the last batch
    DrainCompletions();
    if (fatal_) break;
    auto now = Clock::now();
    while (!retries_.empty() && retries_.front().not_before <= now) {
      batch_.push_back(std::move(retries_.front()));
      retries_.pop_front();
    }
    if (suppression_ && !redis_ok_.load() && batch_.empty() && now >= redis_retry_at_) {
      // Idle while Redis is down: probe it, so that readiness recovers without traffic.
      ProbeRedis();
      redis_retry_at_ = now + std::min<milliseconds>(options_.retry_backoff, milliseconds(1000));
    }
    if (!batch_.empty() && now >= redis_retry_at_) {
      if (ProcessBatch()) {
        if (paused_redis_) SetPaused("redis", false);
      } else {
        SetPaused("redis", true);
        redis_retry_at_ = now + std::min<milliseconds>(options_.retry_backoff, milliseconds(1000));
      }
    }
    size_t in_flight = book_.InFlight();
    in_flight_gauge_->Set(static_cast<double>(in_flight));
    bool full = in_flight >= static_cast<size_t>(options_.max_in_flight);
    if (full) {
      if (!full_since_) full_since_ = now;
      // Full for a moment is normal at high throughput: wait for reports. Full for long means the
      // broker is not acknowledging; pause so that polling can go on (group membership) without taking
      // more records.
      if (!paused_backpressure_ && now - *full_since_ > milliseconds(1000)) SetPaused("backpressure", true);
    } else {
      full_since_.reset();
      if (paused_backpressure_ && in_flight <= static_cast<size_t>(options_.max_in_flight) / 2) {
        SetPaused("backpressure", false);
      }
    }
    if (now >= next_lag) {
      UpdateConsumerLag(*consumer_, options_.group_id, metrics_);
      next_lag = now + options_.lag_interval;
    }
    ApplyPause();
    bool may_take = batch_.empty() && !full;
    if (!may_take && !pause_applied_) {
      completions_.Wait(milliseconds(10));
      continue;
    }
    milliseconds timeout(may_take ? 100 : 50);
    if (!retries_.empty()) {
      auto until = std::chrono::duration_cast<milliseconds>(retries_.front().not_before - now);
      timeout = std::clamp(until, milliseconds(0), timeout);
    }
    if (kafka::Message m = consumer_->Poll(timeout)) Take(std::move(m));
    while (may_take && batch_.size() < static_cast<size_t>(options_.batch_size)) {
      kafka::Message m = consumer_->Poll(milliseconds(0));
      if (!m) break;
      Take(std::move(m));
    }
    if (repause_) ApplyPause();
  }

  // Finish what was handed to the producer; what was not is abandoned (its offset is not stored, so
  // the next owner of the partition processes it again).
  auto deadline = Clock::now() + options_.shutdown_timeout;
  while (book_.Outstanding() > 0 && Clock::now() < deadline && !fatal_) {
    completions_.Wait(milliseconds(50));
    DrainCompletions();
  }
  log::Info("trigger_pipeline_stopping",
            {{"outstanding", book_.Outstanding()}, {"unfinished", book_.InFlight()}, {"fatal", fatal_}});
  batch_.clear();
  retries_.clear();
  // Commits the offsets stored for finished work; bounded (the brokers may not answer): past it what
  // was not committed is read again by the next owner, and the exit status says the stop was not clean.
  bool closed = consumer_->Close();
  return fatal_ || !closed ? 1 : 0;
}

void TriggerPipeline::Take(kafka::Message m) {
  if (!internal::Consumed(m, "consume_error")) return;
  std::string topic = TopicOf(m.get());
  std::uint64_t gen = book_.Generation(topic, m->partition);
  if (gen == 0) return;  // not ours (any more): the owner reads it
  book_.Begin(topic, m->partition, m->offset);
  consumed_->Inc();
  Item item;
  item.message = std::move(m);
  item.generation = gen;
  batch_.push_back(std::move(item));
}

bool TriggerPipeline::ReloadForUnknownCampaign() {
  // A campaign added since the last look: applied to the campaigns topic a moment ago (the feed may
  // not have read it yet), or added to catalog_dir (which ingest watches, but the dispatcher reads
  // only on SIGHUP and here).
  auto now = Clock::now();
  if (now - last_catalog_retry_ < options_.catalog_retry_interval) return false;
  last_catalog_retry_ = now;
  catalog_ = catalogs_.Refresh(std::chrono::milliseconds(2000));
  return true;
}

bool TriggerPipeline::ProcessBatch() {
  std::shared_ptr<CompiledCatalog> catalog = catalog_;  // keeps the one the parsed triggers point into
  // The batch's triggers parse into one pool over a reused buffer, emptied when the batch is done.
  if (parse_pool_ == nullptr) {
    parse_buffer_ = std::make_unique<char[]>(kParseBufferBytes);
    parse_pool_ = std::make_unique<rapidjson::MemoryPoolAllocator<>>(parse_buffer_.get(), kParseBufferBytes);
  }
  struct EmptyPool {
    rapidjson::MemoryPoolAllocator<>& pool;
    ~EmptyPool() { pool.Clear(); }
  } empty_pool{*parse_pool_};  // declared before `parsed`: runs after the documents are gone
  std::vector<ParsedTrigger> parsed;
  parsed.reserve(batch_.size());
  for (size_t i = 0; i < batch_.size(); ++i) parsed.emplace_back(parse_pool_.get());
  std::vector<std::shared_ptr<CompiledCatalog>> keep;
  for (size_t i = 0; i < batch_.size(); ++i) {
    processor_.Parse(kafka::Payload(batch_[i].message.get()), *catalog, parsed[i]);
    if (parsed[i].error_code == "unknown_campaign" && ReloadForUnknownCampaign()) {
      keep.push_back(catalog);
      catalog = catalog_;
      parsed[i] = ParsedTrigger();
      processor_.Parse(kafka::Payload(batch_[i].message.get()), *catalog, parsed[i]);
    }
  }

  std::vector<Suppressed> suppressed(batch_.size(), Suppressed::kNo);
  std::vector<SuppressionWhy> why(batch_.size());
  if (suppression_) {
    std::vector<SuppressionQuery> queries;
    std::vector<size_t> index;
    for (size_t i = 0; i < parsed.size(); ++i) {
      if (!parsed[i].NeedsSuppressionCheck()) continue;
      queries.push_back({parsed[i].channel, parsed[i].project, parsed[i].external_id, parsed[i].address});
      index.push_back(i);
    }
    if (!queries.empty()) {
      std::vector<Suppressed> answers;
      std::vector<SuppressionWhy> reasons;
      std::string error;
      if (!suppression_->Check(queries, answers, error, &reasons)) {
        if (redis_ok_.exchange(false)) {
          log::Error("suppression_store_unreachable", {{"error", error}, {"action", "pausing consumption"}});
        }
        metrics_.redis_up.Get().Set(0);
        return false;
      }
      for (size_t k = 0; k < index.size(); ++k) {
        suppressed[index[k]] = answers[k];
        why[index[k]] = std::move(reasons[k]);
      }
    }
    if (!redis_ok_.exchange(true)) log::Info("suppression_store_reachable", {{"action", "resuming"}});
    metrics_.redis_up.Get().Set(1);
  }

  auto now = std::chrono::system_clock::now();
  for (size_t i = 0; i < batch_.size(); ++i) {
    std::string_view key = kafka::Key(batch_[i].message.get());
    const Item& item = batch_[i];
    // A trigger whose output the broker refused for good goes to its dead-letter topic instead.
    Outcome outcome = !item.dead_letter_code.empty()
                          ? processor_.Failure(parsed[i], key, item.dead_letter_code, item.dead_letter_error,
                                               now, item.omit_value)
                          : processor_.Decide(parsed[i], key, suppressed[i], now, &why[i]);
    if (outcome.render_time.count() > 0) {
      render_seconds_->Observe(std::chrono::duration<double>(outcome.render_time).count());
    }
    if (!outcome.missing_variables.empty() && parsed[i].campaign != nullptr) {
      metrics_.missing_variables.With({parsed[i].campaign->campaign->id})
          .Inc(static_cast<double>(outcome.missing_variables.size()));
      log::Debug("missing_variables", {{"campaign_id", parsed[i].campaign_id},
                                       {"trigger_id", parsed[i].trigger_id},
                                       {"first", outcome.missing_variables.front()}});
    }
    Produce(batch_[i], outcome);
  }
  batch_.clear();
  return true;
}

metrics::Counter& TriggerPipeline::OutcomeCounter(Action action, Channel channel) {
  size_t a = action == Action::kSend ? 0 : action == Action::kDefer ? 1 : 2;
  metrics::Counter*& counter = outcome_counters_[a][static_cast<size_t>(channel) % 3];
  if (counter == nullptr) {
    auto& family = a == 0 ? metrics_.queued : a == 1 ? metrics_.deferred : metrics_.suppressed;
    counter = &family.With({std::string(ChannelName(channel))});
  }
  return *counter;
}

metrics::Counter& TriggerPipeline::ProducedCounter(int kind) {
  metrics::Counter*& counter = produced_counters_[static_cast<size_t>(kind)];
  if (counter == nullptr) counter = &metrics_.produced.With({kKindNames[kind]});
  return *counter;
}

void TriggerPipeline::Produce(Item& item, Outcome& outcome) {
  const rd_kafka_message_t* m = item.message.get();
  std::string topic = TopicOf(m);
  switch (outcome.action) {
    case Action::kSend:
    case Action::kDefer:
    case Action::kSuppressed:
      OutcomeCounter(outcome.action, outcome.channel).Inc();
      break;
    case Action::kFailed:
      if (item.dead_letter_tries > 0) break;  // counted and logged at the first attempt
      metrics_.failed.With({std::string(ChannelName(outcome.channel)), outcome.error_code}).Inc();
      log::Warn("trigger_failed", {{"send_id", outcome.send_id},
                                   {"error_code", outcome.error_code},
                                   {"error", outcome.error},
                                   {"partition", m->partition},
                                   {"offset", m->offset}});
      break;
    case Action::kDrop:
      metrics_.dropped.Get().Inc();
      log::Error("trigger_dropped", {{"topic", topic},
                                     {"partition", m->partition},
                                     {"offset", m->offset},
                                     {"error_code", outcome.error_code},
                                     {"error", outcome.error}});
      break;
  }
  if (outcome.records.empty()) {
    std::int64_t next = book_.Finish(topic, m->partition, m->offset, item.generation);
    if (next >= 0) consumer_->StoreOffset(topic, m->partition, next);
    return;
  }
  auto* pending = new internal::Pending(&completions_, topic, m->partition, m->offset, item.generation);
  std::vector<std::pair<internal::OutputRole, std::string>> roles;
  roles.reserve(outcome.records.size());
  bool has_dead_letter = false;
  for (const auto& record : outcome.records) {
    Kind kind = KindOf(record);
    internal::OutputRole role = kind == Kind::kDeadLetter ? internal::OutputRole::kDeadLetter
                                : kind == Kind::kEvent    ? internal::OutputRole::kEvent
                                                          : internal::OutputRole::kMain;
    has_dead_letter = has_dead_letter || role == internal::OutputRole::kDeadLetter;
    std::string out_topic = record.topic;
    if (record.via_ladder) {  // the tier ladder::Schedule will choose (for the error text only)
      auto left = std::chrono::duration_cast<milliseconds>(record.due - std::chrono::system_clock::now());
      out_topic = ladder::ChooseTier(tiers_, left).topic;
    }
    roles.emplace_back(role, std::move(out_topic));
  }
  pending->message = std::move(item.message);
  pending->dead_letter_attempt = has_dead_letter ? item.dead_letter_tries + 1 : 0;
  pending->dead_letter_code = std::move(item.dead_letter_code);
  pending->dead_letter_error = std::move(item.dead_letter_error);
  pending->omit_value = item.omit_value;
  pending->Expect(std::move(roles));
  book_.AddOutstanding(topic, pending->partition);
  std::vector<kafka::Header>& headers = headers_;
  for (size_t r = 0; r < outcome.records.size(); ++r) {
    const OutputRecord& record = outcome.records[r];
    internal::Pending::Output* report = &pending->outputs[r];
    headers.clear();
    for (const auto& h : record.headers) headers.push_back({h.name, h.value});
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0;; ++attempt) {
      if (record.via_ladder) {
        err = ladder::Schedule(producer_, tiers_, record.topic, record.key, record.value, record.due, 1,
                               headers, std::make_shared<internal::ForwardGroup>(report));
      } else {
        err = producer_.Produce(record.topic, record.key, record.value, headers, report);
      }
      // A full local queue drains as the broker acknowledges; wait a little (not forever when stopping).
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || (stop_.load() && attempt > 500)) break;
      std::this_thread::sleep_for(milliseconds(2));
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::Warn("produce_enqueue_failed", {{"topic", record.topic}, {"error", rd_kafka_err2str(err)}});
      report->OnDelivery(err, -1, -1);
    } else {
      ProducedCounter(static_cast<int>(KindOf(record))).Inc();
    }
  }
}

void TriggerPipeline::DrainCompletions() {
  internal::SettleContext context{book_,
                                  *consumer_,
                                  producer_,
                                  fatal_,
                                  metrics_.delivery_failures.With({"triggers"}),
                                  metrics_.skipped,
                                  "triggers",
                                  "produce_failed",
                                  options_.dead_letter_attempts};
  internal::SettleCompleted(completions_, context, [&](internal::Pending& p, internal::Settlement& s) {
    Item item;
    item.message = std::move(p.message);
    item.generation = p.generation;
    item.not_before = Clock::now() + options_.retry_backoff;
    if (s.action == internal::Settled::kDeadLetter) {
      // Processed again as a failure: the trigger into its DLQ with the reason, and a `failed` event.
      item.dead_letter_code = fmt::format("produce_{}", kafka::ProduceFailureName(s.failure));
      item.dead_letter_error = std::move(s.error);
      item.not_before = Clock::now();  // nothing to wait for: another topic
    } else {
      // Everything again, the dead letter too (Judge bounds how often when it can never be written).
      item.dead_letter_tries = p.dead_letter_attempt;
      item.dead_letter_code = std::move(p.dead_letter_code);
      item.dead_letter_error = std::move(p.dead_letter_error);
      item.omit_value = p.omit_value || s.failure == kafka::ProduceFailure::kTooLarge;
    }
    retries_.push_back(std::move(item));
  });
}

void TriggerPipeline::WaitOutstanding(const std::vector<std::pair<std::string, std::int32_t>>& partitions,
                                      Clock::time_point deadline) {
  while (true) {
    DrainCompletions();
    bool any = std::any_of(partitions.begin(), partitions.end(),
                           [&](const auto& tp) { return book_.Outstanding(tp.first, tp.second) > 0; });
    if (!any || Clock::now() >= deadline) return;
    completions_.Wait(milliseconds(10));
  }
}

void TriggerPipeline::OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
  std::vector<std::pair<std::string, std::int32_t>> tps;
  tps.reserve(static_cast<size_t>(parts->cnt));
  for (int i = 0; i < parts->cnt; ++i) tps.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (const auto& [t, p] : tps) book_.Assign(t, p);
    if (pause_applied_) repause_ = true;
    log::Info("partitions_assigned", {{"group", options_.group_id}, {"count", tps.size()}});
    return;
  }
  bool lost = consumer_->AssignmentLost();
  // Revoked: finish what the producer already has (its offsets are stored and committed when the
  // partitions are removed); what is not finished by the deadline is left to the next owner. Lost: the
  // offsets can no longer be committed, nothing to wait for.
  if (!lost) WaitOutstanding(tps, Clock::now() + options_.revoke_timeout);
  auto revoked = [&](const Item& item) {
    const rd_kafka_message_t* m = item.message.get();
    return m != nullptr &&
           std::find(tps.begin(), tps.end(), std::make_pair(TopicOf(m), m->partition)) != tps.end();
  };
  std::erase_if(batch_, revoked);
  std::erase_if(retries_, revoked);
  size_t unfinished = 0;
  for (const auto& [t, p] : tps) unfinished += book_.Outstanding(t, p);
  for (const auto& [t, p] : tps) {
    book_.Revoke(t, p);
    if (pause_applied_) consumer_->Resume(t, p);  // a later assignment starts unpaused
    metrics_.consumer_lag.With({options_.group_id, t, std::to_string(p)}).Set(0);
  }
  log::Info("partitions_revoked",
            {{"group", options_.group_id}, {"count", tps.size()}, {"lost", lost}, {"abandoned", unfinished}});
}

void TriggerPipeline::SetPaused(const char* reason, bool on) {
  bool& flag = std::string_view(reason) == "redis" ? paused_redis_ : paused_backpressure_;
  if (flag == on) return;
  flag = on;
  metrics_.paused.With({reason}).Set(on ? 1 : 0);
  log::Info(on ? "consumption_paused" : "consumption_resumed", {{"reason", reason}});
}

void TriggerPipeline::ApplyPause() {
  bool want = paused_redis_ || paused_backpressure_;
  if (want == pause_applied_ && !(want && repause_)) return;
  repause_ = false;
  if (!consumer_->SetAssignmentPaused(want)) return;
  pause_applied_ = want;
}

}  // namespace pv::dispatcher
