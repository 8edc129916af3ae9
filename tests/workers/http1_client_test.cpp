// CurlLoop's HTTP/1.1 client (Http1Client) against real peers on loopback: a scripted TCP server in
// this process for what a well-behaved fake would never do (close an idle or a half-answered
// connection, never answer), and provider_fake.js over HTTPS for TLS. Also: a proxy variable sends
// every request through libcurl, as before.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "pv/testing/fakes.hpp"
#include "pv/workers/curl_loop.hpp"

namespace pv::workers {
namespace {

using namespace std::chrono_literals;

// A TCP server on 127.0.0.1: each connection is handed to `serve` on a thread of its own, with its
// index (0 for the first connection). Every wait is bounded.
class ScriptedServer {
 public:
  class Conn {
   public:
    explicit Conn(int fd) : fd_(fd) {}
    // One request (head and Content-Length body); empty when the peer closed or 5 s passed.
    std::string ReadRequest() {
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto head_end = buffer_.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          std::string head = buffer_.substr(0, head_end);
          std::transform(head.begin(), head.end(), head.begin(), ::tolower);
          std::size_t length = 0;
          if (auto cl = head.find("content-length:"); cl != std::string::npos) length = std::stoul(head.substr(cl + 15));
          if (buffer_.size() >= head_end + 4 + length) {
            std::string request = buffer_.substr(0, head_end + 4 + length);
            buffer_.erase(0, request.size());
            return request;
          }
        }
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
        if (n <= 0) return {};
        buffer_.append(buf, static_cast<std::size_t>(n));
      }
      return {};
    }
    void Write(std::string_view data) { [[maybe_unused]] auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL); }
    // Waits (at most 5 s) for the peer to close.
    void WaitForClose() {
      char buf[256];
      for (int i = 0; i < 100; ++i) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0 && ::recv(fd_, buf, sizeof(buf), 0) <= 0) return;
      }
    }

   private:
    int fd_;
    std::string buffer_;
  };
  using Serve = std::function<void(Conn&, int index)>;

  explicit ScriptedServer(Serve serve) : serve_(std::move(serve)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("scripted server: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Accept(); });
  }
  ~ScriptedServer() {
    stop_ = true;
    thread_.join();
    for (auto& t : connections_) t.join();
  }
  int port() const { return port_; }
  std::string url(std::string_view path = "/v1/x") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int connections() const { return accepted_.load(); }
  // Closes the listening socket (within 2 s): a new connection is refused from then on. Safe from
  // a connection's thread.
  void StopAccepting() {
    stop_ = true;
    for (int i = 0; i < 200 && listening_; ++i) std::this_thread::sleep_for(10ms);
  }

 private:
  void Accept() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      int index = accepted_++;
      connections_.emplace_back([this, c, index] {
        Conn conn(c);
        serve_(conn, index);
        ::close(c);
      });
    }
    ::close(fd_);
    listening_ = false;
  }
  Serve serve_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> listening_{true};
  std::atomic<int> accepted_{0};
  std::thread thread_;
  std::vector<std::thread> connections_;
};

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Id: 7\r\n\r\nok";

// Answers every request on the connection with kOk until the peer closes.
void KeepAnswering(ScriptedServer::Conn& c, int /*index*/) {
  while (!c.ReadRequest().empty()) c.Write(kOk);
}

constexpr std::array<std::string_view, 1> kKeep = {"x-id"};

HttpRequest Post(const std::string& url, std::chrono::milliseconds timeout = 5s) {
  HttpRequest r;
  r.url = url;
  r.body = R"({"a":1})";
  r.headers = {"Content-Type: application/json"};
  r.keep_headers = kKeep;
  r.timeout = timeout;
  r.connect_timeout = std::min(timeout, std::chrono::milliseconds(2000));
  return r;
}

TransferResult Transfer(CurlLoop& loop, HttpRequest request) {
  std::promise<TransferResult> promise;
  auto future = promise.get_future();
  loop.Submit(std::move(request), [&promise](TransferResult&& r) { promise.set_value(std::move(r)); });
  if (future.wait_for(10s) != std::future_status::ready) throw std::runtime_error("no result within 10 s");
  return future.get();
}

TEST(Http1ClientTest, SequentialRequestsShareOneKeptAliveConnection) {
  std::string seen;
  std::mutex mutex;
  ScriptedServer server([&](ScriptedServer::Conn& c, int) {
    for (std::string request = c.ReadRequest(); !request.empty(); request = c.ReadRequest()) {
      {
        std::lock_guard lock(mutex);
        if (seen.empty()) seen = request;
      }
      c.Write(kOk);
    }
  });
  CurlLoop loop;
  for (int i = 0; i < 20; ++i) {
    TransferResult r = Transfer(loop, Post(server.url("/v1/x?y=1")));
    ASSERT_EQ(r.curl_code, 0) << r.error;
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "ok");
    EXPECT_EQ(r.Header("x-id"), "7");
    EXPECT_TRUE(r.request_sent);
    EXPECT_GT(r.seconds, 0);
  }
  EXPECT_EQ(server.connections(), 1);
  std::lock_guard lock(mutex);
  EXPECT_EQ(seen, "POST /v1/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                      "\r\nContent-Type: application/json\r\nAccept: */*\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
}

TEST(Http1ClientTest, ConnectionsStayWithinMaxConnections) {
  std::atomic<int> open{0};
  std::atomic<int> most{0};
  ScriptedServer server([&](ScriptedServer::Conn& c, int) {
    int now = ++open;
    int seen = most.load();
    while (now > seen && !most.compare_exchange_weak(seen, now)) {
    }
    while (!c.ReadRequest().empty()) {
      std::this_thread::sleep_for(20ms);
      c.Write(kOk);
    }
    --open;
  });
  CurlLoopOptions options;
  options.max_connections = 2;
  CurlLoop loop(options);
  std::vector<std::future<TransferResult>> results;
  for (int i = 0; i < 8; ++i) {
    auto promise = std::make_shared<std::promise<TransferResult>>();
    results.push_back(promise->get_future());
    loop.Submit(Post(server.url()), [promise](TransferResult&& r) { promise->set_value(std::move(r)); });
  }
  for (auto& f : results) {
    ASSERT_EQ(f.wait_for(10s), std::future_status::ready);
    TransferResult r = f.get();
    EXPECT_EQ(r.status, 200) << r.error;
  }
  EXPECT_LE(server.connections(), 2);
  EXPECT_LE(most.load(), 2);
}

// The peer closes a kept-alive connection after its answer: the client sees it go while idle, or
// sends the next request into it and tries once more on a new connection. Either way it succeeds.
TEST(Http1ClientTest, APeerClosingAKeptAliveConnectionCostsNoRequest) {
  ScriptedServer closes_when_idle([](ScriptedServer::Conn& c, int) {
    if (!c.ReadRequest().empty()) c.Write(kOk);
  });
  // Closed without an answer as the second request arrives (the race the idle watch cannot see).
  ScriptedServer drops_second([](ScriptedServer::Conn& c, int) {
    if (c.ReadRequest().empty()) return;
    c.Write(kOk);
    c.ReadRequest();
  });
  CurlLoop loop;  // after the servers: it closes its connections first
  ASSERT_EQ(Transfer(loop, Post(closes_when_idle.url())).status, 200);
  std::this_thread::sleep_for(100ms);
  TransferResult r = Transfer(loop, Post(closes_when_idle.url()));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(closes_when_idle.connections(), 2);

  ASSERT_EQ(Transfer(loop, Post(drops_second.url())).status, 200);
  r = Transfer(loop, Post(drops_second.url()));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(drops_second.connections(), 2);
}

// The retry after a kept-alive connection closed under the request cannot connect: the first
// connection took the whole request and may have passed it on, so the outcome is unknown (not a
// connection failure, which a worker may retry on another provider).
TEST(Http1ClientTest, ARetryThatCannotConnectKeepsTheRequestSent) {
  ScriptedServer* self = nullptr;
  ScriptedServer server([&self](ScriptedServer::Conn& c, int) {
    if (c.ReadRequest().empty()) return;
    c.Write(kOk);
    if (c.ReadRequest().empty()) return;
    self->StopAccepting();  // then closes this connection without an answer
  });
  self = &server;
  CurlLoop loop;
  ASSERT_EQ(Transfer(loop, Post(server.url())).status, 200);
  TransferResult r = Transfer(loop, Post(server.url()));
  EXPECT_EQ(r.curl_code, 7) << r.error;  // CURLE_COULDNT_CONNECT, on the second try
  EXPECT_TRUE(r.request_sent);
  EXPECT_EQ(server.connections(), 1);
}

// A header line with a line break (a send_id or a token from outside) is refused before anything is
// sent: it would otherwise add headers of its own.
TEST(Http1ClientTest, AHeaderWithALineBreakIsRefusedUnsent) {
  ScriptedServer server(KeepAnswering);
  CurlLoop loop;
  for (std::string bad : {std::string("Idempotency-Key: a\r\nX-Evil: 1"), std::string("Idempotency-Key: a\nb"),
                          std::string("Idempotency-Key: a\0b", 20)}) {
    HttpRequest request = Post(server.url());
    request.headers.push_back(bad);
    TransferResult r = Transfer(loop, std::move(request));
    EXPECT_EQ(r.curl_code, 43) << r.error;  // CURLE_BAD_FUNCTION_ARGUMENT
    EXPECT_EQ(r.error, "request header \"Idempotency-Key\" holds a line break or NUL: not sent");
    EXPECT_FALSE(r.request_sent);
  }
  EXPECT_EQ(server.connections(), 0);
  EXPECT_EQ(Transfer(loop, Post(server.url())).status, 200);
  EXPECT_EQ(loop.Active(), 0U);
}

// On a new connection, a close after the whole request left is an unknown outcome (request_sent),
// whether some of the answer came or none.
TEST(Http1ClientTest, ACloseAfterTheRequestLeavesTheOutcomeUnknown) {
  ScriptedServer half([](ScriptedServer::Conn& c, int) {
    if (!c.ReadRequest().empty()) c.Write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  });
  CurlLoop loop;
  TransferResult r = Transfer(loop, Post(half.url()));
  EXPECT_EQ(r.curl_code, 18) << r.error;  // CURLE_PARTIAL_FILE
  EXPECT_TRUE(r.request_sent);
  EXPECT_TRUE(r.ConnectFailed());

  ScriptedServer silent_close([](ScriptedServer::Conn& c, int) { c.ReadRequest(); });
  r = Transfer(loop, Post(silent_close.url()));
  EXPECT_EQ(r.curl_code, 52) << r.error;  // CURLE_GOT_NOTHING
  EXPECT_EQ(r.error, "Empty reply from server");
  EXPECT_TRUE(r.request_sent);

  ScriptedServer garbage([](ScriptedServer::Conn& c, int) {
    if (!c.ReadRequest().empty()) c.Write("SSH-2.0-OpenSSH_9.2\r\n");
    c.WaitForClose();
  });
  r = Transfer(loop, Post(garbage.url()));
  EXPECT_EQ(r.curl_code, 8) << r.error;  // CURLE_WEIRD_SERVER_REPLY
  EXPECT_EQ(r.error, "Weird server reply: malformed status line \"SSH-2.0-OpenSSH_9.2\"");
}

TEST(Http1ClientTest, TimeoutsRefusalsAndStop) {
  ScriptedServer never_answers([](ScriptedServer::Conn& c, int) {
    c.ReadRequest();
    c.WaitForClose();
  });
  ScriptedServer answers(KeepAnswering);
  CurlLoop loop;
  TransferResult r = Transfer(loop, Post(never_answers.url(), 200ms));
  EXPECT_TRUE(r.TimedOut()) << r.error;
  EXPECT_TRUE(r.request_sent);
  EXPECT_GE(r.seconds, 0.2);

  r = Transfer(loop, Post("http://127.0.0.1:" + std::to_string(pv::testing::FreePort()) + "/"));
  EXPECT_EQ(r.curl_code, 7) << r.error;  // CURLE_COULDNT_CONNECT
  EXPECT_TRUE(r.ConnectFailed());
  EXPECT_FALSE(r.request_sent);

  // A name, not a literal: through the resolver thread (and maybe ::1 first, refused, then 127.0.0.1).
  r = Transfer(loop, Post("http://localhost:" + std::to_string(answers.port()) + "/"));
  EXPECT_EQ(r.status, 200) << r.error;

  std::promise<TransferResult> stopped;
  loop.Submit(Post(never_answers.url()), [&stopped](TransferResult&& t) { stopped.set_value(std::move(t)); });
  std::this_thread::sleep_for(100ms);
  loop.Stop();
  auto future = stopped.get_future();
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  r = future.get();
  EXPECT_EQ(r.error, "transfer loop stopped");
  EXPECT_EQ(loop.Active(), 0U);
}

// Turns a driven loop, sleeping on its descriptor as the worker does, until `done()` or 10 s.
void TurnUntil(CurlLoop& loop, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    int wait = loop.Turn();
    ASSERT_GE(wait, 0);
    ASSERT_LE(wait, 1000);
    if (loop.HasSubmissions()) continue;  // this thread's own submissions write no wake-up
    pollfd p{loop.fd(), POLLIN, 0};
    ::poll(&p, 1, std::min(wait, 50));
  }
}

bool LoopReadable(CurlLoop& loop, int timeout_ms) {
  pollfd p{loop.fd(), POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

// A submission from the thread that turns a driven loop (the worker's own sends) writes no wake-up:
// that thread asks HasSubmissions() before it sleeps. One from any other thread wakes the loop.
TEST(Http1ClientTest, ADrivenLoopIsWokenOnlyBySubmissionsFromOtherThreads) {
  ScriptedServer server([&](ScriptedServer::Conn& c, int) {
    for (std::string request = c.ReadRequest(); !request.empty(); request = c.ReadRequest()) c.Write(kOk);
  });
  CurlLoopOptions options;
  options.driven = true;
  CurlLoop loop(options);
  loop.Turn();  // this thread turns it
  ASSERT_FALSE(LoopReadable(loop, 0));
  int done = 0;
  loop.Submit(Post(server.url()), [&](TransferResult&& r) {
    EXPECT_EQ(r.status, 200) << r.error;
    ++done;
  });
  EXPECT_FALSE(LoopReadable(loop, 0)) << "the turning thread's own submission woke the loop";
  EXPECT_TRUE(loop.HasSubmissions());
  TurnUntil(loop, [&] { return done == 1; });
  EXPECT_EQ(done, 1);
  EXPECT_FALSE(loop.HasSubmissions());

  TurnUntil(loop, [] { return true; });
  std::thread other([&] {
    loop.Submit(Post(server.url()), [&](TransferResult&& r) {
      EXPECT_EQ(r.status, 200) << r.error;
      ++done;
    });
  });
  other.join();
  EXPECT_TRUE(LoopReadable(loop, 5000)) << "another thread's submission did not wake the loop";
  TurnUntil(loop, [&] { return done == 2; });
  EXPECT_EQ(done, 2);
  loop.Stop();
}

// CurlLoopOptions::driven (the worker's transfer_loop: worker): no thread of its own. Transfers move
// only when the owner turns the loop, every callback runs on the owner's thread, in Turn or in Stop,
// and an answer that came while the owner was away is read before the transfer's timeout is judged.
TEST(Http1ClientTest, ADrivenLoopRunsItsTransfersOnTheThreadThatTurnsIt) {
  std::atomic<bool> asked{false};
  ScriptedServer server([&](ScriptedServer::Conn& c, int) {
    for (std::string request = c.ReadRequest(); !request.empty(); request = c.ReadRequest()) {
      asked = true;
      c.Write(kOk);
    }
  });
  ScriptedServer never_answers([](ScriptedServer::Conn& c, int) {
    c.ReadRequest();
    c.WaitForClose();
  });
  CurlLoopOptions options;
  options.driven = true;
  CurlLoop loop(options);
  const auto me = std::this_thread::get_id();
  int done = 0;
  bool elsewhere = false;
  for (int i = 0; i < 5; ++i) {
    loop.Submit(Post(server.url()), [&](TransferResult&& r) {
      EXPECT_EQ(r.status, 200) << r.error;
      elsewhere = elsewhere || std::this_thread::get_id() != me;
      ++done;
    });
  }
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(done, 0);
  EXPECT_EQ(server.connections(), 0) << "a driven loop connected without being turned";
  TurnUntil(loop, [&] { return done == 5; });
  EXPECT_EQ(done, 5);
  EXPECT_FALSE(elsewhere);

  // Answered at once, but the owner is away (a slow Redis call) past the 200 ms timeout: the answer
  // waiting in the socket wins over the deadline.
  asked = false;
  TransferResult late;
  bool finished = false;
  loop.Submit(Post(server.url(), 200ms), [&](TransferResult&& r) {
    late = std::move(r);
    finished = true;
  });
  TurnUntil(loop, [&] { return asked.load() || finished; });
  ASSERT_TRUE(asked.load());
  std::this_thread::sleep_for(400ms);
  TurnUntil(loop, [&] { return finished; });
  ASSERT_TRUE(finished);
  EXPECT_EQ(late.status, 200) << late.error;

  // In flight at Stop: completed in Stop, on this thread; a later submission completes at once.
  TransferResult stopped;
  bool stopped_here = false;
  loop.Submit(Post(never_answers.url()), [&](TransferResult&& r) {
    stopped = std::move(r);
    stopped_here = std::this_thread::get_id() == me;
  });
  TurnUntil(loop, [&] { return never_answers.connections() == 1; });
  for (int i = 0; i < 5; ++i) TurnUntil(loop, [] { return true; });
  loop.Stop();
  EXPECT_TRUE(stopped_here);
  EXPECT_EQ(stopped.error, "transfer loop stopped");
  bool at_once = false;
  loop.Submit(Post(server.url()), [&](TransferResult&& r) {
    EXPECT_EQ(r.error, "transfer loop stopped");
    at_once = true;
  });
  EXPECT_TRUE(at_once);
  EXPECT_EQ(loop.Active(), 0U);
}

TEST(Http1ClientTest, TlsVerifiesThePeerAgainstTheGivenCa) {
  pv::testing::TempDir dir("pv-http1-tls");
  const auto& keys = pv::testing::TestKeys::Get();
  pv::testing::WriteFile(dir.File("cert.pem"), keys.cert_pem);
  pv::testing::WriteFile(dir.File("key.pem"), keys.cert_key_pem);
  pv::testing::ProviderFake fake({"--sendgrid-key", "SG.k", "--tls-cert", dir.File("cert.pem"), "--tls-key",
                                  dir.File("key.pem")});
  std::string url = "https://127.0.0.1:" + std::to_string(fake.port()) + "/v3/mail/send";
  CurlLoop loop;
  HttpRequest request = Post(url);
  request.headers.push_back("Authorization: Bearer SG.k");
  request.tls.ca_file = dir.File("cert.pem");
  for (int i = 0; i < 3; ++i) {
    TransferResult r = Transfer(loop, request);
    EXPECT_EQ(r.curl_code, 0) << r.error;
    EXPECT_EQ(r.status, 400);  // the fake's answer to a body without personalizations: TLS worked
  }
  EXPECT_EQ(fake.Stat("connections"), 1);
  request.url = "https://localhost:" + std::to_string(fake.port()) + "/v3/mail/send";  // SNI and a DNS name
  EXPECT_EQ(Transfer(loop, request).status, 400);

  request.tls.ca_file.clear();  // the system's CAs do not know the test certificate
  TransferResult r = Transfer(loop, request);
  EXPECT_EQ(r.curl_code, 60) << r.error;  // CURLE_PEER_FAILED_VERIFICATION
  EXPECT_EQ(r.error.rfind("SSL certificate problem: ", 0), 0U) << r.error;
  EXPECT_FALSE(r.request_sent);

  request.tls.ca_file = dir.File("key.pem");  // not a certificate
  r = Transfer(loop, request);
  EXPECT_EQ(r.curl_code, 77) << r.error;  // CURLE_SSL_CACERT_BADFILE

  request.tls.ca_file.clear();
  request.tls.verify = false;
  EXPECT_EQ(Transfer(loop, request).status, 400);
}

// A proxy variable at start: every request goes through libcurl, which honours it (the request line
// in absolute form shows the proxy was used).
TEST(Http1ClientTest, AProxyVariableKeepsLibcurl) {
  std::promise<std::string> first_line;
  ScriptedServer proxy([&first_line](ScriptedServer::Conn& c, int index) {
    std::string request = c.ReadRequest();
    if (index == 0) first_line.set_value(request.substr(0, request.find("\r\n")));
    if (!request.empty()) c.Write(kOk);
  });
  ::setenv("http_proxy", ("http://127.0.0.1:" + std::to_string(proxy.port())).c_str(), 1);
  CurlLoop loop;
  TransferResult r = Transfer(loop, Post("http://provider.invalid/v1/x"));
  ::unsetenv("http_proxy");
  EXPECT_EQ(r.status, 200) << r.error;
  auto line = first_line.get_future();
  ASSERT_EQ(line.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(line.get(), "POST http://provider.invalid/v1/x HTTP/1.1");
}

}  // namespace
}  // namespace pv::workers
