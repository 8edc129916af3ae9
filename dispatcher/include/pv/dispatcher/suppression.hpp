// Suppression: users and addresses that must not receive a channel's messages. The dispatcher's
// delivery feedback (feedback.hpp) adds hard bounces, complaints, unsubscribes, SMS STOPs and dead push
// tokens from the providers' receipts; an operator adds entries with `pvctl suppress add` or SADD. Kept
// in Redis so that every dispatcher and pvctl share one list:
//
//   key    pv:suppress:<channel>          a SET per channel; channel is email, text or push
//   member user:<project>:<external_id>   one user of one project (external ids are per project)
//          address:<address>              an address for everyone: an email address in lower case, a
//                                         phone number in E.164, a device token as given
//
//   redis-cli SADD pv:suppress:email address:bob@example.com
//   redis-cli SADD pv:suppress:text 'user:demo:u-123'
//
// Why and since when (a second key, so the sets and every check of them stay as they were):
//
//   key    pv:suppress:<channel>:why       a HASH per channel; field = the member above, value =
//          {"reason":"bounce","at":"2026-12-05T10:00:00.000Z","source":"sendgrid-main"}
//
// reason is one of manual (pvctl suppress add), bounce, complaint, unsubscribe, stop (SMS STOP),
// unregistered (a dead push token). A member with no entry there (added before reasons were kept, or
// by hand with SADD) reads as reason "unknown": no migration is needed. The first reason stays (HSETNX);
// `pvctl suppress remove` and an SMS START (only when the reason is stop) delete both.
//
// A batch of sends is checked with one pipelined round trip (two SISMEMBER per send), and a second one
// (HGET) only for the sends found suppressed, to name the reason in their event. The dispatcher
// treats Redis being unreachable as "cannot decide": it holds the batch and pauses consuming until Redis
// answers again, so no send goes out unchecked. See docs/configuration-dispatcher.md.
//
// The sets have no TTL and are the only record of an unsubscribe, so they must live where no eviction
// policy reaches them: `suppression.redis_url` may name a Redis of their own (compose runs one with
// `noeviction` and an append-only file) while the workers' marks and claims, which all expire, live in
// `redis.url` under `maxmemory` + `volatile-ttl` (docs/operations.md "Redis").
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pv/redis_url.hpp"
#include "pv/topics.hpp"

struct redisContext;

namespace pv {
class Config;
}

namespace pv::dispatcher {

// The suppression store's URL, read the same way by the dispatcher and `pvctl suppress`:
// `suppression.redis_url` when it is set and not empty, else `redis.url`, else `default_url`.
// (Tests: SuppressionRedisUrl.* in dispatcher/test/suppression_test.cpp.)
std::string SuppressionRedisUrl(const Config& config, std::string_view default_url);

// redis.url, read by the one parser every component uses (pv/redis_url.hpp).
using RedisAddress = pv::RedisUrl;
using pv::ParseRedisUrl;

// The Redis key and members of a check, shared with `pvctl suppress`.
std::string SuppressionKey(Channel channel);
std::string SuppressedUserMember(std::string_view project, std::string_view external_id);
// Email addresses are lower-cased (the domain is case-insensitive, and mail systems treat local parts
// so too in practice); others are used as given.
std::string SuppressedAddressMember(Channel channel, std::string_view address);

std::string SuppressionWhyKey(Channel channel);

// The recorded reason of one member: reason "unknown" and empty at/source when `json` is empty or not
// one of ours.
struct SuppressionWhy {
  std::string reason;
  std::string at;      // RFC 3339
  std::string source;  // the provider account, worker or "pvctl"
};
std::string SuppressionWhyJson(std::string_view reason, std::string_view at, std::string_view source);
SuppressionWhy ParseSuppressionWhy(std::string_view json);

// Redis commands (argv) that change suppressions atomically, shared by the feedback pipeline and pvctl:
// SuppressCommand adds `member` with its reason (the first reason stays), returns 1 when it was new;
// LiftStopCommand removes `member` only when its reason is stop (SMS START), returns 1 when it did.
std::vector<std::string> SuppressCommand(Channel channel, std::string_view member, std::string_view why_json);
std::vector<std::string> LiftStopCommand(Channel channel, std::string_view member);

enum class Suppressed { kNo, kUser, kAddress };

struct SuppressionQuery {
  Channel channel = Channel::kEmail;
  std::string_view project;
  std::string_view external_id;
  std::string_view address;
};

// A blocking client of one Redis connection; used from one thread.
class SuppressionStore {
 public:
  SuppressionStore(RedisAddress address, std::chrono::milliseconds timeout);
  ~SuppressionStore();
  SuppressionStore(const SuppressionStore&) = delete;
  SuppressionStore& operator=(const SuppressionStore&) = delete;

  // Answers every query with one pipelined round trip, (re)connecting first when needed. Returns false
  // when Redis could not answer (unreachable, timeout, error reply): `error` says why, `out` is unset.
  // `why` (when given) gets, for each query, the recorded reason of the member that matched (unset for
  // the queries not suppressed).
  bool Check(std::span<const SuppressionQuery> queries, std::vector<Suppressed>& out, std::string& error,
             std::vector<SuppressionWhy>* why = nullptr);
  // PING, (re)connecting first. For readiness and to probe before resuming.
  bool Ping(std::string& error);

 private:
  bool Connect(std::string& error);
  void Disconnect();

  RedisAddress address_;
  std::chrono::milliseconds timeout_;
  redisContext* ctx_ = nullptr;
  std::string commands_;  // Check's pipelined commands, reused
};

}  // namespace pv::dispatcher
