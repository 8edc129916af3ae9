// Records in flight between a consumed input and its acknowledged outputs, shared by the trigger
// pipeline and the delay scheduler. Private to the dispatcher library.
//
// Each consumed record that produces outputs gets a Pending: it counts the delivery reports of its
// outputs on the producer's poll thread and, on the last one, hands itself to the PendingQueue.
// The consuming thread drains the queue, marks the input finished in its kafka::PartitionBook and
// stores the offset the book allows. Nothing else is shared between the threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/kafka.hpp"
#include "pv/kafka_book.hpp"
#include "pv/log.hpp"
#include "pv/metrics.hpp"
#include "pv/produce_errors.hpp"

namespace pv::dispatcher::internal {

struct Pending;
using PendingQueue = kafka::CompletionQueue<std::unique_ptr<Pending>>;

// The role of one output record, which decides what a failure that can never succeed means:
// a main record (send, deferred trigger, ladder release or hop) sends its input to a dead-letter topic;
// a dead-letter record is tried a bounded number of times, then skipped; an event is skipped.
enum class OutputRole { kMain, kDeadLetter, kEvent };

struct Pending final : kafka::DeliveryHandler {
  Pending(PendingQueue* q, std::string t, std::int32_t p, std::int64_t o, std::uint64_t g)
      : queue(q), topic(std::move(t)), partition(p), offset(o), generation(g) {}

  // One output record: its delivery report lands here, so a failure names the record it belongs to.
  struct Output final : kafka::DeliveryHandler {
    void OnDelivery(rd_kafka_resp_err_t e, std::int32_t to_partition, std::int64_t at_offset) override {
      err = e;  // written once, read by the consumer thread after the last report (queue's mutex)
      owner->OnDelivery(e, to_partition, at_offset);
    }
    Pending* owner = nullptr;
    OutputRole role = OutputRole::kMain;
    std::string topic;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  };

  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override;
  // Declares the output records before the first is produced (their handlers must not move after).
  void Expect(std::vector<std::pair<OutputRole, std::string>> roles) {
    outputs.resize(roles.size());
    for (size_t i = 0; i < roles.size(); ++i) {
      outputs[i].owner = this;
      outputs[i].role = roles[i].first;
      outputs[i].topic = std::move(roles[i].second);
    }
    remaining.store(static_cast<int>(roles.size()));
  }

  PendingQueue* queue;
  std::string topic;
  std::int32_t partition;
  std::int64_t offset;
  std::uint64_t generation;
  std::atomic<int> remaining{0};
  std::atomic<int> first_error{RD_KAFKA_RESP_ERR_NO_ERROR};
  std::vector<Output> outputs;  // declared by Expect
  kafka::Message message;       // the input, kept so a failed delivery can be retried
  // > 0: these outputs are the input's dead letter (this attempt), for the reason below.
  int dead_letter_attempt = 0;
  std::string dead_letter_code;   // pv-error-code, e.g. produce_too_large
  std::string dead_letter_error;  // pv-error
  bool omit_value = false;        // the dead letter goes without the input's value
};

// False for a consume error instead of a record (logged as `event`, but for a partition's end).
inline bool Consumed(const kafka::Message& m, std::string_view event) {
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) return true;
  if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
    log::Warn(event, {{"error", rd_kafka_message_errstr(m.get())}});
  return false;
}

// Adapts ladder::Schedule, which reports to a DeliveryGroup, to a Pending.
class ForwardGroup final : public kafka::DeliveryGroup {
 public:
  explicit ForwardGroup(kafka::DeliveryHandler* target) : DeliveryGroup(1), target_(target) {}
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override {
    target_->OnDelivery(err, partition, offset);
  }

 private:
  kafka::DeliveryHandler* target_;
};

inline void Pending::OnDelivery(rd_kafka_resp_err_t err, std::int32_t /*partition*/,
                                std::int64_t /*offset*/) {
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    int expected = RD_KAFKA_RESP_ERR_NO_ERROR;
    first_error.compare_exchange_strong(expected, err);
  }
  if (remaining.fetch_sub(1) == 1) queue->Post(std::unique_ptr<Pending>(this));
}

enum class Settled {
  kDone,        // acknowledged, or failed in a way that ends here (offset stored if the book allows)
  kRetry,       // failed, may pass later, partition still ours: the caller queues p.message again
  kDeadLetter,  // a main output can never be written: the caller sends the input to its dead letter
};

// What the reports of one Pending's outputs mean (decided without Kafka: in_flight_test.cpp).
//
//   a main output refused for good (too large, unauthorized, unknown topic, invalid)  -> kDeadLetter
//   else any output failed in a way that may pass later (outage, timeout)             -> kRetry
//   else a dead-letter output refused for good, attempt < dead_letter_attempts        -> kRetry
//   else a dead-letter output refused for good, attempts used up                      -> kDone, skipped
//   else only events refused for good (the main outputs were written)                 -> kDone, skipped
struct Settlement {
  Settled action = Settled::kDone;
  kafka::ProduceFailure failure = kafka::ProduceFailure::kTransient;  // of the output that decided
  std::string error;                                                  // DescribeProduceError of it
  bool skipped = false;  // an output was given up: logged and counted by Settle
  OutputRole skipped_role = OutputRole::kEvent;
};

inline Settlement Judge(const Pending& p, int dead_letter_attempts) {
  Settlement s;
  if (p.first_error.load() == RD_KAFKA_RESP_ERR_NO_ERROR) return s;
  // The first output that failed in a way that may pass later, and the first refused for good by role.
  const Pending::Output* retriable = nullptr;
  const Pending::Output* never[3] = {};  // by OutputRole
  for (const auto& o : p.outputs) {
    if (o.err == RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    bool for_good = kafka::ProduceErrorClassOf(o.err) == kafka::ProduceErrorClass::kNeverSucceeds;
    const Pending::Output*& first = for_good ? never[static_cast<size_t>(o.role)] : retriable;
    if (first == nullptr) first = &o;
  }
  const Pending::Output* never_main = never[static_cast<size_t>(OutputRole::kMain)];
  const Pending::Output* never_dead_letter = never[static_cast<size_t>(OutputRole::kDeadLetter)];
  const Pending::Output* never_event = never[static_cast<size_t>(OutputRole::kEvent)];
  auto from = [&](Settled action, const Pending::Output& o) {
    s.action = action;
    s.failure = kafka::ProduceFailureOf(o.err);
    s.error = kafka::DescribeProduceError(o.topic, o.err);
  };
  if (never_main != nullptr) {
    from(Settled::kDeadLetter, *never_main);
  } else if (retriable != nullptr) {
    from(Settled::kRetry, *retriable);
  } else if (never_dead_letter != nullptr) {
    bool again = p.dead_letter_attempt < dead_letter_attempts;
    from(again ? Settled::kRetry : Settled::kDone, *never_dead_letter);
    s.skipped = !again;
    s.skipped_role = OutputRole::kDeadLetter;
  } else if (never_event != nullptr) {
    from(Settled::kDone, *never_event);
    s.skipped = true;
    s.skipped_role = OutputRole::kEvent;
  }
  return s;
}

// What Settle needs besides the Pending: the consumer's bookkeeping and the pipeline's metrics.
struct SettleContext {
  kafka::PartitionBook& book;
  kafka::Consumer& consumer;
  const kafka::Producer& producer;
  bool& fatal;
  metrics::Counter& failures;
  metrics::Family<metrics::Counter>& skipped;  // {pipeline, reason}
  std::string pipeline;                        // "triggers", "delay"
  std::string_view failed_event;               // log event of a failed delivery
  int dead_letter_attempts = 3;
};

// What draining one completed Pending means, the same for the trigger pipeline and the delay
// scheduler: outstanding bookkeeping, the offset on success, and on failure the fatal-producer check
// (`fatal` is set and the process will exit), then Judge's verdict. A skipped output is logged and
// counted here and its input finished, so the partition's offset moves on.
inline Settlement Settle(Pending& p, SettleContext& c) {
  bool current = c.book.Generation(p.topic, p.partition) == p.generation;
  if (current) c.book.DoneOutstanding(p.topic, p.partition);
  auto finish = [&] {
    std::int64_t next = c.book.Finish(p.topic, p.partition, p.offset, p.generation);
    if (next >= 0) c.consumer.StoreOffset(p.topic, p.partition, next);
  };
  if (p.first_error.load() == RD_KAFKA_RESP_ERR_NO_ERROR) {
    finish();
    return {};
  }
  c.failures.Inc();
  if (auto reason = c.producer.FatalError()) {
    if (!c.fatal) log::Error("producer_fatal_error", {{"error", *reason}, {"action", "exit"}});
    c.fatal = true;
    return {};
  }
  Settlement s = Judge(p, c.dead_letter_attempts);
  std::string_view kind = kafka::ProduceFailureName(s.failure);
  switch (s.action) {
    case Settled::kRetry:
    case Settled::kDeadLetter:
      log::Warn(c.failed_event, {{"error", s.error},
                                 {"reason", kind},
                                 {"partition", p.partition},
                                 {"offset", p.offset},
                                 {"dead_letter_attempt", p.dead_letter_attempt},
                                 {"action", s.action == Settled::kRetry ? "retry" : "dead_letter"}});
      if (!current || !p.message) s.action = Settled::kDone;  // not ours any more: the owner reads it again
      break;
    case Settled::kDone:
      if (s.skipped) {
        bool dead_letter = s.skipped_role == OutputRole::kDeadLetter;
        log::Error("record_skipped", {{"record", dead_letter ? "dead_letter" : "event"},
                                      {"error", s.error},
                                      {"reason", kind},
                                      {"input_topic", p.topic},
                                      {"partition", p.partition},
                                      {"offset", p.offset},
                                      {"attempts", p.dead_letter_attempt}});
        c.skipped.With({c.pipeline, std::string(kind)}).Inc();
      }
      if (current) finish();
      break;
  }
  return s;
}

// Settles every Pending completed so far; `again(pending, settlement)` gets each one whose input
// must be produced again (kRetry, kDeadLetter).
template <typename Again>
void SettleCompleted(PendingQueue& queue, SettleContext& c, Again again) {
  std::vector<std::unique_ptr<Pending>> done;
  queue.Take(done);
  for (auto& p : done) {
    if (Settlement s = Settle(*p, c); s.action != Settled::kDone) again(*p, s);
  }
}

}  // namespace pv::dispatcher::internal
