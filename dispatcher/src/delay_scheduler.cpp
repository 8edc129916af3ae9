#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "delay_runner.hpp"
#include "kept_batch_consumer.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/produce_errors.hpp"
#include "pv/records.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

using SysClock = std::chrono::system_clock;
using std::chrono::milliseconds;

// Where a ladder record goes when its target can never take it: a send's channel DLQ for a send topic
// (pv.send.<x> -> pv.dlq.<x>); for a deferred trigger (target pv.triggers), the DLQ of the channel whose
// address its user carries, the rule the processor follows for a trigger of an unknown campaign.
// Empty when neither tells.
std::string DeadLetterTopicOf(std::string_view target, std::string_view value) {
  constexpr std::string_view kSendPrefix = "pv.send.";
  if (target.substr(0, kSendPrefix.size()) == kSendPrefix) {
    return "pv.dlq." + std::string(target.substr(kSendPrefix.size()));
  }
  rapidjson::Document doc;
  doc.Parse(value.data(), value.size());
  if (doc.HasParseError() || !doc.IsObject()) return {};
  const rapidjson::Value* user = FindMember(doc, "user");
  if (user == nullptr || !user->IsObject()) return {};
  for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush}) {
    if (!FindString(*user, ContactField(c)).value_or(std::string_view()).empty())
      return topics::DeadLetter(c);
  }
  return {};
}

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
  consumer_ = MakeConsumer(settings, options.delay_group_id, "pv-dispatcher-delay",
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
      UpdateConsumerLag(*consumer_, options_.delay_group_id, metrics_);
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
  bool closed = consumer_->Close();  // commits the offsets stored for finished work (bounded)
  return fatal_ || !closed ? 1 : 0;
}

void DelayScheduler::Take(kafka::Message m) {
  if (!internal::Consumed(m, "delay_consume_error")) return;
  std::string topic = rd_kafka_topic_name(m->rkt);
  std::uint64_t gen = book_.Generation(topic, m->partition);
  if (gen == 0 || !tier_by_topic_.contains(topic)) return;
  book_.Begin(topic, m->partition, m->offset);
  metrics_.consumed.With({topic}).Inc();
  auto now = SysClock::now();
  Held h = Read(std::move(m), gen, topic, now);
  if (!h.due_valid) {
    log::Warn("delay_record_without_due_time", {{"topic", topic},
                                                {"partition", h.message->partition},
                                                {"offset", h.message->offset},
                                                {"action", "release now"}});
  }
  TopicPartition tp{topic, h.message->partition};
  auto& queue = held_[tp];
  queue.push_back(std::move(h));
  // The head is not due: fetch nothing more from this partition until it is.
  if (queue.size() == 1 && queue.front().release_at > now) SetPaused(tp, true);
}

void DelayScheduler::SetPaused(const TopicPartition& tp, bool paused) {
  if (paused_[tp] == paused) return;
  if (paused) {
    consumer_->Pause(tp.first, tp.second);
  } else {
    consumer_->Resume(tp.first, tp.second);
  }
  paused_[tp] = paused;
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
    SetPaused(tp, !queue.empty());
    it = queue.empty() ? held_.erase(it) : std::next(it);
  }
  metrics_.delay_held.Get().Set(static_cast<double>(held_count));
  return earliest;
}

bool DelayScheduler::Release(Held& h, SysClock::time_point now) {
  const rd_kafka_message_t* m = h.message.get();
  if (h.target.empty()) {
    metrics_.delay_invalid.With({h.tier->name}).Inc();
    log::Error("delay_record_without_target", {{"topic", rd_kafka_topic_name(m->rkt)},
                                               {"partition", m->partition},
                                               {"offset", m->offset},
                                               {"action", "skipped"}});
    Finish(h);
    return true;
  }
  if (h.dead_letter_attempt > 0) return ReleaseDeadLetter(h, now);
  auto headers_map = kafka::Headers(m);
  std::vector<kafka::Header> headers;
  // On release to the target every header travels with the record (pv-attempt tells a worker which
  // attempt this is); on a hop the ladder headers are set again by Schedule.
  headers.reserve(headers_map.size());
  for (const auto& [name, value] : headers_map) headers.push_back({name, value});
  bool to_target = now >= h.due;
  // Checked before producing, with every header (a hop's ladder headers have the same lengths): a
  // record over the limit would be refused on every attempt.
  std::size_t size = kafka::RecordBytes(kafka::Key(m), kafka::Payload(m), headers);
  if (!to_target) size += kafka::HeaderBytes(ladder::kAttempt, "99");  // in case the record had none
  if (size > producer_.MaxMessageBytes()) {
    h.dead_letter_attempt = 1;
    h.dead_letter_code = "release_too_large";
    h.dead_letter_error =
        fmt::format("the record for {} is {} bytes with its headers, over message.max.bytes ({})", h.target,
                    size, producer_.MaxMessageBytes());
    return ReleaseDeadLetter(h, now);
  }
  std::string out_topic =
      to_target ? h.target
                : ladder::ChooseTier(tiers_, std::chrono::duration_cast<milliseconds>(h.due - now)).topic;
  rd_kafka_resp_err_t err = Enqueue(h, internal::OutputRole::kMain, out_topic, [&](auto* report) {
    if (to_target) return producer_.Produce(h.target, kafka::Key(m), kafka::Payload(m), headers, report);
    int attempt = 1;
    if (auto a = headers_map.find(ladder::kAttempt); a != headers_map.end()) {
      attempt = ladder::ParseAttempt(a->second).value_or(1);
    }
    return ladder::Schedule(producer_, tiers_, h.target, kafka::Key(m), kafka::Payload(m), h.due, attempt,
                            headers, std::make_shared<internal::ForwardGroup>(report), now);
  });
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return err != RD_KAFKA_RESP_ERR__QUEUE_FULL;
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

bool DelayScheduler::ReleaseDeadLetter(Held& h, SysClock::time_point now) {
  const rd_kafka_message_t* m = h.message.get();
  std::string topic = rd_kafka_topic_name(m->rkt);
  std::string dlq = DeadLetterTopicOf(h.target, kafka::Payload(m));
  if (dlq.empty()) {
    metrics_.skipped.With({"delay", "no_dead_letter_topic"}).Inc();
    log::Error("record_skipped", {{"record", "delay"},
                                  {"error", h.dead_letter_error},
                                  {"reason", "no_dead_letter_topic"},
                                  {"target", h.target},
                                  {"input_topic", topic},
                                  {"partition", m->partition},
                                  {"offset", m->offset}});
    Finish(h);
    return true;
  }
  // The record as it was, with the reason in the dead-letter headers; pv-target stays, so that a replay
  // puts it back where it was going.
  std::vector<std::pair<std::string, std::string>> kept;
  for (auto& [name, value] : kafka::Headers(m)) {
    // An earlier dead letter's omitted size (a replayed record's) is not this one's.
    if (name != ladder::kOmittedBytes) kept.emplace_back(name, value);
  }
  SetDeadLetterHeaders(
      kept,
      {.error_code = h.dead_letter_code, .error = h.dead_letter_error, .failed_at = FormatTimestamp(now)});
  std::string_view value = kafka::Payload(m);
  if (h.omit_value || kafka::RecordBytesOf(kafka::Key(m), value, kept) > producer_.MaxMessageBytes()) {
    SetDeadLetterHeaders(kept, {.omitted_bytes = value.size()});
    value = {};
  }
  std::vector<kafka::Header> headers;
  headers.reserve(kept.size());
  for (const auto& [name, v] : kept) headers.push_back({name, v});
  std::int32_t partition = m->partition;
  std::int64_t offset = m->offset;
  rd_kafka_resp_err_t err = Enqueue(h, internal::OutputRole::kDeadLetter, dlq, [&](auto* report) {
    return producer_.Produce(dlq, kafka::Key(m), value, headers, report);
  });
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return err != RD_KAFKA_RESP_ERR__QUEUE_FULL;
  if (h.dead_letter_attempt == 1) {
    metrics_.delay_dead_lettered.With({h.dead_letter_code}).Inc();
    log::Warn("delay_record_dead_lettered", {{"target", h.target},
                                             {"dead_letter_topic", dlq},
                                             {"error_code", h.dead_letter_code},
                                             {"error", h.dead_letter_error},
                                             {"partition", partition},
                                             {"offset", offset}});
  }
  metrics_.produced.With({"dlq"}).Inc();
  return true;
}

rd_kafka_resp_err_t DelayScheduler::Enqueue(
    Held& h, internal::OutputRole role, const std::string& out_topic,
    const std::function<rd_kafka_resp_err_t(internal::Pending::Output*)>& produce) {
  const rd_kafka_message_t* m = h.message.get();
  auto* pending = new internal::Pending(&completions_, rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                                        h.generation);
  pending->Expect({{role, out_topic}});
  internal::Pending::Output* report = &pending->outputs.front();
  rd_kafka_resp_err_t err = produce(report);
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    delete pending;  // NOLINT(cppcoreguidelines-owning-memory): never handed to the producer
    return err;
  }
  pending->dead_letter_attempt = h.dead_letter_attempt;
  pending->dead_letter_code = h.dead_letter_code;
  pending->dead_letter_error = h.dead_letter_error;
  pending->omit_value = h.omit_value;
  pending->message = std::move(h.message);
  book_.AddOutstanding(pending->topic, pending->partition);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string_view target = role == internal::OutputRole::kDeadLetter ? out_topic : h.target;
    log::Warn("delay_produce_enqueue_failed", {{"target", target}, {"error", rd_kafka_err2str(err)}});
    report->OnDelivery(err, -1, -1);
  }
  return err;
}

void DelayScheduler::Finish(const Held& h) {
  const rd_kafka_message_t* m = h.message.get();
  std::string topic = rd_kafka_topic_name(m->rkt);
  std::int64_t next = book_.Finish(topic, m->partition, m->offset, h.generation);
  if (next >= 0) consumer_->StoreOffset(topic, m->partition, next);
}

DelayScheduler::Held DelayScheduler::Read(kafka::Message message, std::uint64_t generation,
                                          const std::string& topic, SysClock::time_point now) const {
  Held h;
  const rd_kafka_message_t* m = message.get();
  h.generation = generation;
  h.tier = tier_by_topic_.at(topic);
  rd_kafka_timestamp_type_t type;
  std::int64_t ts = rd_kafka_message_timestamp(m, &type);
  // Without a timestamp the record is treated as produced now: it waits its tier's full delay again,
  // which is late but never early (the target is only reached at or after the due time).
  h.produced_at = ts >= 0 ? FromUnixMillis(ts) : now;
  auto due_text = kafka::HeaderValue(m, ladder::kDueAt);
  auto due = due_text ? ParseTimestamp(*due_text) : std::nullopt;
  h.due_valid = due.has_value();
  h.due = due.value_or(now);
  h.target = kafka::HeaderValue(m, ladder::kTarget).value_or("");
  h.release_at = ladder::ReleaseTime(*h.tier, h.produced_at, h.due);
  h.message = std::move(message);
  return h;
}

void DelayScheduler::DrainCompletions() {
  internal::SettleContext context{book_,
                                  *consumer_,
                                  producer_,
                                  fatal_,
                                  metrics_.delivery_failures.With({"delay"}),
                                  metrics_.skipped,
                                  "delay",
                                  "delay_produce_failed",
                                  options_.dead_letter_attempts};
  internal::SettleCompleted(completions_, context, [&](internal::Pending& p, internal::Settlement& s) {
    // Back to the front of its partition's queue (it is the lowest unfinished offset there or close to
    // it; order within a partition only matters for the offsets, which the book handles).
    Held h = Read(std::move(p.message), p.generation, p.topic, SysClock::now());
    h.not_before = std::chrono::steady_clock::now() + options_.retry_backoff;
    if (s.action == internal::Settled::kDeadLetter) {
      h.dead_letter_attempt = 1;
      h.dead_letter_code = fmt::format("produce_{}", kafka::ProduceFailureName(s.failure));
      h.dead_letter_error = std::move(s.error);
      h.due = SysClock::now() - std::chrono::hours(1);  // released at once, to its dead-letter topic
      h.release_at = h.due;
      h.not_before = {};
    } else if (p.dead_letter_attempt > 0) {
      h.dead_letter_attempt = p.dead_letter_attempt + 1;
      h.dead_letter_code = std::move(p.dead_letter_code);
      h.dead_letter_error = std::move(p.dead_letter_error);
      h.omit_value = p.omit_value || s.failure == kafka::ProduceFailure::kTooLarge;
      h.due = SysClock::now() - std::chrono::hours(1);
      h.release_at = h.due;
    }
    held_[{p.topic, p.partition}].push_front(std::move(h));
  });
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
  bool lost = consumer_->AssignmentLost();
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
    SetPaused(tp, false);
    paused_.erase(tp);
    book_.Revoke(tp.first, tp.second);
    metrics_.consumer_lag.With({options_.delay_group_id, tp.first, std::to_string(tp.second)}).Set(0);
  }
  log::Info(
      "partitions_revoked",
      {{"group", options_.delay_group_id}, {"count", tps.size()}, {"lost", lost}, {"held_dropped", dropped}});
}

}  // namespace pv::dispatcher
