#include "status_feeder.hpp"

#include <fmt/format.h>

#include <algorithm>

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
      ttl_writes_(registry
                      .AddCounter("pv_status_ttl_writes_total",
                                  "TTLs the status feeder set in a round trip of their own: hashes a write "
                                  "without a dispatcher's event made (a worker's event read first, a "
                                  "receipt after its send's hash expired, a batch written again)",
                                  {})
                      .Get()),
      stalled_(
          registry.AddGauge("pv_status_feeder_stalled", "1 while a status batch waits for Redis", {}).Get()) {
  RedisClient::Options redis;
  redis.url = options.status_redis_url;
  redis.timeout = options.status.redis_timeout;
  redis_ = std::make_unique<RedisClient>(redis);
  KeptBatchConsumer::Options consumer{options.status.group_id,
                                     "pv-dispatcher-status",
                                     {std::string(topics::kEvents)},
                                     static_cast<size_t>(options.status.batch_size),
                                     options.retry_backoff,
                                     options.status.batch_wait,
                                     {}};
  if (options.status.batch_wait.count() > 0) {
    // Statuses may be batch_wait late: so may the Fetches that bring them, each waiting for
    // fetch_min_bytes of events rather than answered for every Produce that reached pv.events.
    consumer.consumer_defaults = FetchBatchDefaults(settings, options.status.fetch_min_bytes,
                                                    static_cast<int>(options.status.batch_wait.count()));
  }
  consumer_ = std::make_unique<KeptBatchConsumer>(settings, std::move(consumer));
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
  log::Info("status_feeder_stopping", {{"unfinished", unfinished}, {"closed", consumer_->closed()}});
  return consumer_->closed() ? 0 : 1;
}

bool StatusFeeder::Apply(std::span<const kafka::Message> batch) {
  // updates_ keeps its entries (and their strings' capacity) from batch to batch: the first `n` are
  // this batch's (StatusFromEvent sets every field of an update it returns true for).
  size_t n = 0;
  size_t invalid = 0;
  for (const kafka::Message& m : batch) {
    if (n == updates_.size()) updates_.emplace_back();
    StatusUpdate& update = updates_[n];
    std::string error;
    if (!StatusFromEvent(kafka::Payload(m.get()), options_.status.max_field_bytes, update, error)) {
      ++invalid;
      log::Debug("status_event_ignored",
                 {{"partition", m->partition}, {"offset", m->offset}, {"error", error}});
      continue;
    }
    ++n;
  }
  // By hash (a send's, or a trigger's own), each hash's events in the order read: one write per hash,
  // so a send whose dispatcher's and worker's events share the batch costs Redis one HLEN and one
  // PEXPIRE, not two (docs/performance.md "Statuses: the project in the entry, one write per trigger").
  order_.resize(n);
  for (size_t i = 0; i < n; ++i) order_[i] = i;
  std::stable_sort(order_.begin(), order_.end(),
                   [this](size_t a, size_t b) { return updates_[a].key < updates_[b].key; });
  group_begins_.clear();
  counts_.clear();
  writes_.clear();
  for (size_t i = 0; i < n; ++i) {
    if (i == 0 || updates_[order_[i]].key != updates_[order_[i - 1]].key) group_begins_.push_back(i);
  }
  group_begins_.push_back(n);
  const size_t groups = group_begins_.size() - 1;
  // The updates in that order: hash g's are a span of them, for its write and for reading its replies.
  by_hash_.resize(n);
  for (size_t i = 0; i < n; ++i) by_hash_[i] = &updates_[order_[i]];
  auto group = [this](size_t g) {
    return std::span<const StatusUpdate* const>(by_hash_).subspan(group_begins_[g],
                                                                  group_begins_[g + 1] - group_begins_[g]);
  };
  for (size_t g = 0; g < groups; ++g) counts_.push_back(AddStatusWrite(writes_, group(g), options_.status));
  auto replies = PipelineOrKeep(*redis_, writes_, "status_redis_error");
  if (!replies) return false;

  // A second round trip, rare: the TTL of each hash the write may have made without one (a send's
  // hash its worker's event reached first), then, for hashes past max_statuses, the limit script for
  // each of their events, the batch's last first, so that the entries removed are the latest ones,
  // as when the limit held before each write. Of a hash's entries new in this batch, as many as the
  // script removed count as over_limit, not applied. Until it succeeds the batch is kept, and written
  // again: a hash still holding only that batch's entries is found without a TTL again.
  struct Checked {
    size_t update;  // its position in the batch
    size_t group;   // its hash's
  };
  std::vector<size_t> applied(groups, 0);
  std::vector<Checked> checked;  // the events of the hashes past the limit
  size_t n_applied = 0;
  size_t at = 0;
  writes_.clear();
  for (size_t g = 0; g < groups; ++g) {
    StatusWriteReply r = ReadStatusWrite(std::span(*replies).subspan(at, counts_[g]), group(g), options_.status);
    at += counts_[g];
    applied[g] = r.applied;
    n_applied += r.applied;
    if (r.needs_ttl) AddStatusTtl(writes_, *by_hash_[group_begins_[g]], options_.status);
    if (r.check_limit) {
      for (size_t i = group_begins_[g]; i < group_begins_[g + 1]; ++i) checked.push_back({order_[i], g});
    }
  }
  const size_t ttls = writes_.size();
  size_t n_over = 0;
  if (ttls > 0 || !checked.empty()) {
    std::sort(checked.begin(), checked.end(),
              [](const Checked& a, const Checked& b) { return a.update > b.update; });
    for (const Checked& c : checked) AddStatusLimit(writes_, updates_[c.update], options_.status);
    auto second = PipelineOrKeep(*redis_, writes_, "status_redis_error");
    if (!second) return false;
    std::vector<size_t> removed_in(groups, 0);  // by hash
    for (size_t k = 0; k < checked.size(); ++k) {
      const RedisReply& r = (*second)[ttls + k];
      if (r.type == RedisReply::Type::kInteger && r.integer == 1) ++removed_in[checked[k].group];
    }
    for (size_t g = 0; g < groups; ++g) n_over += std::min(removed_in[g], applied[g]);
    if (ttls > 0) ttl_writes_.Inc(static_cast<double>(ttls));
  }
  n_applied -= n_over;
  size_t n_duplicate = n - n_applied - n_over;
  if (n_applied > 0) events_.With({"applied"}).Inc(static_cast<double>(n_applied));
  if (n_duplicate > 0) events_.With({"duplicate"}).Inc(static_cast<double>(n_duplicate));
  if (invalid > 0) events_.With({"invalid"}).Inc(static_cast<double>(invalid));
  if (n_over > 0) {
    events_.With({"over_limit"}).Inc(static_cast<double>(n_over));
    log::Warn("status_over_limit", {{"events", n_over},
                                    {"max_statuses", options_.status.max_statuses},
                                    {"note", "a trigger's later statuses are not kept"}});
  }
  return true;
}

}  // namespace pv::dispatcher
