// RedisDedupeStore against a real redis-server: claims, sent marks, releases that only undo our own
// claim, pipelined batches (settles and claims in one round trip), exchanges begun and collected later
// (a server that answers late, one that does not answer in time, a batch larger than the socket
// takes at once), the shared GCRA rate limit (with SMS segment costs), reconnection after the
// server restarts, and connections made in the background (the worker's: a Redis that takes no
// connection never holds its loop; the claim script comes with the connection).
#include "pv/workers/dedupe_store.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>

#include <algorithm>
#include <thread>

#include "pv/log.hpp"
#include "pv/testing/blackhole.hpp"
#include "pv/testing/redis_server.hpp"

namespace pv::workers {
namespace {

using pv::testing::RedisServer;
using namespace std::chrono_literals;

RedisDedupeOptions Options(const RedisServer& redis, const std::string& worker) {
  RedisDedupeOptions o;
  o.redis.url = redis.url();
  o.redis.timeout = 500ms;
  o.redis.reconnect_backoff = 100ms;
  o.worker_id = worker;
  o.lease = 2000ms;
  o.sent_ttl = 60000ms;
  return o;
}

class DedupeStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pv::log::SetLevel(pv::log::Level::kError); }
  RedisServer redis_;
};

TEST_F(DedupeStoreTest, ClaimSentReleaseAndAnotherWorkersClaim) {
  RedisDedupeStore a(Options(redis_, "a"));
  RedisDedupeStore b(Options(redis_, "b"));
  std::vector<ClaimRequest> batch = {{"s1", "p", 1}, {"s2", "p", 1}, {"s3", "p", 1}};
  auto r = a.Claim(batch);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3U);
  for (const auto& c : *r) EXPECT_EQ(c.status, ClaimStatus::kClaimed);
  EXPECT_EQ(redis_.Command({"GET", "pv:send:s1"}), "inflight:a");
  long long ttl = std::stoll(redis_.Command({"PTTL", "pv:send:s1"}));
  EXPECT_GT(ttl, 1000);
  EXPECT_LE(ttl, 2000);

  r = b.Claim(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kInFlightElsewhere);
  EXPECT_EQ((*r)[0].detail, "a");

  // a: s1 sent, s2 failed (released). b must not release a's claim on s3.
  std::vector<SettleRequest> settle = {{"s1", true, "msg-1", {}, {}}, {"s2", false, "", {}, {}}};
  ASSERT_TRUE(a.Settle(settle));
  std::vector<SettleRequest> foreign = {{"s3", false, "", {}, {}}};
  ASSERT_TRUE(b.Settle(foreign));
  EXPECT_EQ(redis_.Command({"GET", "pv:send:s1"}), "sent:msg-1");
  EXPECT_GT(std::stoll(redis_.Command({"PTTL", "pv:send:s1"})), 50000);
  EXPECT_EQ(redis_.Command({"EXISTS", "pv:send:s2"}), "0");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:s3"}), "inflight:a");

  r = b.Claim(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kAlreadySent);
  EXPECT_EQ((*r)[0].detail, "msg-1");
  EXPECT_EQ((*r)[1].status, ClaimStatus::kClaimed);  // the failed one goes through again
  EXPECT_EQ((*r)[2].status, ClaimStatus::kInFlightElsewhere);

  // The lease runs out when a worker dies holding a claim.
  std::this_thread::sleep_for(2100ms);
  std::vector<ClaimRequest> s3 = {{"s3", "p", 1}};
  r = b.Claim(s3);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
}

TEST_F(DedupeStoreTest, RateLimitIsSharedAndCountsCost) {
  RedisDedupeOptions oa = Options(redis_, "a");
  oa.rate_limits["sms"] = RateLimit{10, 0, 0};
  RedisDedupeOptions ob = Options(redis_, "b");
  ob.rate_limits = oa.rate_limits;
  RedisDedupeStore a(oa);
  RedisDedupeStore b(ob);
  // A burst of 10 units per second in all, whichever worker asks: 3 sends of 2 segments from a,
  // then 4 of 1 from b fill it; the next one waits about 100 ms (one unit).
  std::vector<ClaimRequest> from_a = {{"a1", "sms", 2}, {"a2", "sms", 2}, {"a3", "sms", 2}};
  auto r = a.Claim(from_a);
  ASSERT_TRUE(r);
  for (const auto& c : *r) EXPECT_EQ(c.status, ClaimStatus::kClaimed);
  std::vector<ClaimRequest> from_b = {
      {"b1", "sms", 1}, {"b2", "sms", 1}, {"b3", "sms", 1}, {"b4", "sms", 1}, {"b5", "sms", 1}};
  r = b.Claim(from_b);
  ASSERT_TRUE(r);
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*r)[static_cast<size_t>(i)].status, ClaimStatus::kClaimed) << i;
  EXPECT_EQ((*r)[4].status, ClaimStatus::kRateLimited);
  EXPECT_GT((*r)[4].retry_after.count(), 0);
  EXPECT_LE((*r)[4].retry_after.count(), 110);
  EXPECT_EQ(redis_.Command({"EXISTS", "pv:send:b5"}), "0");  // a limited send holds no claim
  // An already-claimed send costs nothing even when the limit is exhausted.
  std::vector<ClaimRequest> again = {{"a1", "sms", 2}};
  r = b.Claim(again);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kInFlightElsewhere);
  std::this_thread::sleep_for(300ms);
  std::vector<ClaimRequest> later = {{"b5", "sms", 1}, {"b6", "sms", 1}};
  r = b.Claim(later);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r)[1].status, ClaimStatus::kClaimed);
  // A cost above the whole window's capacity is capped, not refused forever.
  std::this_thread::sleep_for(1100ms);
  std::vector<ClaimRequest> huge = {{"h1", "sms", 50}};
  r = a.Claim(huge);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
}

TEST_F(DedupeStoreTest, HourlyWindowsAndUnlimitedProviders) {
  RedisDedupeOptions o = Options(redis_, "a");
  o.rate_limits["mail"] = RateLimit{0, 0, 3};
  RedisDedupeStore store(o);
  std::vector<ClaimRequest> batch = {
      {"m1", "mail", 1}, {"m2", "mail", 1}, {"m3", "mail", 1}, {"m4", "mail", 1}, {"x1", "other", 1}};
  auto r = store.Claim(batch);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[2].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r)[3].status, ClaimStatus::kRateLimited);
  EXPECT_GT((*r)[3].retry_after, std::chrono::milliseconds(1000LL * 60 * 19));  // one unit of 3/h: 20 min
  EXPECT_EQ((*r)[4].status, ClaimStatus::kClaimed);
}

TEST_F(DedupeStoreTest, UnreachableThenBackAfterARestart) {
  RedisDedupeOptions o = Options(redis_, "a");
  o.rate_limits["rl"] = RateLimit{1000, 0, 0};  // its claims go through the script; "p"'s are a SET
  RedisDedupeStore store(o);
  std::vector<ClaimRequest> one = {{"r1", "p", 1}};
  ASSERT_TRUE(store.Claim(one));
  EXPECT_TRUE(store.Reachable());
  redis_.Stop();
  std::vector<ClaimRequest> two = {{"r2", "rl", 1}};
  EXPECT_FALSE(store.Claim(two).has_value());
  EXPECT_FALSE(store.Reachable());
  std::vector<SettleRequest> s = {{"r1", true, "m", {}, {}}};
  EXPECT_FALSE(store.Settle(s));
  EXPECT_FALSE(store.Probe());
  redis_.Start();
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.Probe(); }, 5s));
  auto r = store.Claim(two);  // scripts are loaded again on the new connection
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
  EXPECT_TRUE(store.Settle(s));
  EXPECT_EQ(redis_.Command({"GET", "pv:send:r1"}), "sent:m");
  // A server that lost its script cache without us reconnecting (SCRIPT FLUSH): reloaded once.
  redis_.Command({"SCRIPT", "FLUSH"});
  std::vector<ClaimRequest> three = {{"r3", "rl", 1}, {"r4", "p", 1}, {"r2", "rl", 1}, {"r1", "p", 1}};
  r = store.Claim(three);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r)[1].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r)[2].status, ClaimStatus::kInFlightElsewhere);  // ours, from before the flush
  EXPECT_EQ((*r)[3].status, ClaimStatus::kAlreadySent);
  EXPECT_EQ((*r)[3].detail, "m");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:r3"}), "inflight:a");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:r4"}), "inflight:a");
}

// Redis' count of read events (one per round trip of a small pipeline on loopback, one per
// connection closed).
long long ReadsProcessed(RedisServer& redis) {
  std::string info = redis.Command({"INFO", "stats"});
  auto at = info.find("total_reads_processed:");
  if (at == std::string::npos) return -1;
  return std::stoll(info.substr(at + std::string("total_reads_processed:").size()));
}

TEST_F(DedupeStoreTest, AnExchangeSettlesThenClaimsInOneRoundTrip) {
  RedisDedupeOptions o = Options(redis_, "a");
  o.rate_limits["rl"] = RateLimit{1000, 0, 0};  // its claims go through the script; "p"'s are a SET
  RedisDedupeStore store(o);
  std::vector<ClaimRequest> first = {{"x1", "p", 1}, {"x2", "rl", 1}};
  ASSERT_TRUE(store.Claim(first));

  std::vector<SettleRequest> settles = {{"x1", true, "m1", "pv:msg:m1", "record"}, {"x2", false, "", {}, {}}};
  std::vector<ClaimRequest> claims = {{"x3", "p", 1}, {"x4", "rl", 1}, {"x1", "p", 1}};
  // What reading the count costs (the helper's own connection), then what the exchange adds to it.
  long long base0 = ReadsProcessed(redis_);
  long long base1 = ReadsProcessed(redis_);
  ExchangeResult r = store.Exchange(settles, claims);
  long long after = ReadsProcessed(redis_);
  EXPECT_EQ((after - base1) - (base1 - base0), 1) << "the exchange took more than one round trip";
  EXPECT_TRUE(r.settled);
  ASSERT_TRUE(r.claims);
  ASSERT_EQ(r.claims->size(), 3U);
  EXPECT_EQ((*r.claims)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r.claims)[1].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r.claims)[2].status, ClaimStatus::kAlreadySent);  // the settles ran first
  EXPECT_EQ((*r.claims)[2].detail, "m1");
  EXPECT_EQ(redis_.Command({"GET", "pv:msg:m1"}), "record");
  EXPECT_EQ(redis_.Command({"EXISTS", "pv:send:x2"}), "0");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:x4"}), "inflight:a");

  // A settle the server refuses (a key of another type) is reported without spoiling the claims beside it.
  redis_.Command({"HSET", "pv:send:x9", "f", "v"});
  std::vector<SettleRequest> refused = {{"x9", false, "", {}, {}}};
  std::vector<ClaimRequest> more = {{"x5", "p", 1}};
  r = store.Exchange(refused, more);
  EXPECT_FALSE(r.settled);
  ASSERT_TRUE(r.claims);
  EXPECT_EQ((*r.claims)[0].status, ClaimStatus::kClaimed);

  // A server that lost its scripts: the script's claims run once more, the settles and plain claims
  // do not (a second SET NX would read our own claim as another worker's).
  redis_.Command({"SCRIPT", "FLUSH"});
  std::vector<SettleRequest> sent = {{"x3", true, "m3", {}, {}}};
  std::vector<ClaimRequest> after_flush = {{"x6", "rl", 1}, {"x7", "p", 1}};
  r = store.Exchange(sent, after_flush);
  EXPECT_TRUE(r.settled);
  ASSERT_TRUE(r.claims);
  EXPECT_EQ((*r.claims)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r.claims)[1].status, ClaimStatus::kClaimed);
  EXPECT_EQ(redis_.Command({"GET", "pv:send:x3"}), "sent:m3");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:x6"}), "inflight:a");

  // Unreachable: nothing settled, nothing claimed.
  redis_.Stop();
  r = store.Exchange(sent, after_flush);
  EXPECT_FALSE(r.settled);
  EXPECT_FALSE(r.claims.has_value());
}

// Collects the begun exchange, waiting on what the store says to wait on; nullopt after `limit`.
std::optional<ExchangeResult> CollectWithin(DedupeStore& store, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (auto r = store.Collect()) return r;
    auto [fd, events] = store.WaitOn();
    pollfd p{fd, events, 0};
    ::poll(&p, 1, 10);
  }
  return std::nullopt;
}

TEST_F(DedupeStoreTest, ABegunExchangeReturnsAtOnceAndIsCollectedWhenTheServerAnswers) {
  RedisDedupeStore store(Options(redis_, "a"));  // timeout 500 ms
  ASSERT_TRUE(store.Probe());
  EXPECT_FALSE(store.Pending());
  EXPECT_EQ(store.WaitOn().first, -1);
  // The server holds every write command for 300 ms: the claims' SETs wait there.
  ASSERT_EQ(redis_.Command({"CLIENT", "PAUSE", "300", "WRITE"}), "OK");
  std::vector<SettleRequest> settles = {{"b0", true, "m0", {}, {}}};
  std::vector<ClaimRequest> claims = {{"b1", "p", 1}, {"b2", "p", 1}};
  auto begun = std::chrono::steady_clock::now();
  ASSERT_TRUE(store.Begin(settles, claims));
  EXPECT_LT(std::chrono::steady_clock::now() - begun, 100ms) << "Begin waited for the server";
  EXPECT_TRUE(store.Pending());
  EXPECT_FALSE(store.Collect().has_value()) << "collected before the server could answer";
  auto [fd, events] = store.WaitOn();
  EXPECT_GE(fd, 0);
  EXPECT_NE(events & POLLIN, 0);
  // A second exchange goes out behind it (one claim it shares: the first claims it, the second finds
  // it ours); no probe on the connection they wait on.
  std::vector<ClaimRequest> behind = {{"b3", "p", 1}, {"b1", "p", 1}};
  ASSERT_TRUE(store.Begin({}, behind));
  EXPECT_EQ(store.Pending(), 2U);
  EXPECT_FALSE(store.Probe());
  // A blocking exchange would be answered the oldest's result: refused while these wait.
  EXPECT_FALSE(store.Exchange({}, behind).claims.has_value());
  EXPECT_EQ(store.Pending(), 2U);
  std::optional<ExchangeResult> r = CollectWithin(store, 2s);
  auto took = std::chrono::steady_clock::now() - begun;
  ASSERT_TRUE(r.has_value());
  EXPECT_GE(took, 250ms) << "the pause did not hold the exchange: this test tested nothing";
  EXPECT_TRUE(r->settled);
  ASSERT_TRUE(r->claims);
  ASSERT_EQ(r->claims->size(), 2U);
  EXPECT_EQ((*r->claims)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*r->claims)[1].status, ClaimStatus::kClaimed);
  EXPECT_EQ(store.Pending(), 1U);
  std::optional<ExchangeResult> second = CollectWithin(store, 2s);
  ASSERT_TRUE(second.has_value());
  ASSERT_TRUE(second->claims);
  ASSERT_EQ(second->claims->size(), 2U);
  EXPECT_EQ((*second->claims)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((*second->claims)[1].status, ClaimStatus::kInFlightElsewhere);  // the first's claim
  EXPECT_EQ((*second->claims)[1].detail, "a");
  EXPECT_FALSE(store.Pending());
  EXPECT_EQ(store.WaitOn().first, -1);
  EXPECT_EQ(redis_.Command({"GET", "pv:send:b0"}), "sent:m0");
  EXPECT_EQ(redis_.Command({"GET", "pv:send:b2"}), "inflight:a");
  EXPECT_TRUE(store.Probe());

  // An empty exchange needs no server: its result is there at once.
  ASSERT_TRUE(store.Begin({}, {}));
  r = store.Collect();
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->settled);
  EXPECT_TRUE(r->claims.has_value() && r->claims->empty());
}

TEST_F(DedupeStoreTest, AnExchangeUnansweredWithinTheTimeoutFailsAndTheNextReconnects) {
  RedisDedupeStore store(Options(redis_, "a"));  // timeout 500 ms, reconnect backoff 100 ms
  ASSERT_TRUE(store.Probe());
  ASSERT_EQ(redis_.Command({"CLIENT", "PAUSE", "1500", "WRITE"}), "OK");
  std::vector<ClaimRequest> claims = {{"t1", "p", 1}};
  std::vector<SettleRequest> settles = {{"t0", true, "m0", {}, {}}};
  auto begun = std::chrono::steady_clock::now();
  ASSERT_TRUE(store.Begin({}, claims));
  ASSERT_TRUE(store.Begin(settles, {}));  // behind it on the same connection
  std::optional<ExchangeResult> r = CollectWithin(store, 3s);
  auto took = std::chrono::steady_clock::now() - begun;
  ASSERT_TRUE(r.has_value()) << "never gave up";
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 1200ms) << "waited past its timeout";
  EXPECT_FALSE(r->settled);
  EXPECT_FALSE(r->claims.has_value());
  EXPECT_FALSE(store.Reachable());
  // The one behind it was on the lost connection: it fails at once, and nothing begins meanwhile.
  EXPECT_FALSE(store.Begin({}, claims));
  r = store.Collect();
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->settled);
  EXPECT_FALSE(store.Pending());
  ASSERT_EQ(redis_.Command({"CLIENT", "UNPAUSE"}), "OK");
  // The next call connects anew.
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.Probe(); }, 5s));
  std::vector<ClaimRequest> next = {{"t2", "p", 1}};
  auto again = store.Claim(next);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[0].status, ClaimStatus::kClaimed);
  EXPECT_TRUE(store.Reachable());
}

TEST_F(DedupeStoreTest, ABatchLargerThanTheSocketTakesIsWrittenAsTheServerReadsIt) {
  RedisDedupeStore store(Options(redis_, "a"));
  ASSERT_TRUE(store.Probe());
  // 6,000 claims of 2 KiB ids: ~12 MB, more than a loopback socket takes at once.
  std::vector<std::string> ids;
  for (int i = 0; i < 6000; ++i) ids.push_back(fmt::format("{:04}{}", i, std::string(2048, 'x')));
  std::vector<ClaimRequest> claims;
  for (const auto& id : ids) claims.push_back({id, "p", 1});
  ASSERT_TRUE(store.Begin({}, claims));
  EXPECT_NE(store.WaitOn().second & POLLOUT, 0) << "the whole batch fit at once: the partial write went untested";
  std::optional<ExchangeResult> r = CollectWithin(store, 20s);
  ASSERT_TRUE(r.has_value());
  ASSERT_TRUE(r->claims);
  ASSERT_EQ(r->claims->size(), claims.size());
  for (const auto& c : *r->claims) ASSERT_EQ(c.status, ClaimStatus::kClaimed);
  EXPECT_EQ(redis_.Command({"GET", "pv:send:" + ids.back()}), "inflight:a");
}

TEST_F(DedupeStoreTest, ConnectingInTheBackgroundAStoreThatTakesNoConnectionNeverHoldsTheCaller) {
  pv::testing::Blackhole hole;
  RedisDedupeOptions o = Options(redis_, "a");  // timeout 500 ms, reconnect backoff 100 ms
  o.redis.url = hole.url();
  o.redis.connect_in_background = true;
  o.redis.connect_wait = 20ms;
  RedisDedupeStore store(o);
  std::vector<ClaimRequest> one = {{"b1", "p", 1}};
  auto longest = std::chrono::steady_clock::duration::zero();
  bool seen_connecting = false;
  bool seen_down = false;
  auto until = std::chrono::steady_clock::now() + 1300ms;  // two attempts and a backoff
  for (int i = 0; i < 10000 && std::chrono::steady_clock::now() < until; ++i) {
    auto started = std::chrono::steady_clock::now();
    EXPECT_FALSE(store.Begin({}, one));
    EXPECT_FALSE(store.Probe());
    longest = std::max(longest, std::chrono::steady_clock::now() - started);
    seen_connecting = seen_connecting || store.Connecting();
    seen_down = seen_down || !store.Connecting();
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_LT(longest, 200ms) << "a call waited for the connect (its timeout: 500 ms)";
  EXPECT_TRUE(seen_connecting);
  EXPECT_TRUE(seen_down) << "no attempt ended";
  EXPECT_FALSE(store.Reachable());
  EXPECT_EQ(store.Pending(), 0u);
}

TEST_F(DedupeStoreTest, ConnectedInTheBackgroundTheClaimScriptComesWithTheConnection) {
  RedisDedupeOptions o = Options(redis_, "a");
  o.rate_limits["rl"] = RateLimit{1000, 0, 0};
  o.redis.connect_in_background = true;
  RedisDedupeStore store(o);
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.Probe(); }, 5s));
  EXPECT_FALSE(store.Connecting());
  // The first claim through the script is one round trip: the connection's setup loaded it.
  std::vector<ClaimRequest> first = {{"g1", "rl", 1}};
  long long base0 = ReadsProcessed(redis_);
  long long base1 = ReadsProcessed(redis_);
  auto r = store.Claim(first);
  long long after = ReadsProcessed(redis_);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ((after - base1) - (base1 - base0), 1) << "the claim loaded its script itself";
  // A restart: the new connection loads it again, in the background.
  redis_.Stop();
  std::vector<ClaimRequest> second = {{"g2", "rl", 1}};
  EXPECT_FALSE(store.Claim(second).has_value());
  redis_.Start();
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.Probe(); }, 5s));
  r = store.Claim(second);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)[0].status, ClaimStatus::kClaimed);
  EXPECT_EQ(redis_.Command({"GET", "pv:send:g2"}), "inflight:a");
}

TEST_F(DedupeStoreTest, AProbeIsAnExchangeThatNeverHoldsTheCaller) {
  RedisDedupeStore store(Options(redis_, "a"));  // timeout 500 ms
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.BeginProbe(); }, 5s));
  EXPECT_FALSE(store.BeginProbe()) << "a second while one is pending";
  std::optional<ExchangeResult> r = CollectWithin(store, 3s);
  ASSERT_TRUE(r.has_value());
  EXPECT_TRUE(r->settled);
  ASSERT_TRUE(r->claims.has_value());
  EXPECT_TRUE(r->claims->empty());
  // A Redis that stopped answering: begun at once, failed at its timeout, and the next claim
  // connects anew.
  redis_.Signal(SIGSTOP);
  auto begun = std::chrono::steady_clock::now();
  ASSERT_TRUE(store.BeginProbe());
  EXPECT_LT(std::chrono::steady_clock::now() - begun, 100ms);
  std::vector<ClaimRequest> claims = {{"p1", "p", 1}};
  ASSERT_TRUE(store.Begin({}, claims));  // behind it, on the same connection
  r = CollectWithin(store, 3s);
  redis_.Signal(SIGCONT);
  ASSERT_TRUE(r.has_value());
  EXPECT_GE(std::chrono::steady_clock::now() - begun, 450ms);
  EXPECT_FALSE(r->settled);
  EXPECT_FALSE(r->claims.has_value());
  r = CollectWithin(store, 1s);  // the claim behind it fails with the connection
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->claims.has_value());
  EXPECT_FALSE(store.Reachable());
  ASSERT_TRUE(pv::testing::WaitFor([&] { return store.Probe(); }, 5s));
  // (The thawed server ran what the lost connection had sent: p1's claim is held, by us, until its
  // lease ends, as for any exchange lost in flight.)
  std::vector<ClaimRequest> next = {{"p2", "p", 1}};
  auto again = store.Claim(next);
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)[0].status, ClaimStatus::kClaimed);
}

}  // namespace
}  // namespace pv::workers
