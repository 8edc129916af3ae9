// Claims on sends and shared rate limits, in Redis (DESIGN.md "Identity and exactly-once effect").
//
//   pv:send:<send_id> = inflight:<worker_id>   PX lease    while one worker delivers it
//                     = sent:<provider msg id> PX sent_ttl after delivery: a redelivery is `deduped`
//                     (absent)                              after a failure: a retry or replay goes through
//   pv:rate:<provider>:<s|m|h> = theoretical arrival time (GCRA), shared by every worker
//
// A claim and the provider's rate limits are decided together in one Lua script, so a send that is
// rate limited holds no claim, and a send already claimed or sent consumes no rate. A provider without
// rate limits claims with one `SET NX PX GET` (Redis 7) instead. A batch of settles and a batch of
// claims travel in one pipeline (Exchange): one round trip per batch, not per send or per kind.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pv/workers/redis.hpp"

namespace pv::workers {

// Sends per second, minute and hour; 0 means no limit on that window. Units are provider units
// (an SMS counts its segments).
struct RateLimit {
  long long per_second = 0;
  long long per_minute = 0;
  long long per_hour = 0;
  bool empty() const { return per_second <= 0 && per_minute <= 0 && per_hour <= 0; }
};

// Requests view the caller's strings (the worker's jobs), which outlive the call: a batch of them is
// built per Redis round trip, and copying every send_id was a good part of it.
struct ClaimRequest {
  std::string_view send_id;
  std::string_view provider;  // whose rate limit applies
  int cost = 1;
};

enum class ClaimStatus { kClaimed, kAlreadySent, kInFlightElsewhere, kRateLimited };

struct ClaimResult {
  ClaimStatus status = ClaimStatus::kClaimed;
  std::string detail;  // kAlreadySent: the provider message id; kInFlightElsewhere: the holder
  std::chrono::milliseconds retry_after{0};  // kRateLimited: when the limit allows it
};

struct SettleRequest {
  std::string_view send_id;
  bool sent = false;                     // true: mark sent; false: release the claim (if still ours)
  std::string_view provider_message_id;  // when sent
  // When sent and not empty: SET message_key message_value with the sent marks' TTL (the message id →
  // send record of pv/sent_message.hpp).
  std::string message_key;
  std::string message_value;
};

// What an Exchange did, each half as Settle and Claim would say it.
struct ExchangeResult {
  bool settled = true;                             // false: settle them again later
  std::optional<std::vector<ClaimResult>> claims;  // nullopt: nothing claimed
};

// The seam the worker uses (RedisDedupeStore is the one store; its tests run it against redis-server).
//
// An exchange is begun and collected: the worker's loop begins one, goes on with its transfers and
// records while the replies travel, waits on WaitOn() beside its other descriptors, and collects the
// result when it is in. A far or slow Redis then delays the sends that wait for a claim or a mark,
// not every send in flight. Several may be in flight (one connection: they are collected in the
// order they were begun); the requests' strings must outlive each.
class DedupeStore {
 public:
  virtual ~DedupeStore() = default;
  // Settles (marks sent or releases), then claims, in one round trip (Redis: one pipeline). Sends in
  // both lists are different sends. False when the store is unreachable: nothing was sent (and the
  // exchanges begun before, if its connection was lost, fail as they are collected).
  virtual bool Begin(std::span<const SettleRequest> settles, std::span<const ClaimRequest> claims) = 0;
  // Moves the oldest begun exchange on without blocking: its result once every reply is in, or once
  // it failed or ran out of time (the store's timeout; then `settled` is false and `claims` nullopt,
  // as for an unreachable store, and so for every exchange begun after it on the lost connection).
  // nullopt while its replies are still on their way, or when none is begun. `claims`: one result
  // per request, in order.
  virtual std::optional<ExchangeResult> Collect() = 0;
  // How many exchanges are begun and not yet collected.
  virtual std::size_t Pending() const = 0;
  // While Pending(): the descriptor and poll(2) events to wait for. {-1, 0} when there is nothing to
  // wait for (nothing pending, or the oldest's result is there: Collect it).
  virtual std::pair<int, short> WaitOn() const = 0;
  // Waits for the oldest begun exchange's result (the store's timeout bounds the wait).
  ExchangeResult Await();
  // Begin, then Await. Refused (as an unreachable store) while others are pending: Await would
  // return the oldest's result, not this one's.
  ExchangeResult Exchange(std::span<const SettleRequest> settles, std::span<const ClaimRequest> claims) {
    if (Pending() > 0 || !Begin(settles, claims)) return {false, std::nullopt};
    return Await();
  }
  // The halves alone. Claim: nullopt when the store is unreachable (nothing claimed). Settle: false
  // when the store is unreachable or refused one (call again later).
  std::optional<std::vector<ClaimResult>> Claim(std::span<const ClaimRequest> requests) {
    return Exchange({}, requests).claims;
  }
  bool Settle(std::span<const SettleRequest> requests) { return Exchange(requests, {}).settled; }
  // Whether the last call reached the store; callable from any thread.
  virtual bool Reachable() const = 0;
  // (Re)connects if needed and checks the store answers; false when not (yet) reachable. Not while
  // an exchange is pending (false then). Blocking: waits for the answer (the store's timeout).
  virtual bool Probe() = 0;
  // Probe as an exchange, for a loop: begun (a PING) when the store is connected and nothing else
  // is pending, then collected like any other: `settled` and an empty `claims` when it answered,
  // `settled` false and `claims` nullopt when it did not (or answered an error). False when not
  // begun (not connected: see Connecting).
  virtual bool BeginProbe() = 0;
  // A connection is being made without blocking the caller: not reachable yet, not known to be
  // down either (the worker's first probe at start).
  virtual bool Connecting() const { return false; }
};

struct RedisDedupeOptions {
  RedisClient::Options redis;
  std::string worker_id;
  std::chrono::milliseconds lease{60000};
  std::chrono::milliseconds sent_ttl{std::chrono::hours(24 * 7)};
  std::map<std::string, RateLimit> rate_limits;  // by provider name
};

class RedisDedupeStore final : public DedupeStore {
 public:
  explicit RedisDedupeStore(RedisDedupeOptions options);
  bool Begin(std::span<const SettleRequest> settles, std::span<const ClaimRequest> claims) override;
  std::optional<ExchangeResult> Collect() override;
  std::size_t Pending() const override { return exchanges_.size(); }
  std::pair<int, short> WaitOn() const override;
  bool Reachable() const override { return client_.connected(); }
  bool Probe() override;
  bool BeginProbe() override;
  bool Connecting() const override { return client_.connecting(); }

  static std::string SendKey(std::string_view send_id) { return "pv:send:" + std::string(send_id); }

 private:
  // The claim script's sha on this connection: from its setup (Options::on_connect), else loaded.
  bool LoadScripts();
  // Loads it now, a blocking round trip (a server that lost its scripts without us reconnecting).
  bool ReloadScripts();
  // The EVALSHA of a claim that takes a rate (or the plain SET when the provider has none).
  std::vector<std::string> ClaimCommand(const ClaimRequest& r, const std::string& value,
                                        const std::string& lease) const;
  // Adds the commands of `settles` to batch_.
  void AddSettles(std::span<const SettleRequest> settles);
  // Reads `claims`' replies, and runs those that met a server without the script once more.
  std::optional<std::vector<ClaimResult>> ReadClaims(std::span<const ClaimRequest> claims,
                                                     std::span<const RedisReply> replies);
  // prefix + id in a buffer kept for the next command (each is copied into batch_ at once).
  std::string_view Key(std::string_view prefix, std::string_view id);
  std::string_view Value(std::string_view prefix, std::string_view id);

  RedisDedupeOptions options_;
  const std::string claim_value_;  // inflight:<worker_id>
  const std::string lease_;        // ms
  RedisClient client_;
  std::uint64_t scripts_generation_ = 0;
  std::string claim_sha_;
  // Kept from batch to batch so that formatting a batch allocates nothing once warm.
  RedisCommands batch_;
  std::string key_;
  std::string value_;
  // The begun exchanges, oldest first (their replies come in this order).
  struct Exchanging {
    std::size_t settle_commands = 0;
    std::vector<ClaimRequest> claims;  // views, as the caller's
    std::chrono::steady_clock::time_point deadline{};
    std::optional<ExchangeResult> decided;  // a begun exchange whose result needs no reply
    bool ping = false;                      // BeginProbe's: one PING, no settle, no claim
  };
  std::deque<Exchanging> exchanges_;
  std::vector<RedisReply> replies_;  // of the oldest, as they come
  bool broken_ = false;  // the connection was lost: the exchanges left fail as they are collected
};

}  // namespace pv::workers
