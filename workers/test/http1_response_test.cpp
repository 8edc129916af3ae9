#include "pv/workers/http1_response.hpp"

#include <gtest/gtest.h>

#include <array>

namespace pv::workers {
namespace {

using State = Http1Response::State;

constexpr std::array<std::string_view, 2> kKeep = {"retry-after", "x-message-id"};

// Feeds `wire` in two pieces split at `at`, then EOF when `eof`; returns the final state.
State FeedSplit(Http1Response& r, std::string_view wire, std::size_t at, bool eof = false,
                std::span<const std::string_view> keep = kKeep) {
  r.Reset(keep);
  std::size_t used = 0;
  State s = r.Feed(wire.substr(0, at), used);
  if (s == State::kMore) {
    EXPECT_EQ(used, at);
    std::size_t more = 0;
    s = r.Feed(wire.substr(at), more);
    used += more;
  }
  if (s == State::kMore && eof) s = r.Eof();
  return s;
}

// Every split point gives the same answer.
void ExpectEverySplit(std::string_view wire, long status, std::string_view body, bool keep_alive,
                      bool eof = false) {
  Http1Response r;
  for (std::size_t at = 0; at <= wire.size(); ++at) {
    State s = FeedSplit(r, wire, at, eof);
    ASSERT_EQ(s, State::kDone) << "split at " << at << ": " << r.error();
    EXPECT_EQ(r.status(), status);
    EXPECT_EQ(r.body(), body) << "split at " << at;
    EXPECT_EQ(r.keep_alive(), keep_alive);
  }
}

TEST(Http1Response, ContentLengthAtEverySplit) {
  ExpectEverySplit("HTTP/1.1 202 Accepted\r\nX-Message-Id: abc\r\nContent-Length: 5\r\nServer: s\r\n\r\nhello", 202,
                   "hello", true);
  Http1Response r;
  ASSERT_EQ(FeedSplit(r, "HTTP/1.1 429 Too Many\r\nRetry-After:  7 \r\nX-Other: 1\r\ncontent-length: 0\r\n\r\n", 3),
            State::kDone);
  ASSERT_EQ(r.headers().size(), 1U);
  EXPECT_EQ(r.headers()[0].first, "retry-after");
  EXPECT_EQ(r.headers()[0].second, "7");
}

TEST(Http1Response, EveryHeaderKeptLowerCasedWhenNoneAreNamed) {
  Http1Response r;
  ASSERT_EQ(FeedSplit(r, "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n\r\n", 5, false, {}), State::kDone);
  ASSERT_EQ(r.headers().size(), 2U);
  EXPECT_EQ(r.headers()[0], (std::pair<std::string, std::string>{"x-a", "1"}));
  EXPECT_EQ(r.headers()[1].first, "content-length");
}

TEST(Http1Response, ChunkedWithExtensionsAndTrailersAtEverySplit) {
  ExpectEverySplit(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
      "5;name=value\r\nhello\r\n1A \r\n abcdefghijklmnopqrstuvwxy\r\n0\r\nX-Trailer: t\r\n\r\n",
      200, "hello abcdefghijklmnopqrstuvwxy", true);
  ExpectEverySplit("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 200, "abc", true);
}

TEST(Http1Response, InterimAnswersAreSkippedAndBareLineFeedsAccepted) {
  ExpectEverySplit("HTTP/1.1 100 Continue\r\nX-Message-Id: no\r\n\r\nHTTP/1.1 201 Created\nContent-Length: 2\n\nok",
                   201, "ok", true);
  Http1Response r;
  ASSERT_EQ(FeedSplit(r, "HTTP/1.1 103 Early\r\nX-Message-Id: a\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0),
            State::kDone);
  EXPECT_TRUE(r.headers().empty());
}

TEST(Http1Response, ReadUntilCloseAndNoReuse) {
  ExpectEverySplit("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", 200, "all of it", false, true);
  ExpectEverySplit("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", 200, "hi", false);
  ExpectEverySplit("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nhi", 200, "hi",
                   false);
  ExpectEverySplit("HTTP/1.1 204 No Content\r\n\r\n", 204, "", true);
}

TEST(Http1Response, LeftoverBytesAreNotTaken) {
  Http1Response r;
  r.Reset({});
  std::size_t used = 0;
  std::string_view wire = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxEXTRA";
  EXPECT_EQ(r.Feed(wire, used), State::kDone);
  EXPECT_EQ(used, wire.size() - 5);
}

TEST(Http1Response, BodyIsCappedButReadToItsEnd) {
  Http1Limits limits;
  limits.max_body = 4;
  Http1Response r(limits);
  r.Reset({});
  std::size_t used = 0;
  std::string_view wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  EXPECT_EQ(r.Feed(wire, used), State::kDone);
  EXPECT_EQ(used, wire.size());
  EXPECT_EQ(r.body(), "0123");
  EXPECT_TRUE(r.keep_alive());
}

TEST(Http1Response, LimitsRefuseWithAClearError) {
  Http1Limits limits;
  limits.max_headers = 3;
  limits.max_head_bytes = 200;
  limits.max_line = 20;
  Http1Response r(limits);
  EXPECT_EQ(FeedSplit(r, "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", 9), State::kError);
  EXPECT_EQ(r.error(), "more than 3 header lines");
  EXPECT_EQ(FeedSplit(r, "HTTP/1.1 200 OK\r\nA: " + std::string(300, 'x'), 30), State::kError);
  EXPECT_EQ(r.error(), "answer head (or trailer) over 200 bytes");
  EXPECT_EQ(FeedSplit(r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + std::string(30, 'e'), 50),
            State::kError);
  EXPECT_EQ(r.error(), "chunk size line over 20 bytes");
}

TEST(Http1Response, MalformedAnswersAreRefused) {
  struct Case {
    std::string_view wire;
    std::string_view error;
  };
  const Case cases[] = {
      {"HTTP/2 200 OK\r\n\r\n", "malformed status line \"HTTP/2 200 OK\""},
      {"HTTP/1.1 20 OK\r\n\r\n", "malformed status line \"HTTP/1.1 20 OK\""},
      {"HTTP/1.1 099 x\r\n\r\n", "malformed status line \"HTTP/1.1 099 x\""},
      {"SSH-2.0-OpenSSH\r\n", "malformed status line \"SSH-2.0-OpenSSH\""},
      {"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed header line \"NoColon\""},
      {"HTTP/1.1 200 OK\r\nName : v\r\n\r\n", "malformed header line \"Name : v\""},
      {"HTTP/1.1 200 OK\r\nA: 1\r\n folded\r\n\r\n", "obsolete folded header line"},
      {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length \"-1\""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "bad Content-Length \"2\""},
      {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
       "bad Content-Length \"99999999999999999999\""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunk size line \"zz\""},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1234567890abcdef0\r\n", "chunk size too large"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", "chunk data longer than its size"},
      {"HTTP/1.1 101 Switching Protocols\r\n\r\n", "unexpected 101 Switching Protocols"},
  };
  for (const Case& c : cases) {
    Http1Response r;
    for (std::size_t at = 0; at <= c.wire.size(); ++at) {
      ASSERT_EQ(FeedSplit(r, c.wire, at, true), State::kError) << c.wire << " split at " << at;
      EXPECT_EQ(r.error(), c.error);
      EXPECT_FALSE(r.keep_alive());
    }
  }
}

TEST(Http1Response, EndOfConnectionBeforeTheEnd) {
  Http1Response r;
  r.Reset({});
  EXPECT_EQ(r.Eof(), State::kError);
  EXPECT_FALSE(r.started());
  EXPECT_EQ(r.error(), "connection closed before any answer");
  EXPECT_EQ(FeedSplit(r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 4, true), State::kError);
  EXPECT_TRUE(r.started());
  EXPECT_EQ(r.error(), "connection closed before the answer ended");
}

}  // namespace
}  // namespace pv::workers
