#include "pv/ingest/status.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <span>
#include <vector>

#include "pv/log.hpp"
#include "pv/redis_client.hpp"

namespace pv::ingest {

using Clock = std::chrono::steady_clock;

namespace {
// Lookups asked of Redis in one pipelined round trip, at most: bounds one round trip's reply.
constexpr size_t kMaxBatch = 64;
}  // namespace

StatusLookups::StatusLookups(const StatusOptions& options, metrics::Registry& registry) : options_(options) {
  RedisClient::Options redis;
  redis.url = options.redis_url;
  redis.timeout = options.redis_timeout;
  // A Redis that is down is asked again at most this often; meanwhile lookups get 503 at once.
  redis.reconnect_backoff = std::chrono::milliseconds(500);
  redis_ = std::make_unique<RedisClient>(redis);
  registry.AddCallbackGauge(
      "pv_ingest_status_store_up",
      "1 while the status store (status.redis_url, else redis.url) answered the last lookup or connect",
      [r = redis_.get()] { return r->connected() ? 1.0 : 0.0; });
  thread_ = std::thread([this] { Loop(); });
}

StatusLookups::~StatusLookups() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (Pending& p : queue_) p.done({Outcome::kUnavailable, {}, "ingest is stopping"});
}

void StatusLookups::Submit(std::string trigger_id, Done done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() < options_.max_pending) {
      queue_.push_back({std::move(trigger_id), std::move(done), Clock::now()});
      cv_.notify_one();
      return;
    }
  }
  done({Outcome::kUnavailable, {}, "too many status lookups waiting"});
}

void StatusLookups::Loop() {
  std::vector<Pending> batch;
  std::vector<std::vector<std::string>> commands;
  while (true) {
    batch.clear();
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      while (!queue_.empty() && batch.size() < kMaxBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    // A lookup that waited past the timeout (Redis slow, a burst) is answered 503 now rather than
    // late: the client retries after Retry-After.
    auto now = Clock::now();
    std::vector<Pending> ask;
    for (Pending& p : batch) {
      if (now - p.queued > options_.redis_timeout) {
        p.done({Outcome::kUnavailable, {}, "status store too slow"});
      } else {
        ask.push_back(std::move(p));
      }
    }
    if (ask.empty()) continue;
    commands.clear();
    // Every hash the trigger's statuses may be in (its sends' on each channel, its own): the same
    // number for each lookup, in one round trip for the batch.
    size_t keys = 0;
    for (const Pending& p : ask) {
      std::vector<std::string> of_trigger = StatusKeysOfTrigger(p.trigger_id);
      keys = of_trigger.size();
      for (std::string& key : of_trigger) commands.push_back({"HGETALL", std::move(key)});
    }
    auto replies = redis_->Pipeline(commands);
    if (!replies) {
      std::string why = fmt::format("status store unreachable: {}", redis_->last_error());
      for (Pending& p : ask) p.done({Outcome::kUnavailable, {}, why});
      continue;
    }
    for (size_t i = 0; i < ask.size(); ++i) {
      std::span<const RedisReply> of_trigger = std::span(*replies).subspan(i * keys, keys);
      Result result;
      auto error =
          std::find_if(of_trigger.begin(), of_trigger.end(), [](const RedisReply& r) { return r.IsError(); });
      if (error != of_trigger.end()) {
        result.outcome = Outcome::kUnavailable;
        result.why = "status store error: " + error->str.substr(0, 200);
      } else {
        result.status = RenderTriggerStatus(ask[i].trigger_id, of_trigger);
        result.outcome = result.status.found ? Outcome::kFound : Outcome::kNotFound;
      }
      ask[i].done(std::move(result));
    }
  }
}

}  // namespace pv::ingest
