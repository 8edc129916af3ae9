// Suppression: users and addresses that must not receive a channel's messages. The dispatcher's
// delivery feedback (feedback.hpp) adds hard bounces, complaints, unsubscribes, SMS STOPs and dead push
// tokens from the providers' receipts; an operator adds entries with `pvctl suppress add` or SADD. Kept
// in Redis so that every dispatcher and pvctl share one list; the keys, members and reasons are laid
// out as pv/suppression_keys.hpp says (common, so that pvctl reads them without the dispatcher).
//
// A batch of sends is checked with one round trip (an SMISMEMBER per channel of each send's user and
// address members, Redis 6.2 or later), and a second one (HGET) only for the sends found suppressed,
// to name the reason in their event. The dispatcher treats Redis being unreachable as "cannot
// decide": it holds the batch and pauses consuming until Redis answers again, so no send goes out
// unchecked. See docs/configuration-dispatcher.md.
//
// The sets have no TTL and are the only record of an unsubscribe, so they must live where no eviction
// policy reaches them: `suppression.redis_url` may name a Redis of their own (compose runs one with
// `noeviction` and an append-only file) while the workers' marks and claims, which all expire, live in
// `redis.url` under `maxmemory` + `volatile-ttl` (docs/operations.md "Redis").
#pragma once

#include <chrono>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pv/redis_client.hpp"
#include "pv/suppression_keys.hpp"
#include "pv/topics.hpp"

namespace pv::dispatcher {

enum class Suppressed { kNo, kUser, kAddress };

struct SuppressionQuery {
  Channel channel = Channel::kEmail;
  std::string_view project;
  std::string_view external_id;
  std::string_view address;
};

// A blocking client of one Redis connection (pv::RedisClient); used from one thread.
class SuppressionStore {
 public:
  // `url` as pv/redis_url.hpp reads it; throws std::invalid_argument (without the password) when it is
  // not one. Connects on first use.
  SuppressionStore(const std::string& url, std::chrono::milliseconds timeout);

  // Answers every query with one pipelined round trip, (re)connecting first when needed. Returns false
  // when Redis could not answer (unreachable, timeout, error reply): `error` says why, `out` is unset.
  // `why` (when given) gets, for each query, the recorded reason of the member that matched (unset for
  // the queries not suppressed).
  bool Check(std::span<const SuppressionQuery> queries, std::vector<Suppressed>& out, std::string& error,
             std::vector<SuppressionWhy>* why = nullptr);
  // PING, (re)connecting first. For readiness and to probe before resuming.
  bool Ping(std::string& error);

  const RedisEndpoint& endpoint() const { return redis_.endpoint(); }

 private:
  // `commands` in one round trip; nullopt and `error` set when Redis could not be reached.
  std::optional<std::vector<RedisReply>> Run(const RedisCommands& commands, std::string& error);

  // The queries one SMISMEMBER asks about at most (two members each): a command of a few hundred
  // KB at most for the longest members, however large the batch.
  static constexpr size_t kMaxQueriesPerCommand = 512;

  RedisClient redis_;
  RedisCommands commands_;  // Check's batch, its buffer reused from batch to batch
  std::string keys_[3];     // SuppressionKey by channel, made once
  // Check's scratch, reused: the queries' indices by channel (the order the commands ask about
  // them), where in it each command's queries begin, and a command's arguments.
  std::vector<size_t> order_;
  std::vector<size_t> chunk_begins_;
  std::vector<std::string> args_;
};

}  // namespace pv::dispatcher
