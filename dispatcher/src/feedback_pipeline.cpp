#include "feedback_pipeline.hpp"

#include <fmt/format.h>

#include <map>
#include <thread>

#include "pv/delay_ladder.hpp"
#include "pv/log.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string ReceiptMarkKey(std::string_view receipt_id) {
  return "pv:receipt:" + std::string(receipt_id);
}

}  // namespace

FeedbackPipeline::FeedbackPipeline(const DispatcherOptions& options, const kafka::Settings& settings,
                                   kafka::Producer& producer, metrics::Registry& registry,
                                   std::atomic<bool>& stop)
    : options_(options),
      producer_(producer),
      stop_(stop),
      receipts_(
          registry.AddCounter("pv_feedback_receipts_total",
                              "Receipts and dead pushes read by the feedback pipeline, by result (applied, "
                              "duplicate, unknown_send, invalid)",
                              {"source", "result"})),
      events_(
          registry.AddCounter("pv_feedback_events_total",
                              "Delivery events from provider receipts (delivered, bounced, complained, ...)",
                              {"channel", "provider", "status"})),
      suppressions_(registry.AddCounter("pv_feedback_suppressions_total",
                                        "Addresses newly suppressed from feedback, by reason",
                                        {"channel", "reason"})),
      lifts_(registry.AddCounter("pv_feedback_stops_lifted_total", "SMS stops lifted by START", {"channel"})),
      stalled_(registry.AddGauge("pv_feedback_stalled", "1 while a batch waits for Redis or the broker", {})
                   .Get()) {
  RedisClient::Options suppression;
  suppression.url = options.redis_url;
  suppression.timeout = options.redis_timeout;
  suppression_ = std::make_unique<RedisClient>(suppression);
  RedisClient::Options marks = suppression;
  marks.url = options.feedback_redis_url.empty() ? options.redis_url : options.feedback_redis_url;
  marks_ = std::make_unique<RedisClient>(marks);
  kafka::ConsumerOptions consumer_options;
  consumer_options.group_id = options.feedback_group_id;
  consumer_options.client_id = "pv-dispatcher-feedback";
  consumer_options.defaults = {{"auto.commit.interval.ms", "1000"}};
  consumer_ = std::make_unique<kafka::Consumer>(settings, consumer_options);
  consumer_->SetRebalanceListener(
      [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
        OnRebalance(kind, parts);
      });
}

FeedbackPipeline::~FeedbackPipeline() = default;

void FeedbackPipeline::OnRebalance(rd_kafka_resp_err_t kind,
                                   const rd_kafka_topic_partition_list_t* partitions) {
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::Info("partitions_assigned", {{"group", options_.feedback_group_id}, {"count", partitions->cnt}});
    return;
  }
  if (kind != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) return;
  // A kept batch's records of a revoked partition belong to its next owner (their offsets were not
  // stored): it reads them again.
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

void FeedbackPipeline::SetPaused(bool on) {
  if (!on && !paused_) return;
  consumer_->SetAssignmentPaused(on);
  paused_ = on;
}

int FeedbackPipeline::Run() {
  std::string dlq = topics::DeadLetter(Channel::kPush);
  consumer_->Subscribe({std::string(topics::kReceipts), dlq});
  log::Info("consuming",
            {{"topic", fmt::format("{},{}", topics::kReceipts, dlq)}, {"group", options_.feedback_group_id}});
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
  while (!stop_.load()) {
    if (!batch_.empty() && Clock::now() >= retry_at) {
      if (ProcessBatch()) {
        SetPaused(false);
        stalled_.Set(0);
      } else {
        // Kept, and tried again; meanwhile the consumer is polled (group membership, rebalances)
        // with its partitions paused.
        SetPaused(true);
        stalled_.Set(1);
        retry_at = Clock::now() + options_.retry_backoff;
      }
      continue;
    }
    if (paused_) SetPaused(true);  // partitions assigned meanwhile start unpaused
    take(consumer_->Poll(milliseconds(100)));
    while (batch_.size() < static_cast<size_t>(options_.feedback_batch_size) &&
           take(consumer_->Poll(milliseconds(0)))) {
    }
  }
  log::Info("feedback_pipeline_stopping", {{"unfinished", batch_.size()}});
  batch_.clear();
  consumer_->Close();
  return 0;
}

bool FeedbackPipeline::ProcessBatch() {
  auto now = std::chrono::system_clock::now();
  const std::string dlq = topics::DeadLetter(Channel::kPush);
  struct Item {
    bool receipt = false;
    bool valid = false;
    std::string source;  // sendgrid | twilio | dlq
    ReceiptRecord record;
    std::string error_code;  // dead push
    int mark_reply = -1;
    int message_reply = -1;
    FeedbackAction action;
    bool duplicate = false;
  };
  std::vector<Item> items(batch_.size());
  std::vector<std::vector<std::string>> lookups;
  for (size_t i = 0; i < batch_.size(); ++i) {
    const rd_kafka_message_t* m = batch_[i].get();
    Item& item = items[i];
    if (dlq == rd_kafka_topic_name(m->rkt)) {
      item.source = "dlq";
      item.error_code = kafka::HeaderValue(m, ladder::kErrorCode).value_or("");
      item.valid = true;
      continue;
    }
    item.receipt = true;
    std::string error;
    item.valid = ParseReceiptRecord(kafka::Payload(m), item.record, error);
    item.source = item.valid ? item.record.provider_type : "unknown";
    if (!item.valid) {
      log::Warn("receipt_invalid", {{"partition", m->partition}, {"offset", m->offset}, {"error", error}});
      continue;
    }
    item.mark_reply = static_cast<int>(lookups.size());
    lookups.push_back({"EXISTS", ReceiptMarkKey(item.record.receipt_id)});
    if (item.record.send_id.empty() && !item.record.message_id.empty() && item.record.type != "stop" &&
        item.record.type != "start") {
      item.message_reply = static_cast<int>(lookups.size());
      lookups.push_back({"GET", SentMessageKey(item.record.provider_type, item.record.message_id)});
    }
  }
  std::vector<RedisReply> found;
  if (!lookups.empty()) {
    auto replies = marks_->Pipeline(lookups);
    if (!replies) return false;
    for (const auto& r : *replies) {
      if (r.IsError()) {
        log::Warn("feedback_redis_error", {{"error", r.str}});
        return false;
      }
    }
    found = std::move(*replies);
  }

  std::set<std::string> seen;
  std::vector<std::vector<std::string>> changes;
  std::vector<size_t> change_of;  // the item of each change
  for (size_t i = 0; i < items.size(); ++i) {
    Item& item = items[i];
    if (!item.valid) continue;
    if (!item.receipt) {
      item.action = DecideDeadPush(item.error_code, kafka::Payload(batch_[i].get()), options_.suppress, now);
    } else {
      const std::string& id = item.record.receipt_id;
      if (found[static_cast<size_t>(item.mark_reply)].integer == 1 || !seen.insert(id).second) {
        item.duplicate = true;  // applied before (or earlier in this batch): one effect
        continue;
      }
      std::optional<SentMessage> recorded;
      if (item.message_reply >= 0) {
        const RedisReply& r = found[static_cast<size_t>(item.message_reply)];
        if (r.type == RedisReply::Type::kString) recorded = ParseSentMessage(r.str);
      }
      item.action = DecideReceipt(item.record, SendOfReceipt(item.record, recorded), options_.suppress, now);
    }
    if (!item.action.suppress_member.empty()) {
      changes.push_back(
          SuppressCommand(item.action.channel, item.action.suppress_member, item.action.suppress_why));
      change_of.push_back(i);
    }
    if (!item.action.lift_member.empty()) {
      changes.push_back(LiftStopCommand(item.action.channel, item.action.lift_member));
      change_of.push_back(i);
    }
  }
  std::vector<RedisReply> changed;
  if (!changes.empty()) {
    auto replies = suppression_->Pipeline(changes);
    if (!replies) return false;
    for (const auto& r : *replies) {
      if (r.IsError()) {
        log::Warn("feedback_redis_error", {{"error", r.str}});
        return false;
      }
    }
    changed = std::move(*replies);
  }

  int events = 0;
  for (const Item& item : items) events += item.action.event.empty() ? 0 : 1;
  if (events > 0) {
    auto group = std::make_shared<kafka::DeliveryGroup>(events);
    int produced = 0;
    for (const Item& item : items) {
      if (item.action.event.empty()) continue;
      rd_kafka_resp_err_t err =
          producer_.Produce(topics::kEvents, item.action.send_id, item.action.event, {}, group);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        group->Abandon(events - produced, err);
        break;
      }
      ++produced;
    }
    if (!group->Wait(Clock::now() + options_.shutdown_timeout) ||
        group->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::Warn("feedback_events_not_acknowledged", {{"events", events},
                                                     {"error", rd_kafka_err2name(group->first_error())},
                                                     {"action", "keeping the batch; retrying"}});
      return false;
    }
  }

  std::vector<std::vector<std::string>> marks;
  std::string ttl = std::to_string(options_.receipt_ttl.count());
  for (const Item& item : items) {
    if (item.receipt && item.valid && !item.duplicate)
      marks.push_back({"SET", ReceiptMarkKey(item.record.receipt_id), "1", "NX", "PX", ttl});
  }
  if (!marks.empty()) {
    auto replies = marks_->Pipeline(marks);
    if (!replies) return false;
  }

  // Done: count, then store each partition's next offset (a batch is processed whole and in order).
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> next;
  for (size_t i = 0; i < items.size(); ++i) {
    const rd_kafka_message_t* m = batch_[i].get();
    auto& n = next[{rd_kafka_topic_name(m->rkt), m->partition}];
    n = std::max(n, m->offset + 1);
    const Item& item = items[i];
    if (!item.receipt && item.action.result != FeedbackResult::kApplied) continue;  // other dead letters
    std::string_view result = item.duplicate ? "duplicate"
                              : item.valid   ? FeedbackResultName(item.action.result)
                                             : FeedbackResultName(FeedbackResult::kInvalid);
    receipts_.With({item.source, std::string(result)}).Inc();
    if (item.duplicate || !item.valid) continue;
    if (item.action.result == FeedbackResult::kUnknownSend) {
      log::Info("receipt_unknown_send", {{"receipt_id", item.record.receipt_id},
                                         {"message_id", item.record.message_id},
                                         {"type", item.record.type}});
    }
    if (!item.action.status.empty()) {
      events_.With({std::string(ChannelName(item.action.channel)), item.action.provider, item.action.status})
          .Inc();
    }
  }
  for (size_t k = 0; k < change_of.size(); ++k) {
    const FeedbackAction& a = items[change_of[k]].action;
    if (changed[k].integer != 1) continue;
    if (!a.lift_member.empty()) {
      lifts_.With({std::string(ChannelName(a.channel))}).Inc();
      log::Info("suppression_lifted", {{"channel", ChannelName(a.channel)}, {"reason", "start"}});
    } else {
      suppressions_.With({std::string(ChannelName(a.channel)), a.suppress_reason}).Inc();
      log::Info("suppressed",
                {{"channel", ChannelName(a.channel)}, {"reason", a.suppress_reason}, {"send_id", a.send_id}});
    }
  }
  for (const auto& [tp, offset] : next) consumer_->StoreOffset(tp.first, tp.second, offset);
  batch_.clear();
  return true;
}

}  // namespace pv::dispatcher
