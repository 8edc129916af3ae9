// The delay-ladder scheduler's consumer loop. Private to the dispatcher library; the design is in
// pv/dispatcher/delay_scheduler.hpp.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dispatcher_metrics.hpp"
#include "in_flight.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/dispatcher/delay_scheduler.hpp"
#include "pv/dispatcher/dispatcher.hpp"
#include "pv/kafka.hpp"

namespace pv::dispatcher {

class DelayScheduler {
 public:
  DelayScheduler(const DispatcherOptions& options, const kafka::Settings& settings, kafka::Producer& producer,
                 DispatcherMetrics& metrics, std::atomic<bool>& stop);
  ~DelayScheduler();

  // Consumes the tiers until `stop`; then finishes what is in flight and leaves the group.
  int Run();

 private:
  using TopicPartition = std::pair<std::string, std::int32_t>;
  struct Held {
    kafka::Message message;
    std::uint64_t generation = 0;
    const ladder::Tier* tier = nullptr;
    std::chrono::system_clock::time_point produced_at{};
    std::chrono::system_clock::time_point due{};
    bool due_valid = true;  // pv-due-at read (else due is when the record was read)
    std::string target;
    std::chrono::system_clock::time_point release_at{};
    std::chrono::steady_clock::time_point not_before{};  // retry after a failed re-publication
    // > 0: the target can never take this record; it goes to its dead-letter topic instead, for this
    // reason, this attempt (bounded: dispatcher.dead_letter_attempts).
    int dead_letter_attempt = 0;
    std::string dead_letter_code;
    std::string dead_letter_error;
    bool omit_value = false;  // the dead letter goes without the value (it would be over the size limit)
  };

  void OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions);
  void Take(kafka::Message message);
  // Releases due heads; returns the earliest release time still held (or max when none).
  std::chrono::system_clock::time_point ReleaseDue();
  // false: the producer's queue is full, try again shortly.
  bool Release(Held& held, std::chrono::system_clock::time_point now);
  // Release's path for a record whose target can never take it.
  bool ReleaseDeadLetter(Held& held, std::chrono::system_clock::time_point now);
  // The held state of a record of `topic` read at `now`.
  Held Read(kafka::Message message, std::uint64_t generation, const std::string& topic,
            std::chrono::system_clock::time_point now) const;
  // Produces `held`'s record through `produce` under a Pending of one output (`role`, `out_topic`).
  // QUEUE_FULL: nothing was done; another error was reported to the Pending as its delivery.
  rd_kafka_resp_err_t Enqueue(Held& held, internal::OutputRole role, const std::string& out_topic,
                              const std::function<rd_kafka_resp_err_t(internal::Pending::Output*)>& produce);
  // Done with `held`'s record without producing: its offset may be stored.
  void Finish(const Held& held);
  void SetPaused(const TopicPartition& tp, bool paused);
  void DrainCompletions();

  const DispatcherOptions& options_;
  kafka::Producer& producer_;
  DispatcherMetrics& metrics_;
  std::atomic<bool>& stop_;
  std::vector<ladder::Tier> tiers_;
  std::map<std::string, const ladder::Tier*> tier_by_topic_;
  std::unique_ptr<kafka::Consumer> consumer_;
  internal::PendingQueue completions_;
  kafka::PartitionBook book_;
  std::map<TopicPartition, std::deque<Held>> held_;  // per partition, in offset order
  std::map<TopicPartition, bool> paused_;
  bool fatal_ = false;
};

}  // namespace pv::dispatcher
