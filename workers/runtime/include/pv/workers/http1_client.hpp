// HTTP/1.1 with keep-alive for the providers that speak it (SendGrid, Twilio, FCM and its OAuth token
// fetch), without libcurl: on CurlLoop's thread and epoll set, behind CurlLoop::Submit. libcurl
// spent ~77k of the ~134k instructions of an email send on bookkeeping no option turns off
// (docs/performance.md, "The HTTP path"); this client does what those requests need and no more:
// one buffer per request written at once, a pool of kept-alive connections per (scheme, host, port,
// TLS options), OpenSSL for https, a resolver thread with a 60 s cache for host names, deadlines
// in an ordered set. Results are TransferResults with the curl codes libcurl would have given, so
// providers read them as before. libcurl keeps HTTP/2 (APNs), SMTP, and everything when a proxy
// variable was set at start.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "pv/workers/curl_loop.hpp"

namespace pv::workers {

// An http:// or https:// URL this client takes: a host name or IP literal, an optional port, no user
// information. Anything else goes to libcurl (which reports what is wrong with it, as it always did).
struct HttpTarget {
  bool tls = false;
  std::string host;  // without the brackets of an IPv6 literal
  bool ip = false;   // an IP literal: no lookup, no SNI
  std::uint16_t port = 0;
  std::string authority;  // Host header: as written, the port only when not the scheme's default
  std::string path;       // origin form: path and query, "/" at least
  std::string origin;     // "scheme://host:port": with the TLS options, what a connection serves
};
std::optional<HttpTarget> ParseHttpTarget(std::string_view url);

// A request header ("Name: value") as a line of the head, by libcurl's rules for its header lists:
// "Name:" with no value is left out, "Name;" is sent empty. accept: set when it is an Accept header.
void AppendHeaderLine(std::string& out, std::string_view line, bool& accept);

class Http1Client {
 public:
  using Done = CurlLoop::Done;
  using Clock = std::chrono::steady_clock;

  // epoll_fd: the loop's set, where this client adds its sockets. wake_fd: the loop's eventfd, for
  // the resolver thread. active: CurlLoop's count of transfers, decremented as each completes.
  Http1Client(int epoll_fd, int wake_fd, const CurlLoopOptions& options, std::atomic<std::size_t>& active);
  ~Http1Client();
  Http1Client(const Http1Client&) = delete;
  Http1Client& operator=(const Http1Client&) = delete;

  // Everything below: the loop thread only.
  void Start(HttpRequest request, std::shared_ptr<const HttpTarget> target, Done done);
  // An epoll event on one of this client's sockets; false: not one of them.
  bool OnEvent(int fd, std::uint32_t events);
  // Deadlines due and finished lookups; returns how long the loop may sleep (ms, at most `cap`).
  int Tick(int cap);
  // Ends every request with "transfer loop stopped" and closes every connection.
  void Stop();

 private:
  struct Exchange;
  struct Connection;
  struct Pool;
  struct Address;
  struct Lookup;
  struct TlsContext;

  void Dispatch(Exchange* ex, bool fresh);
  void Connect(Exchange* ex, Pool& pool, const Lookup& lookup, std::size_t index);
  void Assign(Connection* c, Exchange* ex);
  void Connected(Connection* c, std::uint32_t events);
  void Handshake(Connection* c);
  void Send(Connection* c);
  void Receive(Connection* c);
  void Answered(Connection* c, bool reusable);
  void Fail(Exchange* ex, int code, std::string error);
  void Finish(Exchange* ex);
  void Retry(Connection* c);
  void Close(Connection* c);
  void ServeWaiting(Pool* preferred);
  void Want(Connection* c, std::uint32_t events);
  void SetDue(Exchange* ex, Clock::time_point due);
  void Resolve(Exchange* ex);
  void Resolved();
  void ResolverMain();
  TlsContext* ContextFor(const TlsOptions& tls);

  int epoll_fd_;
  int wake_fd_;
  CurlLoopOptions options_;
  std::atomic<std::size_t>& active_;
  bool stopping_ = false;
  int open_ = 0;  // connections open, all pools together
  std::unordered_map<std::string, std::unique_ptr<Pool>> pools_;
  std::string key_;  // a pool's key, built here for each request
  std::vector<Connection*> by_fd_;
  // Every request started and not completed, by deadline (the earlier of its timeout and, until it
  // has a connection ready, its connect timeout).
  std::set<std::pair<Clock::time_point, Exchange*>> due_;
  std::map<std::pair<std::string, bool>, std::unique_ptr<TlsContext>> tls_contexts_;

  // Host names: looked up on the resolver thread, kept for 60 s. waiting: requests per name.
  std::unordered_map<std::string, std::unique_ptr<Lookup>> lookups_;
  std::unordered_map<std::string, std::vector<Exchange*>> resolving_;
  std::mutex resolver_mutex_;
  std::condition_variable resolver_cv_;
  std::deque<std::string> to_resolve_;
  std::vector<std::pair<std::string, std::unique_ptr<Lookup>>> resolved_;
  bool resolver_stop_ = false;
  std::atomic<bool> any_resolved_{false};
  std::thread resolver_;
};

}  // namespace pv::workers
