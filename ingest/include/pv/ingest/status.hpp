// Status lookups for GET /api/client/triggers/:triggerId (docs/api.md "Trigger status"): the front's
// loop threads never touch Redis. A request is queued here (bounded: status.max_pending_lookups) and
// one thread of its own, with its own connection to the status store (options.redis_url), takes every queued
// lookup, asks for them in one pipelined round trip (HGETALL pv:status:<id> each), and completes
// each through its callback, which answers through the request's Responder (posted back to the
// connection's loop). Redis down, slow (status.redis_timeout_ms) or the queue full: the callback gets
// kUnavailable and the route answers 503 with Retry-After; nothing else in ingest waits on it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "pv/metrics.hpp"
#include "pv/status_store.hpp"

namespace pv {
class RedisClient;
}

namespace pv::ingest {

class StatusLookups {
 public:
  enum class Outcome { kFound, kNotFound, kUnavailable };
  struct Result {
    Outcome outcome = Outcome::kUnavailable;
    TriggerStatus status;  // kFound: project, campaign_id and the body
    std::string why;       // kUnavailable: for the log and the answer
  };
  // Called exactly once, on the lookup thread (or at once in Submit when the queue is full).
  using Done = std::function<void(Result)>;

  // Registers pv_ingest_status_store_up. Starts the lookup thread.
  StatusLookups(const StatusOptions& options, metrics::Registry& registry);
  ~StatusLookups();  // answers what is still queued with kUnavailable
  StatusLookups(const StatusLookups&) = delete;
  StatusLookups& operator=(const StatusLookups&) = delete;

  // `trigger_id` must pass ValidStatusId.
  void Submit(std::string trigger_id, Done done);

 private:
  struct Pending {
    std::string trigger_id;
    Done done;
    std::chrono::steady_clock::time_point queued;
  };
  void Loop();

  StatusOptions options_;
  std::unique_ptr<RedisClient> redis_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace pv::ingest
