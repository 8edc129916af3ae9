#include <fmt/format.h>

#include <algorithm>
#include <thread>

#include "delay_runner.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"

namespace pv::dispatcher {
namespace {

using SysClock = std::chrono::system_clock;
using std::chrono::milliseconds;

}  // namespace

LadderStep DecideLadderStep(const ladder::Tier& tier, SysClock::time_point produced_at,
                            SysClock::time_point due, SysClock::time_point now) {
  LadderStep step;
  step.release_at = ladder::ReleaseTime(tier, produced_at, due);
  if (now < step.release_at) {
    step.kind = LadderStep::Kind::kWait;
  } else if (now >= due) {
    step.kind = LadderStep::Kind::kToTarget;
  } else {
    step.kind = LadderStep::Kind::kHop;
  }
  return step;
}

DelayScheduler::DelayScheduler(const DispatcherOptions& options, const kafka::Settings& settings,
                               kafka::Producer& producer, DispatcherMetrics& metrics, std::atomic<bool>& stop)
    : options_(options),
      producer_(producer),
      metrics_(metrics),
      stop_(stop),
      tiers_(ladder::ParseTiers(options.delay_tiers)) {
  for (const auto& tier : tiers_) tier_by_topic_[tier.topic] = &tier;
  kafka::ConsumerOptions consumer_options;
  consumer_options.group_id = options.delay_group_id;
  consumer_options.client_id = "pv-dispatcher-delay";
  // Stored offsets are committed every second (librdkafka's default is 5 s): after a crash, at most
  // about a second of finished work is done again.
  consumer_options.defaults = {{"auto.commit.interval.ms", "1000"}};
  consumer_ = std::make_unique<kafka::Consumer>(settings, consumer_options);
  consumer_->SetRebalanceListener(
      [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
        OnRebalance(kind, parts);
      });
}

DelayScheduler::~DelayScheduler() = default;

int DelayScheduler::Run() {
  std::vector<std::string> topics;
  std::string names;
  for (const auto& tier : tiers_) {
    topics.push_back(tier.topic);
    names += (names.empty() ? "" : ",") + tier.name;
  }
  consumer_->Subscribe(topics);
  log::Info("delay_scheduler_consuming", {{"tiers", names}, {"group", options_.delay_group_id}});
  auto next_lag = std::chrono::steady_clock::now() + options_.lag_interval;
  while (!stop_.load()) {
    DrainCompletions();
    if (fatal_) break;
    SysClock::time_point next = ReleaseDue();
    auto now = SysClock::now();
    // Sleep in the poll until the earliest held record is due (or a record arrives); wake at least
    // every 200 ms to notice a stop request. A paused partition delivers nothing meanwhile.
    milliseconds timeout(200);
    if (next != SysClock::time_point::max()) {
      auto until = std::chrono::ceil<milliseconds>(next - now);
      timeout = std::clamp(until, milliseconds(0), timeout);
    }
    if (kafka::Message m = consumer_->Poll(timeout)) {
      Take(std::move(m));
      for (int i = 0; i < 1000; ++i) {
        kafka::Message more = consumer_->Poll(milliseconds(0));
        if (!more) break;
        Take(std::move(more));
      }
    }
    auto steady = std::chrono::steady_clock::now();
    if (steady >= next_lag) {
      UpdateConsumerLag(consumer_->handle(), options_.delay_group_id, metrics_);
      next_lag = steady + options_.lag_interval;
    }
  }
  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_timeout;
  while (book_.Outstanding() > 0 && std::chrono::steady_clock::now() < deadline && !fatal_) {
    completions_.Wait(milliseconds(50));
    DrainCompletions();
  }
  size_t held = 0;
  for (const auto& [tp, q] : held_) held += q.size();
  log::Info("delay_scheduler_stopping", {{"outstanding", book_.Outstanding()}, {"held", held}});
  held_.clear();
  consumer_->Close();  // commits the offsets stored for finished work
  return fatal_ ? 1 : 0;
}

void DelayScheduler::Take(kafka::Message m) {
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      log::Warn("delay_consume_error", {{"error", rd_kafka_message_errstr(m.get())}});
    }
    return;
  }
  std::string topic = rd_kafka_topic_name(m->rkt);
  std::uint64_t gen = book_.Generation(topic, m->partition);
  auto tier = tier_by_topic_.find(topic);
  if (gen == 0 || tier == tier_by_topic_.end()) return;
  book_.Begin(topic, m->partition, m->offset);
  metrics_.consumed.With({topic}).Inc();
  Held h;
  h.generation = gen;
  h.tier = tier->second;
  rd_kafka_timestamp_type_t type;
  std::int64_t ts = rd_kafka_message_timestamp(m.get(), &type);
  auto now = SysClock::now();
  // Without a timestamp the record is treated as produced now: it waits its tier's full delay again,
  // which is late but never early (the target is only reached at or after the due time).
  h.produced_at = ts >= 0 ? FromUnixMillis(ts) : now;
  auto due_text = kafka::HeaderValue(m.get(), ladder::kDueAt);
  auto due = due_text ? ParseTimestamp(*due_text) : std::nullopt;
  if (due) {
    h.due = *due;
  } else {
    h.due_valid = false;
    h.due = now;
    log::Warn(
        "delay_record_without_due_time",
        {{"topic", topic}, {"partition", m->partition}, {"offset", m->offset}, {"action", "release now"}});
  }
  h.target = kafka::HeaderValue(m.get(), ladder::kTarget).value_or("");
  h.release_at = ladder::ReleaseTime(*h.tier, h.produced_at, h.due);
  h.message = std::move(m);
  TopicPartition tp{topic, h.message->partition};
  auto& queue = held_[tp];
  queue.push_back(std::move(h));
  if (queue.size() == 1 && queue.front().release_at > now && !paused_[tp]) {
    // The head is not due: fetch nothing more from this partition until it is.
    consumer_->Pause(tp.first, tp.second);
    paused_[tp] = true;
  }
}

SysClock::time_point DelayScheduler::ReleaseDue() {
  SysClock::time_point earliest = SysClock::time_point::max();
  size_t held_count = 0;
  auto steady = std::chrono::steady_clock::now();
  for (auto it = held_.begin(); it != held_.end();) {
    auto& [tp, queue] = *it;
    auto now = SysClock::now();
    while (!queue.empty()) {
      Held& head = queue.front();
      if (head.not_before > steady) {
        earliest = std::min(earliest,
                            now + std::chrono::duration_cast<SysClock::duration>(head.not_before - steady));
        break;
      }
      LadderStep step = DecideLadderStep(*head.tier, head.produced_at, head.due, now);
      if (step.kind == LadderStep::Kind::kWait) {
        earliest = std::min(earliest, step.release_at);
        break;
      }
      if (!Release(head, now)) {  // producer queue full: try again soon
        earliest = std::min(earliest, now + milliseconds(5));
        break;
      }
      queue.pop_front();
    }
    held_count += queue.size();
    if (queue.empty()) {
      if (paused_[tp]) {
        consumer_->Resume(tp.first, tp.second);
        paused_[tp] = false;
      }
      it = held_.erase(it);
    } else {
      if (!paused_[tp]) {
        consumer_->Pause(tp.first, tp.second);
        paused_[tp] = true;
      }
      ++it;
    }
  }
  metrics_.delay_held.Get().Set(static_cast<double>(held_count));
  return earliest;
}

bool DelayScheduler::Release(Held& h, SysClock::time_point now) {
  const rd_kafka_message_t* m = h.message.get();
  std::string topic = rd_kafka_topic_name(m->rkt);
  if (h.target.empty()) {
    metrics_.delay_invalid.With({h.tier->name}).Inc();
    log::Error("delay_record_without_target",
               {{"topic", topic}, {"partition", m->partition}, {"offset", m->offset}, {"action", "skipped"}});
    std::int64_t next = book_.Finish(topic, m->partition, m->offset, h.generation);
    if (next >= 0) consumer_->StoreOffset(topic, m->partition, next);
    return true;
  }
  auto headers_map = kafka::Headers(m);
  std::vector<kafka::Header> headers;
  // On release to the target every header travels with the record (pv-attempt tells a worker which
  // attempt this is); on a hop the ladder headers are set again by Schedule.
  headers.reserve(headers_map.size());
  for (const auto& [name, value] : headers_map) headers.push_back({name, value});
  bool to_target = now >= h.due;
  auto* pending = new internal::Pending(&completions_, topic, m->partition, m->offset, h.generation);
  pending->remaining.store(1);
  rd_kafka_resp_err_t err;
  if (to_target) {
    err = producer_.Produce(h.target, kafka::Key(m), kafka::Payload(m), headers, pending);
  } else {
    int attempt = 1;
    if (auto a = headers_map.find(ladder::kAttempt); a != headers_map.end()) {
      attempt = ladder::ParseAttempt(a->second).value_or(1);
    }
    err = ladder::Schedule(producer_, tiers_, h.target, kafka::Key(m), kafka::Payload(m), h.due, attempt,
                           headers, std::make_shared<internal::ForwardGroup>(pending), now);
  }
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    delete pending;  // NOLINT(cppcoreguidelines-owning-memory): never handed to the producer
    return false;
  }
  pending->message = std::move(h.message);
  book_.AddOutstanding(topic, pending->partition);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    log::Warn("delay_produce_enqueue_failed", {{"target", h.target}, {"error", rd_kafka_err2str(err)}});
    pending->Abandon(err);
    return true;
  }
  if (to_target) {
    metrics_.delay_released.With({h.tier->name}).Inc();
    metrics_.produced.With({"release"}).Inc();
    metrics_.delay_lateness.Get().Observe(std::chrono::duration<double>(now - h.due).count());
  } else {
    metrics_.delay_hops.With({h.tier->name}).Inc();
    metrics_.produced.With({"delay"}).Inc();
  }
  return true;
}

void DelayScheduler::DrainCompletions() {
  for (internal::Pending* raw : completions_.Take()) {
    std::unique_ptr<internal::Pending> p(raw);
    if (internal::Settle(*p, book_, *consumer_, producer_.handle(), fatal_,
                         metrics_.delivery_failures.With({"delay"}),
                         "delay_produce_failed") != internal::Settled::kRetry) {
      continue;
    }
    // Back to the front of its partition's queue (it is the lowest unfinished offset there or close to
    // it; order within a partition only matters for the offsets, which the tracker handles).
    Held h;
    const rd_kafka_message_t* m = p->message.get();
    h.generation = p->generation;
    h.tier = tier_by_topic_.at(p->topic);
    rd_kafka_timestamp_type_t type;
    std::int64_t ts = rd_kafka_message_timestamp(m, &type);
    h.produced_at = ts >= 0 ? FromUnixMillis(ts) : SysClock::now();
    auto due_text = kafka::HeaderValue(m, ladder::kDueAt);
    auto due = due_text ? ParseTimestamp(*due_text) : std::nullopt;
    h.due = due.value_or(SysClock::now());
    h.target = kafka::HeaderValue(m, ladder::kTarget).value_or("");
    h.release_at = ladder::ReleaseTime(*h.tier, h.produced_at, h.due);
    h.not_before = std::chrono::steady_clock::now() + options_.retry_backoff;
    h.message = std::move(p->message);
    held_[{p->topic, p->partition}].push_front(std::move(h));
  }
}

void DelayScheduler::OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
  std::vector<TopicPartition> tps;
  tps.reserve(static_cast<size_t>(parts->cnt));
  for (int i = 0; i < parts->cnt; ++i) tps.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (const auto& [t, p] : tps) book_.Assign(t, p);
    log::Info("partitions_assigned", {{"group", options_.delay_group_id}, {"count", tps.size()}});
    return;
  }
  bool lost = rd_kafka_assignment_lost(consumer_->handle()) != 0;
  if (!lost) {
    auto deadline = std::chrono::steady_clock::now() + options_.revoke_timeout;
    while (true) {
      DrainCompletions();
      bool any = std::any_of(tps.begin(), tps.end(),
                             [&](const auto& tp) { return book_.Outstanding(tp.first, tp.second) > 0; });
      if (!any || std::chrono::steady_clock::now() >= deadline) break;
      completions_.Wait(milliseconds(10));
    }
  }
  size_t dropped = 0;
  for (const auto& tp : tps) {
    // Held records are simply forgotten: their offsets were not stored, the next owner reads them.
    if (auto it = held_.find(tp); it != held_.end()) {
      dropped += it->second.size();
      held_.erase(it);
    }
    if (paused_[tp]) consumer_->Resume(tp.first, tp.second);
    paused_.erase(tp);
    book_.Revoke(tp.first, tp.second);
    metrics_.consumer_lag.With({options_.delay_group_id, tp.first, std::to_string(tp.second)}).Set(0);
  }
  log::Info(
      "partitions_revoked",
      {{"group", options_.delay_group_id}, {"count", tps.size()}, {"lost", lost}, {"held_dropped", dropped}});
}

}  // namespace pv::dispatcher
