// RedisClient against a server that answers more than any reply of ours needs: a peer on loopback
// that reads one request and writes a canned answer (a Redis gone wrong, or something else on the
// port). The reply limit drops the connection instead of reading without end; replies under it pass.
// And a server that takes no connection (a listener whose queue is full drops the SYN, as a host gone
// does): a client connecting in the background never holds its caller for the connect timeout.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

#include "pv/redis_client.hpp"
#include "pv/testing/blackhole.hpp"
#include "pv/testing/canned_peer.hpp"

namespace {

using namespace std::chrono_literals;

using CannedServer = pv::testing::CannedPeer;  // answers, then keeps the connection open

pv::RedisClient::Options Limited(const std::string& url, std::size_t limit) {
  pv::RedisClient::Options o;
  o.url = url;
  o.timeout = 3000ms;
  o.reconnect_backoff = 0ms;
  o.max_reply_bytes = limit;
  return o;
}

std::string Bulk(size_t n) {
  return "$" + std::to_string(n) + "\r\n" + std::string(n, 'x') + "\r\n";
}

TEST(RedisClientTest, AReplyUnderTheLimitIsRead) {
  CannedServer server(Bulk(512 * 1024));
  pv::RedisClient client(Limited(server.url(), 1 << 20));
  auto replies = client.Pipeline({{"GET", "k"}});
  ASSERT_TRUE(replies.has_value()) << client.last_error();
  ASSERT_EQ(replies->size(), 1U);
  EXPECT_EQ((*replies)[0].str.size(), 512U * 1024);
}

TEST(RedisClientTest, ABulkStringPastTheLimitDropsTheConnection) {
  CannedServer server(Bulk(8 << 20));  // read whole (8 MiB) before the limit
  pv::RedisClient client(Limited(server.url(), 1 << 20));
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(client.Pipeline({{"GET", "k"}}).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s) << "waited for the reply's end";
  EXPECT_EQ(client.last_error(), "a reply larger than 1048576 bytes");
  EXPECT_FALSE(client.connected());
}

TEST(RedisClientTest, AnArrayPastTheLimitDropsTheConnectionWhenReceived) {
  // 300,000 small elements (1.2 MB; a count a reply under 1 MiB could still have): each would become
  // a reply object of its own. Refused by its bytes as they come.
  std::string answer = "*300000\r\n";
  for (int i = 0; i < 300000; ++i) answer += ":1\r\n";
  CannedServer server(answer);
  pv::RedisClient client(Limited(server.url(), 1 << 20));
  pv::RedisCommands commands;
  commands.Add({"SMEMBERS", "k"});
  ASSERT_TRUE(client.Send(commands));
  std::vector<pv::RedisReply> replies;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  bool ok = true;
  while (ok && replies.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{client.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    ok = client.Receive(replies, 1);
  }
  EXPECT_FALSE(ok);
  EXPECT_TRUE(replies.empty());
  EXPECT_EQ(client.last_error(), "a reply larger than 1048576 bytes");
}

TEST(RedisClientTest, AnArrayCountNoReplyUnderTheLimitCouldHaveIsRefusedBeforeItsElements) {
  // hiredis allocates an array's element table when it reads the count: 2^31 - 1 elements is 16 GiB.
  CannedServer server("*2147483647\r\n:1\r\n");
  pv::RedisClient client(Limited(server.url(), 1 << 20));
  EXPECT_FALSE(client.Pipeline({{"SMEMBERS", "k"}}).has_value());
  EXPECT_EQ(client.last_error(), "a reply larger than 1048576 bytes (an array's count)");
}

TEST(RedisClientTest, TheLimitCountsOneReplyAtATime) {
  // Three replies of 600 KiB in one batch: 1.8 MB in all, each under the 1 MiB limit.
  CannedServer server(Bulk(600 * 1024) + Bulk(600 * 1024) + Bulk(600 * 1024));
  pv::RedisClient client(Limited(server.url(), 1 << 20));
  auto replies = client.Pipeline({{"GET", "a"}, {"GET", "b"}, {"GET", "c"}});
  ASSERT_TRUE(replies.has_value()) << client.last_error();
  ASSERT_EQ(replies->size(), 3U);
  for (const auto& r : *replies) EXPECT_EQ(r.str.size(), 600U * 1024);
}

TEST(RedisClientTest, AServerThatDoesNotAnswerTimesOut) {
  CannedServer server("");  // reads the request, answers nothing
  pv::RedisClient::Options o = Limited(server.url(), 1 << 20);
  o.timeout = 300ms;
  pv::RedisClient client(o);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(client.Pipeline({{"GET", "k"}}).has_value());
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(client.last_error(), "no reply within 300 ms");
}


using pv::testing::Blackhole;

TEST(RedisClientTest, ABlockingConnectToAServerThatTakesNoConnectionWaitsForItsTimeout) {
  // What the background connect spares its caller (and proof that the blackhole holds a connect).
  Blackhole hole;
  pv::RedisClient::Options o = Limited(hole.url(), 1 << 20);
  o.timeout = 400ms;
  pv::RedisClient client(o);
  auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(client.EnsureConnected());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 350ms);
}

TEST(RedisClientTest, ABackgroundConnectNeverHoldsItsCaller) {
  Blackhole hole;
  pv::RedisClient::Options o = Limited(hole.url(), 1 << 20);
  o.timeout = 400ms;
  o.reconnect_backoff = 100ms;
  o.connect_in_background = true;
  o.connect_wait = 20ms;
  pv::RedisClient client(o);
  // Over two attempts' timeouts and a backoff: every call returns within the connect wait (and a
  // scheduler's hiccup), none connects.
  auto longest = std::chrono::steady_clock::duration::zero();
  bool seen_connecting = false;
  bool seen_failed = false;
  auto until = std::chrono::steady_clock::now() + 1200ms;
  for (int i = 0; i < 10000 && std::chrono::steady_clock::now() < until; ++i) {
    auto started = std::chrono::steady_clock::now();
    EXPECT_FALSE(client.EnsureConnected());
    EXPECT_FALSE(client.Pipeline({{"PING"}}).has_value());
    longest = std::max(longest, std::chrono::steady_clock::now() - started);
    seen_connecting = seen_connecting || client.connecting();
    seen_failed = seen_failed || (!client.connecting() && !client.last_error().empty());
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_LT(longest, 200ms) << "a call waited for the connect";
  EXPECT_TRUE(seen_connecting);
  EXPECT_TRUE(seen_failed) << "the attempt never ended (its timeout is 400 ms)";
  EXPECT_FALSE(client.connected());
  EXPECT_EQ(client.generation(), 0u);
}

TEST(RedisClientTest, AClientGoneWhileItsBackgroundConnectRunsLeavesNothingBehind) {
  Blackhole hole;
  pv::RedisClient::Options o = Limited(hole.url(), 1 << 20);
  o.timeout = 300ms;
  o.connect_in_background = true;
  o.connect_wait = 0ms;
  auto started = std::chrono::steady_clock::now();
  {
    pv::RedisClient client(o);
    EXPECT_FALSE(client.EnsureConnected());
    EXPECT_TRUE(client.connecting());
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, 200ms) << "the client waited for its connect";
  std::this_thread::sleep_for(500ms);  // the attempt ends on its own; the sanitizers see what it frees
}

TEST(RedisClientTest, TheSetupRunsOnEveryConnectionAndItsRepliesAreKept) {
  // One connection, the setup in one round trip: a reply per command, then what the test sends.
  CannedServer server("$3\r\nabc\r\n:7\r\n");
  pv::RedisClient::Options o = Limited(server.url(), 1 << 20);
  o.connect_in_background = true;
  o.connect_wait = 2000ms;
  o.on_connect = {{"SCRIPT", "LOAD", "return 1"}, {"CLIENT", "SETNAME", "x"}};
  pv::RedisClient client(o);
  ASSERT_TRUE(client.EnsureConnected()) << client.last_error();
  EXPECT_FALSE(client.connecting());
  EXPECT_EQ(client.generation(), 1u);
  ASSERT_EQ(client.setup_replies().size(), 2u);
  EXPECT_EQ(client.setup_replies()[0].str, "abc");
  EXPECT_EQ(client.setup_replies()[1].integer, 7);
}

TEST(RedisClientTest, ASetupRefusedOrTooLargeFailsTheConnection) {
  // The setup's replies are read as every batch's: an error, a reply past the limit and no answer
  // each fail the connection, blocking and in the background alike.
  struct Case {
    std::string answer;
    std::size_t limit;
    std::chrono::milliseconds timeout;
    std::string error;
  };
  const Case cases[] = {
      {"-ERR unknown command 'NOPE'\r\n", 1 << 20, 3000ms, "setup: ERR unknown command 'NOPE'"},
      {Bulk(256 << 10), 64 << 10, 3000ms, "a reply larger than 65536 bytes"},
      {"", 1 << 20, 300ms, "no reply within 300 ms"},  // takes the connection, answers nothing
  };
  for (bool background : {false, true}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(std::string(background ? "in the background: " : "blocking: ") + c.error);
      CannedServer server(c.answer);
      pv::RedisClient::Options o = Limited(server.url(), c.limit);
      o.timeout = c.timeout;
      o.connect_in_background = background;
      o.connect_wait = 2000ms;
      o.on_connect = {{"NOPE"}};
      pv::RedisClient client(o);
      EXPECT_FALSE(client.EnsureConnected());
      EXPECT_FALSE(client.connecting());
      EXPECT_FALSE(client.connected());
      EXPECT_EQ(client.last_error(), c.error);
    }
  }
}

}  // namespace
