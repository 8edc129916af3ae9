#include "feedback_pipeline.hpp"

#include "pv/log.hpp"
#include "pv/records.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {

struct FeedbackItem {
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

namespace {

using Clock = std::chrono::steady_clock;

std::string ReceiptMarkKey(std::string_view receipt_id) {
  return "pv:receipt:" + std::string(receipt_id);
}

// Step 1: `items` read from `batch`; returns their lookups in the marks Redis.
std::vector<std::vector<std::string>> ParseBatch(std::span<const kafka::Message> batch,
                                                 std::vector<FeedbackItem>& items) {
  const std::string dlq = topics::DeadLetter(Channel::kPush);
  std::vector<std::vector<std::string>> lookups;
  for (size_t i = 0; i < batch.size(); ++i) {
    const rd_kafka_message_t* m = batch[i].get();
    FeedbackItem& item = items[i];
    if (dlq == rd_kafka_topic_name(m->rkt)) {
      item.source = "dlq";
      item.error_code = ParseDeadLetter(kafka::Headers(m)).error_code.value_or("");
      item.valid = true;
      continue;
    }
    item.receipt = true;
    std::string error;
    item.valid = ParseReceipt(kafka::Payload(m), item.record, error);
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
  return lookups;
}

// Step 2: what each item does, given the lookups' replies; returns the suppression changes, the item
// of each in `change_of`.
std::vector<std::vector<std::string>> DecideBatch(std::span<const kafka::Message> batch,
                                                  const std::vector<RedisReply>& found,
                                                  const SuppressionReasons& reasons,
                                                  std::chrono::system_clock::time_point now,
                                                  std::vector<FeedbackItem>& items,
                                                  std::vector<size_t>& change_of) {
  std::set<std::string> seen;
  std::vector<std::vector<std::string>> changes;
  for (size_t i = 0; i < items.size(); ++i) {
    FeedbackItem& item = items[i];
    if (!item.valid) continue;
    if (!item.receipt) {
      item.action = DecideDeadPush(item.error_code, kafka::Payload(batch[i].get()), reasons, now);
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
      item.action = DecideReceipt(item.record, SendOfReceipt(item.record, recorded), reasons, now);
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
  return changes;
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
  consumer_ = std::make_unique<KeptBatchConsumer>(
      settings,
      KeptBatchConsumer::Options{options.feedback_group_id,
                                 "pv-dispatcher-feedback",
                                 {std::string(topics::kReceipts), topics::DeadLetter(Channel::kPush)},
                                 static_cast<size_t>(options.feedback_batch_size),
                                 options.retry_backoff,
                                 {},
                                 {}});
}

FeedbackPipeline::~FeedbackPipeline() = default;

int FeedbackPipeline::Run() {
  KeptBatchConsumer::Handlers handlers;
  handlers.apply = [this](std::span<const kafka::Message> batch) { return Apply(batch); };
  handlers.stalled = [this](bool stalled) { stalled_.Set(stalled ? 1 : 0); };
  size_t unfinished = consumer_->Run(stop_, handlers);
  log::Info("feedback_pipeline_stopping", {{"unfinished", unfinished}, {"closed", consumer_->closed()}});
  return consumer_->closed() ? 0 : 1;
}

bool FeedbackPipeline::Apply(std::span<const kafka::Message> batch) {
  auto now = std::chrono::system_clock::now();
  std::vector<FeedbackItem> items(batch.size());
  auto found = PipelineOrKeep(*marks_, ParseBatch(batch, items), "feedback_redis_error");
  if (!found) return false;
  std::vector<size_t> change_of;
  auto changed =
      PipelineOrKeep(*suppression_, DecideBatch(batch, *found, options_.suppress, now, items, change_of),
                     "feedback_redis_error");
  if (!changed || !ProduceEvents(items)) return false;
  std::vector<std::vector<std::string>> marks;
  std::string ttl = std::to_string(options_.receipt_ttl.count());
  for (const FeedbackItem& item : items) {
    if (item.receipt && item.valid && !item.duplicate)
      marks.push_back({"SET", ReceiptMarkKey(item.record.receipt_id), "1", "NX", "PX", ttl});
  }
  if (!marks.empty() && !marks_->Pipeline(marks)) return false;
  Count(items, change_of, *changed);  // KeptBatchConsumer stores the offsets
  return true;
}

bool FeedbackPipeline::ProduceEvents(const std::vector<FeedbackItem>& items) {
  int events = 0;
  for (const FeedbackItem& item : items) events += item.action.event.empty() ? 0 : 1;
  if (events == 0) return true;
  auto group = std::make_shared<kafka::DeliveryGroup>(events);
  int produced = 0;
  for (const FeedbackItem& item : items) {
    if (item.action.event.empty()) continue;
    rd_kafka_resp_err_t err =
        producer_.Produce(topics::kEvents, item.action.send_id, item.action.event, {}, group);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      group->Abandon(events - produced, err);
      break;
    }
    ++produced;
  }
  if (group->Wait(Clock::now() + options_.shutdown_timeout) &&
      group->first_error() == RD_KAFKA_RESP_ERR_NO_ERROR)
    return true;
  log::Warn("feedback_events_not_acknowledged", {{"events", events},
                                                 {"error", rd_kafka_err2name(group->first_error())},
                                                 {"action", "keeping the batch; retrying"}});
  return false;
}

void FeedbackPipeline::Count(const std::vector<FeedbackItem>& items, const std::vector<size_t>& change_of,
                             const std::vector<RedisReply>& changed) {
  for (const FeedbackItem& item : items) {
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
}

}  // namespace pv::dispatcher
