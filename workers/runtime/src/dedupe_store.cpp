#include "pv/workers/dedupe_store.hpp"

#include <fmt/format.h>
#include <poll.h>

#include "pv/log.hpp"
#include "pv/strings.hpp"

namespace pv::workers {
namespace {

// KEYS[1] = pv:send:<id>; KEYS[2..] = the provider's rate keys.
// ARGV[1] = claim value, ARGV[2] = lease ms, ARGV[3] = cost, then per rate key: interval_us, period_us.
// Returns {0, existing value} | {1, ""} (claimed) | {2, wait ms} (rate limited, nothing changed).
//
// GCRA: a window of `period` admits period/interval units. The key holds the theoretical arrival
// time (TAT) of the next unit; a send of `cost` units is admitted when TAT + cost*interval - period
// is not in the future. Every limit of the provider must admit it, or none is updated. Time comes
// from the server (TIME), so workers' clocks do not matter.
constexpr const char* kClaimScript = R"lua(
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local n = #KEYS - 1
if n > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local cost = tonumber(ARGV[3])
  local wait = 0
  local tats = {}
  for i = 1, n do
    local interval = tonumber(ARGV[2 + 2 * i])
    local period = tonumber(ARGV[3 + 2 * i])
    local c = math.min(cost, math.floor(period / interval))
    local tat = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
    if tat < now then tat = now end
    local new_tat = tat + interval * c
    local allow_at = new_tat - period
    if allow_at > now and allow_at - now > wait then wait = allow_at - now end
    tats[i] = new_tat
  end
  if wait > 0 then return {2, tostring(math.ceil(wait / 1000))} end
  for i = 1, n do
    redis.call('SET', KEYS[1 + i], string.format('%d', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000) + 1)
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, ''}
)lua";

// Deletes the claim only while it is still ours: after our lease expired another worker may hold it.
constexpr const char* kReleaseScript = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)lua";

struct Window {
  const char* suffix;
  long long period_us;
};
constexpr Window kWindows[] = {{"s", 1'000'000LL}, {"m", 60'000'000LL}, {"h", 3'600'000'000LL}};

}  // namespace

ExchangeResult DedupeStore::Await() {
  while (Pending()) {
    if (std::optional<ExchangeResult> result = Collect()) return std::move(*result);
    auto [fd, events] = WaitOn();
    pollfd p{fd, events, 0};
    ::poll(&p, 1, 50);  // Collect ends it at the store's deadline
  }
  return {false, std::nullopt};  // nothing was begun
}

namespace {

// The claim script is loaded by every new connection's setup (in the background when the client
// connects so): no round trip of its own before the first claim.
RedisClient::Options WithScripts(RedisClient::Options options) {
  options.on_connect = {{"SCRIPT", "LOAD", kClaimScript}};
  return options;
}

}  // namespace

RedisDedupeStore::RedisDedupeStore(RedisDedupeOptions options)
    : options_(std::move(options)),
      claim_value_("inflight:" + options_.worker_id),
      lease_(std::to_string(options_.lease.count())),
      client_(WithScripts(options_.redis)) {}

std::string_view RedisDedupeStore::Key(std::string_view prefix, std::string_view id) {
  key_.assign(prefix);
  key_ += id;
  return key_;
}

std::string_view RedisDedupeStore::Value(std::string_view prefix, std::string_view id) {
  value_.assign(prefix);
  value_ += id;
  return value_;
}

bool RedisDedupeStore::LoadScripts() {
  if (scripts_generation_ == client_.generation() && !claim_sha_.empty()) return true;
  // The connection's setup loaded it (an error reply would have failed the connection).
  const std::vector<RedisReply>& setup = client_.setup_replies();
  if (setup.size() != 1 || setup[0].type != RedisReply::Type::kString) return ReloadScripts();
  claim_sha_ = setup[0].str;
  scripts_generation_ = client_.generation();
  return true;
}

bool RedisDedupeStore::ReloadScripts() {
  auto replies = client_.Pipeline({{"SCRIPT", "LOAD", kClaimScript}});
  if (!replies) return false;
  if ((*replies)[0].IsError()) {
    pv::log::Error("redis_script_load_failed", {{"error", (*replies)[0].str}});
    return false;
  }
  claim_sha_ = (*replies)[0].str;
  scripts_generation_ = client_.generation();
  return true;
}

std::vector<std::string> RedisDedupeStore::ClaimCommand(const ClaimRequest& r, const std::string& value,
                                                        const std::string& lease) const {
  auto it = options_.rate_limits.find(std::string(r.provider));
  if (it == options_.rate_limits.end() || it->second.empty()) {
    return {"SET", SendKey(r.send_id), value, "NX", "PX", lease, "GET"};  // see Claim
  }
  std::vector<std::string> cmd = {"EVALSHA", claim_sha_, "1", SendKey(r.send_id)};
  std::vector<std::string> args = {value, lease, std::to_string(std::max(1, r.cost))};
  const long long limits[] = {it->second.per_second, it->second.per_minute, it->second.per_hour};
  for (int i = 0; i < 3; ++i) {
    if (limits[i] <= 0) continue;
    cmd.push_back(fmt::format("pv:rate:{}:{}", r.provider, kWindows[i].suffix));
    args.push_back(std::to_string(std::max(1LL, kWindows[i].period_us / limits[i])));
    args.push_back(std::to_string(kWindows[i].period_us));
  }
  cmd[2] = std::to_string(cmd.size() - 3);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

namespace {

// A claim's reply: SET NX GET's (nil: claimed; a string: the value already there) or the script's
// ({1, ""} claimed, {2, wait ms} rate limited, {0, value there}). nullopt for anything else.
std::optional<ClaimResult> ReadClaim(const RedisReply& r) {
  ClaimResult c;
  std::string_view existing;
  if (r.type == RedisReply::Type::kNil) return c;
  if (r.type == RedisReply::Type::kString) {
    existing = r.str;
  } else if (r.type == RedisReply::Type::kArray && r.elements.size() == 2) {
    long long code = r.elements[0].integer;
    const std::string& detail = r.elements[1].str;
    if (code == 1) return c;
    if (code == 2) {
      c.status = ClaimStatus::kRateLimited;
      // The script writes the wait in ms; anything else (a foreign script, a damaged value) waits 1 ms.
      long long wait_ms = 1;
      if (!ParseNumber(detail, wait_ms) || wait_ms < 0) wait_ms = 1;
      c.retry_after = std::chrono::milliseconds(wait_ms);
      return c;
    }
    existing = detail;
  } else {
    return std::nullopt;
  }
  if (existing.rfind("sent:", 0) == 0) {
    c.status = ClaimStatus::kAlreadySent;
    c.detail = existing.substr(5);
  } else {
    c.status = ClaimStatus::kInFlightElsewhere;
    c.detail = existing.rfind("inflight:", 0) == 0 ? existing.substr(9) : existing;
  }
  return c;
}

}  // namespace

void RedisDedupeStore::AddSettles(std::span<const SettleRequest> settles) {
  const std::string ttl = std::to_string(options_.sent_ttl.count());
  for (const auto& r : settles) {
    if (r.sent) {
      // Unconditional: the delivery happened, whoever holds the claim now. (Releases are rare and
      // use EVAL: the server caches the script by its hash anyway.)
      std::string_view key = Key("pv:send:", r.send_id);
      batch_.Add({"SET", key, Value("sent:", r.provider_message_id), "PX", ttl});
      if (!r.message_key.empty()) batch_.Add({"SET", r.message_key, r.message_value, "PX", ttl});
    } else {
      batch_.Add({"EVAL", kReleaseScript, "1", Key("pv:send:", r.send_id), claim_value_});
    }
  }
}

bool RedisDedupeStore::Begin(std::span<const SettleRequest> settles, std::span<const ClaimRequest> claims) {
  if (broken_) return false;  // the exchanges of a lost connection are still being failed
  Exchanging e;
  e.claims.assign(claims.begin(), claims.end());
  if (settles.empty() && claims.empty()) {
    e.decided.emplace();
    e.decided->claims.emplace();
    exchanges_.push_back(std::move(e));
    return true;
  }
  // A new connection's scripts are loaded before its first exchange (a blocking round trip, once).
  if (exchanges_.empty() && (!client_.EnsureConnected() || !LoadScripts())) return false;
  if (!client_.connected()) return false;
  batch_.clear();
  AddSettles(settles);
  e.settle_commands = batch_.size();
  for (const auto& r : claims) {
    auto it = options_.rate_limits.find(std::string(r.provider));
    if (it == options_.rate_limits.end() || it->second.empty()) {
      // No rate to take: one plain command (Redis 7), half the server's CPU of the script's GET + SET.
      batch_.Add({"SET", Key("pv:send:", r.send_id), claim_value_, "NX", "PX", lease_, "GET"});
    } else {
      batch_.Add(ClaimCommand(r, claim_value_, lease_));
    }
  }
  if (!client_.Send(batch_)) {
    broken_ = !exchanges_.empty();  // those before it fail too: their replies will not come
    return false;
  }
  e.deadline = std::chrono::steady_clock::now() + options_.redis.timeout;
  exchanges_.push_back(std::move(e));
  return true;
}

std::pair<int, short> RedisDedupeStore::WaitOn() const {
  if (exchanges_.empty() || exchanges_.front().decided || broken_) return {-1, 0};
  return {client_.fd(), static_cast<short>(POLLIN | (client_.WantsWrite() ? POLLOUT : 0))};
}

std::optional<ExchangeResult> RedisDedupeStore::Collect() {
  if (exchanges_.empty()) return std::nullopt;
  Exchanging& e = exchanges_.front();
  auto finish = [&](ExchangeResult result) {
    exchanges_.pop_front();
    replies_.clear();
    if (exchanges_.empty()) broken_ = false;
    return std::make_optional(std::move(result));
  };
  if (e.decided) return finish(std::move(*e.decided));
  if (broken_) return finish({false, std::nullopt});
  const std::size_t commands = e.settle_commands + e.claims.size() + (e.ping ? 1 : 0);
  bool alive = client_.Receive(replies_, commands);
  if (alive && replies_.size() < commands) {
    if (std::chrono::steady_clock::now() < e.deadline) return std::nullopt;
    client_.Drop(fmt::format("no reply within {} ms", options_.redis.timeout.count()));
    alive = false;
  }
  if (!alive) {
    broken_ = true;  // every exchange behind this one fails with it
    return finish({false, std::nullopt});
  }
  if (e.ping) {
    // An error (LOADING, a server not ours) is a store that cannot take claims.
    if (replies_[0].IsError()) return finish({false, std::nullopt});
    return finish({true, std::vector<ClaimResult>{}});
  }
  ExchangeResult result;
  std::span<const RedisReply> all(replies_);
  for (const auto& r : all.first(e.settle_commands)) {
    if (r.IsError()) {
      pv::log::Error("redis_settle_failed", {{"error", r.str}});
      result.settled = false;
      break;
    }
  }
  result.claims = e.claims.empty() ? std::make_optional<std::vector<ClaimResult>>()
                                   : ReadClaims(e.claims, all.subspan(e.settle_commands));
  return finish(std::move(result));
}

std::optional<std::vector<ClaimResult>> RedisDedupeStore::ReadClaims(std::span<const ClaimRequest> claims,
                                                                     std::span<const RedisReply> replies) {
  std::vector<ClaimResult> out(claims.size());
  // Reads the replies to the commands whose indexes `index(k)` gives into `out`; false when one is
  // not a claim's. Commands that met a server without the script (restart, SCRIPT FLUSH, without
  // us reconnecting) are left in `noscript`.
  std::vector<size_t> noscript;
  auto read = [&](std::span<const RedisReply> got, const auto& index) {
    for (size_t k = 0; k < got.size(); ++k) {
      const RedisReply& r = got[k];
      if (r.IsError() && r.str.rfind("NOSCRIPT", 0) == 0) {
        noscript.push_back(index(k));
        continue;
      }
      if (r.IsError()) {
        // A script error is a bug or a broken server: treat the store as unavailable, claim nothing.
        pv::log::Error("redis_claim_failed", {{"error", r.str}});
        return false;
      }
      auto c = ReadClaim(r);
      if (!c) return false;
      out[index(k)] = std::move(*c);
    }
    return true;
  };
  if (replies.size() != claims.size() || !read(replies, [](size_t k) { return k; })) return std::nullopt;
  if (noscript.empty()) return out;
  // The script loaded again, only its commands run once more: the batch's plain claims ran, and a
  // second run would read our own claim as another worker's.
  if (exchanges_.size() > 1) {
    // Exchanges behind this one wait on the connection: no round trip can go before them. Start
    // afresh: every exchange on it fails (their sends are claimed again; this batch's plain claims,
    // which ran, then read as another worker's and retry after their lease: a rare case, a server
    // that lost its scripts without losing the connection).
    pv::log::Warn("redis_scripts_lost", {{"action", "reconnecting; the exchanges in flight are retried"}});
    client_.Drop("the server lost its scripts");
    broken_ = true;
    return std::nullopt;
  }
  if (!ReloadScripts()) return std::nullopt;
  const std::vector<size_t> retried = std::move(noscript);
  noscript.clear();
  batch_.clear();
  for (size_t i : retried) batch_.Add(ClaimCommand(claims[i], claim_value_, lease_));  // the new sha
  auto again = client_.Pipeline(batch_);
  if (!again || again->size() != retried.size() ||
      !read(*again, [&](size_t k) { return retried[k]; }) || !noscript.empty())
    return std::nullopt;
  return out;
}

bool RedisDedupeStore::BeginProbe() {
  if (broken_ || !exchanges_.empty()) return false;  // those ask it already
  if (!client_.EnsureConnected() || !LoadScripts()) return false;
  batch_.clear();
  batch_.Add({"PING"});
  if (!client_.Send(batch_)) return false;
  Exchanging e;
  e.ping = true;
  e.deadline = std::chrono::steady_clock::now() + options_.redis.timeout;
  exchanges_.push_back(std::move(e));
  return true;
}

bool RedisDedupeStore::Probe() {
  if (!exchanges_.empty()) return false;
  auto replies = client_.Pipeline({{"PING"}});
  return replies && !(*replies)[0].IsError();
}

}  // namespace pv::workers
