#include "pv/workers/http1_client.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "pv/strings.hpp"
#include "pv/workers/http1_response.hpp"

namespace pv::workers {
namespace {

// The CURLcode values libcurl gives for the same failures: callers (workers/providers/src/http.cpp,
// TransferResult::TimedOut/ConnectFailed) read these.
constexpr int kCouldntResolveHost = 6;
constexpr int kCouldntConnect = 7;
constexpr int kWeirdServerReply = 8;
constexpr int kPartialFile = 18;
constexpr int kOperationTimedOut = 28;
constexpr int kSslConnectError = 35;
constexpr int kAbortedByCallback = 42;
constexpr int kBadFunctionArgument = 43;
constexpr int kGotNothing = 52;
constexpr int kSendError = 55;
constexpr int kRecvError = 56;
constexpr int kPeerFailedVerification = 60;
constexpr int kSslCacertBadfile = 77;

constexpr std::size_t kMaxResponseBody = 1 << 20;  // as CurlLoop keeps
constexpr auto kDnsTtl = std::chrono::seconds(60);  // libcurl's DNS cache timeout
constexpr auto kMaxIdle = std::chrono::seconds(118);  // libcurl's CURLOPT_MAXAGE_CONN

bool IsTokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_';
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "connection closed";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

}  // namespace

void AppendHeaderLine(std::string& out, std::string_view line, bool& accept) {
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    if (!line.empty() && line.back() == ';') out.append(line.substr(0, line.size() - 1)).append(":\r\n");
    return;
  }
  if (line.find_first_not_of(" \t", colon + 1) == std::string_view::npos) return;
  accept = accept || EqualsIgnoreCase(line.substr(0, colon), "accept");
  out.append(line).append("\r\n");
}

std::optional<HttpTarget> ParseHttpTarget(std::string_view url) {
  HttpTarget t;
  std::size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  std::string_view scheme = url.substr(0, scheme_end);
  if (EqualsIgnoreCase(scheme, "https")) {
    t.tls = true;
  } else if (!EqualsIgnoreCase(scheme, "http")) {
    return std::nullopt;
  }
  std::string_view rest = url.substr(scheme_end + 3);
  std::size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path = authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  path = path.substr(0, path.find('#'));
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) return std::nullopt;
  }
  std::string_view host = authority;
  std::string_view host_text = authority;  // as written: an IPv6 literal keeps its brackets
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = authority.substr(1, close - 1);
    host_text = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return std::nullopt;
    if (!after.empty()) port = after.substr(1);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) return std::nullopt;
    t.ip = true;
  } else {
    std::size_t colon = authority.find(':');
    host = host_text = authority.substr(0, colon);
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
    if (host.empty() || !std::all_of(host.begin(), host.end(), IsTokenChar)) return std::nullopt;
    in_addr a4{};
    t.ip = ::inet_pton(AF_INET, std::string(host).c_str(), &a4) == 1;
  }
  std::uint16_t default_port = t.tls ? 443 : 80;
  t.port = default_port;
  if (!port.empty()) {
    unsigned value = 0;
    if (port.size() > 5 || !ParseNumber(port, value) || value == 0 || value > 65535) return std::nullopt;
    t.port = static_cast<std::uint16_t>(value);
  }
  t.host = std::string(host);
  t.authority = std::string(host_text);
  if (t.port != default_port) t.authority += ":" + std::to_string(t.port);
  t.path = path.empty() || path.front() == '?' ? "/" + std::string(path) : std::string(path);
  t.origin = fmt::format("{}://{}:{}", t.tls ? "https" : "http", host_text, t.port);
  return t;
}

struct Http1Client::Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

struct Http1Client::Lookup {
  std::vector<Address> addresses;  // empty: the name did not resolve
  std::string error;
  Clock::time_point expires{};
};

struct Http1Client::TlsContext {
  SSL_CTX* ctx = nullptr;
  std::string error;  // the CA file would not load: requests fail with it
  ~TlsContext() {
    if (ctx != nullptr) SSL_CTX_free(ctx);
  }
};

// One request, from Start to Finish.
struct Http1Client::Exchange {
  Done done;
  TransferResult result;
  std::shared_ptr<const HttpTarget> target;
  TlsOptions tls;
  Pool* pool = nullptr;
  std::string wire;  // head and body, formatted once
  std::size_t sent = 0;
  std::span<const std::string_view> keep_headers;
  bool head = false;  // HEAD: no body in the answer
  Clock::time_point start;
  Clock::time_point deadline;          // the whole transfer
  Clock::time_point connect_deadline;  // until a connection is ready for it
  Clock::time_point due{};             // its key in due_
  std::chrono::milliseconds timeout{};
  std::chrono::milliseconds connect_timeout{};
  enum class Where : std::uint8_t { kNowhere, kWaiting, kResolving, kConnection } where = Where::kNowhere;
  Connection* conn = nullptr;
  bool retried = false;
};

struct Http1Client::Connection {
  enum class Phase : std::uint8_t { kConnecting, kHandshake, kSending, kReceiving, kIdle };
  int fd = -1;
  SSL* ssl = nullptr;
  Pool* pool = nullptr;
  Exchange* ex = nullptr;
  Phase phase = Phase::kConnecting;
  std::uint32_t events = 0;  // what the epoll set watches
  bool reused = false;       // carried a request before this one
  Clock::time_point idle_since{};
  std::size_t address = 0;   // which of the lookup's addresses it connects to
  Http1Response response{Http1Limits{.max_body = kMaxResponseBody}};
};

struct Http1Client::Pool {
  std::string key;
  std::vector<Connection*> idle;  // most recently used last
  int open = 0;
  std::deque<Exchange*> waiting;  // for a connection (at max_connections or max_host_connections)
};

Http1Client::Http1Client(int epoll_fd, int wake_fd, const CurlLoopOptions& options,
                         std::atomic<std::size_t>& active)
    : epoll_fd_(epoll_fd), wake_fd_(wake_fd), options_(options), active_(active) {
  options_.max_connections = std::max(1, options_.max_connections);
}

Http1Client::~Http1Client() {
  Stop();
}

void Http1Client::Stop() {
  stopping_ = true;
  while (!due_.empty()) Fail(due_.begin()->second, kAbortedByCallback, "transfer loop stopped");
  for (auto& [key, pool] : pools_) {
    while (!pool->idle.empty()) Close(pool->idle.back());
  }
  {
    std::lock_guard lock(resolver_mutex_);
    resolver_stop_ = true;
  }
  resolver_cv_.notify_all();
  if (resolver_.joinable()) resolver_.join();
}

// ---- requests ----

void Http1Client::Start(HttpRequest request, std::shared_ptr<const HttpTarget> target, Done done) {
  auto* ex = new Exchange;
  ex->done = std::move(done);
  ex->start = Clock::now();
  ex->timeout = request.timeout;
  ex->connect_timeout = request.connect_timeout;
  ex->deadline = ex->start + request.timeout;
  ex->connect_deadline = std::min(ex->deadline, ex->start + request.connect_timeout);
  ex->keep_headers = request.keep_headers;
  ex->head = request.method == "HEAD";
  ex->tls = std::move(request.tls);
  key_.assign(target->origin);
  if (target->tls) key_.append(ex->tls.verify ? " verify " : " no-verify ").append(ex->tls.ca_file);
  auto& pool = pools_[key_];
  if (!pool) {
    pool = std::make_unique<Pool>();
    pool->key = key_;
  }
  ex->pool = pool.get();
  // The head: request line, Host, credentials, the request's own headers and then the shared ones
  // (curl's rules: "Name:" alone takes a header out, "Name;" sends it empty), the body's length.
  std::string& w = ex->wire;
  w.reserve(256 + request.body.size());
  w.append(request.method).append(" ").append(target->path).append(" HTTP/1.1\r\nHost: ");
  w.append(target->authority).append("\r\n");
  if (!request.basic_user.empty()) {
    std::string plain = request.basic_user + ":" + request.basic_password;
    std::string coded(4 * ((plain.size() + 2) / 3), '\0');
    EVP_EncodeBlock(reinterpret_cast<unsigned char*>(coded.data()),
                    reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size()));
    w.append("Authorization: Basic ").append(coded).append("\r\n");
  }
  bool accept = request.shared_headers && request.shared_headers->has_accept();
  for (const std::string& h : request.headers) {
    // A value from a record (a send_id) or a provider's answer (an OAuth token) with a line break
    // would add headers of its own: refused, nothing sent.
    if (h.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
      ex->target = std::move(target);
      ex->pool = nullptr;
      due_.emplace(ex->due = ex->deadline, ex);
      std::string name = h.substr(0, std::min(h.find(':'), h.find_first_of(std::string_view("\r\n\0", 3))));
      return Fail(ex, kBadFunctionArgument,
                  fmt::format("request header \"{}\" holds a line break or NUL: not sent", name));
    }
    AppendHeaderLine(w, h, accept);
  }
  if (request.shared_headers) w.append(request.shared_headers->lines());
  if (!accept) w.append("Accept: */*\r\n");
  if (request.method != "GET" || !request.body.empty()) {
    w.append("Content-Length: ").append(std::to_string(request.body.size())).append("\r\n");
  }
  w.append("\r\n").append(request.body);
  ex->target = std::move(target);
  // A kept-alive connection is ready: no connect deadline (Dispatch sets it when one is needed).
  SetDue(ex, ex->pool->idle.empty() ? ex->connect_deadline : ex->deadline);
  Dispatch(ex, false);
}

void Http1Client::SetDue(Exchange* ex, Clock::time_point due) {
  if (ex->due != Clock::time_point{}) due_.erase({ex->due, ex});
  ex->due = due;
  due_.emplace(due, ex);
}

// A kept-alive connection if there is one (fresh: never), else a new one when the limits allow,
// else a place in the pool's queue.
void Http1Client::Dispatch(Exchange* ex, bool fresh) {
  Pool& pool = *ex->pool;
  auto now = Clock::now();
  while (!fresh && !pool.idle.empty()) {
    Connection* c = pool.idle.back();
    if (now - c->idle_since < kMaxIdle) {
      pool.idle.pop_back();
      c->reused = true;
      if (ex->due != ex->deadline) SetDue(ex, ex->deadline);
      return Assign(c, ex);
    }
    Close(c);
  }
  if (ex->due != ex->connect_deadline) SetDue(ex, ex->connect_deadline);
  bool host_full = options_.max_host_connections > 0 && pool.open >= options_.max_host_connections;
  if (!host_full && open_ >= options_.max_connections) {
    // At the limit over all hosts: an idle connection elsewhere makes room.
    for (auto& [key, other] : pools_) {
      if (!other->idle.empty()) {
        Close(other->idle.front());
        break;
      }
    }
  }
  if (host_full || open_ >= options_.max_connections) {
    ex->where = Exchange::Where::kWaiting;
    pool.waiting.push_back(ex);
    return;
  }
  if (ex->target->ip) {
    Lookup literal;
    Address a;
    if (ex->target->host.find(':') != std::string::npos) {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&a.addr);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(ex->target->port);
      ::inet_pton(AF_INET6, ex->target->host.c_str(), &sa->sin6_addr);
      a.len = sizeof(sockaddr_in6);
    } else {
      auto* sa = reinterpret_cast<sockaddr_in*>(&a.addr);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(ex->target->port);
      ::inet_pton(AF_INET, ex->target->host.c_str(), &sa->sin_addr);
      a.len = sizeof(sockaddr_in);
    }
    literal.addresses.push_back(a);
    return Connect(ex, pool, literal, 0);
  }
  auto it = lookups_.find(ex->target->host);
  if (it != lookups_.end() && it->second->expires > now) return Connect(ex, pool, *it->second, 0);
  Resolve(ex);
}

void Http1Client::Connect(Exchange* ex, Pool& pool, const Lookup& lookup, std::size_t index) {
  Address a = lookup.addresses[index];
  if (a.addr.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a.addr)->sin_port = htons(ex->target->port);
  if (a.addr.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&a.addr)->sin6_port = htons(ex->target->port);
  int fd = ::socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) return Fail(ex, kCouldntConnect, fmt::format("socket: {}", std::strerror(errno)));
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    ::close(fd);
    if (index + 1 < lookup.addresses.size()) return Connect(ex, pool, lookup, index + 1);
    return Fail(ex, kCouldntConnect,
                fmt::format("Failed to connect to {} port {}: {}", ex->target->host, ex->target->port, std::strerror(err)));
  }
  auto* c = new Connection;
  c->fd = fd;
  c->pool = &pool;
  c->address = index;
  ++pool.open;
  ++open_;
  if (static_cast<std::size_t>(fd) >= by_fd_.size()) by_fd_.resize(static_cast<std::size_t>(fd) + 1, nullptr);
  by_fd_[static_cast<std::size_t>(fd)] = c;
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.fd = fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  c->events = EPOLLOUT;
  c->ex = ex;
  ex->conn = c;
  ex->where = Exchange::Where::kConnection;
}

// A ready connection (kept alive, or just connected) takes the request.
void Http1Client::Assign(Connection* c, Exchange* ex) {
  c->ex = ex;
  ex->conn = c;
  ex->where = Exchange::Where::kConnection;
  c->phase = Connection::Phase::kSending;
  c->response.Reset(ex->keep_headers, ex->head);
  Send(c);
}

void Http1Client::Want(Connection* c, std::uint32_t events) {
  if (c->events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = c->fd;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev);
  c->events = events;
}

bool Http1Client::OnEvent(int fd, std::uint32_t events) {
  auto at = static_cast<std::size_t>(fd);
  if (at >= by_fd_.size() || by_fd_[at] == nullptr) return false;
  Connection* c = by_fd_[at];
  switch (c->phase) {
    case Connection::Phase::kIdle:
      // The peer closed it, or sent what no request asked for: either way it is not reused.
      Close(c);
      ServeWaiting(nullptr);
      return true;
    case Connection::Phase::kConnecting:
      Connected(c, events);
      return true;
    case Connection::Phase::kHandshake:
      Handshake(c);
      return true;
    case Connection::Phase::kSending:
      Send(c);
      return true;
    case Connection::Phase::kReceiving:
      Receive(c);
      return true;
  }
  return true;
}

// The non-blocking connect ended: the next address or a failure, else TLS or the request.
void Http1Client::Connected(Connection* c, std::uint32_t events) {
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
  // Only EPOLLOUT was asked for: without it, an error or hang-up (not to be reported again and again).
  if (err == 0 && (events & EPOLLOUT) == 0) err = ECONNRESET;
  Exchange* ex = c->ex;
  if (err != 0) {
    std::size_t next = c->address + 1;
    Pool& pool = *c->pool;
    c->ex = nullptr;
    ex->conn = nullptr;
    ex->where = Exchange::Where::kNowhere;
    Close(c);
    auto it = lookups_.find(ex->target->host);
    if (!ex->target->ip && it != lookups_.end() && next < it->second->addresses.size()) {
      Connect(ex, pool, *it->second, next);
    } else {
      Fail(ex, kCouldntConnect,
           fmt::format("Failed to connect to {} port {}: {}", ex->target->host, ex->target->port, std::strerror(err)));
    }
    return ServeWaiting(nullptr);
  }
  if (!ex->target->tls) {
    SetDue(ex, ex->deadline);
    return Assign(c, ex);
  }
  TlsContext* tls = ContextFor(ex->tls);
  if (tls->ctx == nullptr) return Fail(ex, kSslCacertBadfile, tls->error);
  c->ssl = SSL_new(tls->ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  if (!ex->target->ip) {  // SNI (SSL_set_tlsext_host_name, a macro with an old-style cast)
    SSL_ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(ex->target->host.c_str()));  // copied by OpenSSL
  }
  if (ex->tls.verify) {
    if (ex->target->ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), ex->target->host.c_str());
    } else {
      SSL_set1_host(c->ssl, ex->target->host.c_str());
    }
  }
  c->phase = Connection::Phase::kHandshake;
  Handshake(c);
}

void Http1Client::Handshake(Connection* c) {
  ERR_clear_error();
  int rc = SSL_connect(c->ssl);
  if (rc == 1) {
    SetDue(c->ex, c->ex->deadline);
    return Assign(c, c->ex);
  }
  int err = SSL_get_error(c->ssl, rc);
  if (err == SSL_ERROR_WANT_READ) return Want(c, EPOLLIN);
  if (err == SSL_ERROR_WANT_WRITE) return Want(c, EPOLLOUT);
  Exchange* ex = c->ex;
  long verify = SSL_get_verify_result(c->ssl);
  if (ex->tls.verify && verify != X509_V_OK) {
    ERR_clear_error();
    return Fail(ex, kPeerFailedVerification,
                fmt::format("SSL certificate problem: {}", X509_verify_cert_error_string(verify)));
  }
  Fail(ex, kSslConnectError, fmt::format("TLS connect error: {}", OpenSslError()));
}

void Http1Client::Send(Connection* c) {
  Exchange* ex = c->ex;
  while (ex->sent < ex->wire.size()) {
    const char* data = ex->wire.data() + ex->sent;
    std::size_t size = ex->wire.size() - ex->sent;
    ssize_t n = 0;
    int err = 0;
    if (c->ssl != nullptr) {
      ERR_clear_error();
      int rc = SSL_write(c->ssl, data, static_cast<int>(std::min<std::size_t>(size, 1 << 30)));
      if (rc > 0) {
        n = rc;
      } else {
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_WRITE) return Want(c, EPOLLOUT);
        if (e == SSL_ERROR_WANT_READ) return Want(c, EPOLLIN);
        err = e == SSL_ERROR_SYSCALL && errno != 0 ? errno : EPIPE;
      }
    } else {
      n = ::send(c->fd, data, size, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Want(c, EPOLLOUT);
        if (errno == EINTR) continue;
        err = errno;
      }
    }
    if (err != 0) {
      // A kept-alive connection the peer had closed: the request goes again on a new one.
      if (c->reused && !ex->retried && (err == EPIPE || err == ECONNRESET)) return Retry(c);
      return Fail(ex, kSendError, fmt::format("Send failure: {}", std::strerror(err)));
    }
    ex->sent += static_cast<std::size_t>(n);
  }
  ex->result.request_sent = true;
  c->phase = Connection::Phase::kReceiving;
  Want(c, EPOLLIN | EPOLLRDHUP);
}

void Http1Client::Receive(Connection* c) {
  Exchange* ex = c->ex;
  char buf[16 << 10];
  while (true) {
    ssize_t n = 0;
    int err = 0;
    bool more = false;  // data may be left that no epoll event would announce
    if (c->ssl != nullptr) {
      ERR_clear_error();
      int rc = SSL_read(c->ssl, buf, sizeof(buf));
      if (rc > 0) {
        n = rc;
        more = SSL_has_pending(c->ssl) == 1;
      } else {
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ) return Want(c, EPOLLIN | EPOLLRDHUP);
        if (e == SSL_ERROR_WANT_WRITE) return Want(c, EPOLLOUT);
        if (e == SSL_ERROR_SYSCALL && errno != 0) err = errno;
        else if (e != SSL_ERROR_ZERO_RETURN && e != SSL_ERROR_SYSCALL) err = EPROTO;
        ERR_clear_error();
      }
    } else {
      n = ::recv(c->fd, buf, sizeof(buf), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if (errno == EINTR) continue;
        err = errno;
      }
      more = n == static_cast<ssize_t>(sizeof(buf));
    }
    bool started = c->response.started();
    if (err != 0 || n == 0) {
      // Closed before any byte of the answer, on a connection that served a request before: the
      // peer closed it while idle, as it may. Once, on a new connection, as libcurl does.
      if (c->reused && !started && !ex->retried && (n == 0 || err == ECONNRESET)) return Retry(c);
      if (err != 0) return Fail(ex, kRecvError, fmt::format("Recv failure: {}", std::strerror(err)));
      if (c->response.Eof() == Http1Response::State::kDone) return Answered(c, false);
      if (!started) return Fail(ex, kGotNothing, "Empty reply from server");
      return Fail(ex, kPartialFile, fmt::format("Transfer closed: {}", c->response.error()));
    }
    std::size_t used = 0;
    auto state = c->response.Feed(std::string_view(buf, static_cast<std::size_t>(n)), used);
    if (state == Http1Response::State::kDone) return Answered(c, used == static_cast<std::size_t>(n) && !more);
    if (state == Http1Response::State::kError) {
      return Fail(ex, kWeirdServerReply, fmt::format("Weird server reply: {}", c->response.error()));
    }
    if (!more) return;
  }
}

// The whole answer is in: the request completes, and the connection is kept for the next one when
// HTTP/1.1 keep-alive allows it and nothing was left over.
void Http1Client::Answered(Connection* c, bool reusable) {
  Exchange* ex = c->ex;
  ex->result.status = c->response.status();
  ex->result.headers = std::move(c->response.headers());
  ex->result.body = std::move(c->response.body());
  c->ex = nullptr;
  ex->conn = nullptr;
  ex->where = Exchange::Where::kNowhere;
  Pool* pool = c->pool;
  if (reusable && c->response.keep_alive()) {
    c->phase = Connection::Phase::kIdle;
    c->idle_since = Clock::now();
    Want(c, EPOLLIN | EPOLLRDHUP);
    pool->idle.push_back(c);
  } else {
    Close(c);
  }
  Finish(ex);
  ServeWaiting(pool);
}

void Http1Client::Retry(Connection* c) {
  Exchange* ex = c->ex;
  c->ex = nullptr;
  ex->conn = nullptr;
  ex->where = Exchange::Where::kNowhere;
  Close(c);
  ex->retried = true;
  ex->sent = 0;
  // request_sent stays as it was: when the first connection took the whole request before it
  // closed, the peer may have acted on it, so a failure of the second try is an unknown outcome and
  // not a send that may go again elsewhere.
  ex->connect_deadline = std::min(ex->deadline, Clock::now() + ex->connect_timeout);
  SetDue(ex, ex->connect_deadline);
  Dispatch(ex, true);
}

void Http1Client::Fail(Exchange* ex, int code, std::string error) {
  bool closed = false;
  ex->result.curl_code = code;
  ex->result.error = std::move(error);
  switch (ex->where) {
    case Exchange::Where::kConnection:
      ex->conn->ex = nullptr;
      Close(ex->conn);
      ex->conn = nullptr;
      closed = true;
      break;
    case Exchange::Where::kWaiting: {
      auto& waiting = ex->pool->waiting;
      waiting.erase(std::find(waiting.begin(), waiting.end(), ex));
      break;
    }
    case Exchange::Where::kResolving: {
      auto& list = resolving_[ex->target->host];
      list.erase(std::find(list.begin(), list.end(), ex));
      break;
    }
    case Exchange::Where::kNowhere:
      break;
  }
  ex->where = Exchange::Where::kNowhere;
  Finish(ex);
  if (closed) ServeWaiting(nullptr);
}

void Http1Client::Finish(Exchange* ex) {
  due_.erase({ex->due, ex});
  ex->result.seconds = std::chrono::duration<double>(Clock::now() - ex->start).count();
  std::unique_ptr<Exchange> owned(ex);
  active_.fetch_sub(1, std::memory_order_relaxed);
  owned->done(std::move(owned->result));
}

void Http1Client::Close(Connection* c) {
  if (c->ssl != nullptr) SSL_free(c->ssl);
  ::close(c->fd);  // leaves the epoll set with it
  by_fd_[static_cast<std::size_t>(c->fd)] = nullptr;
  Pool* pool = c->pool;
  if (c->phase == Connection::Phase::kIdle) pool->idle.erase(std::find(pool->idle.begin(), pool->idle.end(), c));
  --pool->open;
  --open_;
  delete c;
}

// Room was made (a connection closed or went idle): the first request waiting that may use it.
void Http1Client::ServeWaiting(Pool* preferred) {
  if (stopping_) return;
  if (preferred != nullptr && !preferred->waiting.empty() &&
      (!preferred->idle.empty() || open_ < options_.max_connections)) {
    Exchange* ex = preferred->waiting.front();
    preferred->waiting.pop_front();
    ex->where = Exchange::Where::kNowhere;
    return Dispatch(ex, false);
  }
  if (open_ >= options_.max_connections) return;
  for (auto& [key, pool] : pools_) {
    if (pool->waiting.empty()) continue;
    if (options_.max_host_connections > 0 && pool->open >= options_.max_host_connections) continue;
    Exchange* ex = pool->waiting.front();
    pool->waiting.pop_front();
    ex->where = Exchange::Where::kNowhere;
    return Dispatch(ex, false);
  }
}

// ---- deadlines and lookups ----

int Http1Client::Tick(int cap) {
  if (any_resolved_.load(std::memory_order_acquire)) Resolved();
  auto now = Clock::now();
  while (!due_.empty() && due_.begin()->first <= now) {
    Exchange* ex = due_.begin()->second;
    bool connecting = ex->due < ex->deadline;
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - ex->start).count();
    std::size_t got = ex->conn != nullptr ? ex->conn->response.body().size() : 0;
    Fail(ex, kOperationTimedOut,
         connecting ? fmt::format("Connection timed out after {} milliseconds", ms)
                    : fmt::format("Operation timed out after {} milliseconds with {} bytes received", ms, got));
  }
  if (due_.empty()) return cap;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(due_.begin()->first - now).count();
  return static_cast<int>(std::clamp<std::int64_t>(left, 0, cap));
}

void Http1Client::Resolve(Exchange* ex) {
  ex->where = Exchange::Where::kResolving;
  auto& list = resolving_[ex->target->host];
  list.push_back(ex);
  if (list.size() > 1) return;  // asked already
  {
    std::lock_guard lock(resolver_mutex_);
    to_resolve_.push_back(ex->target->host);
    if (!resolver_.joinable()) resolver_ = std::thread([this] { ResolverMain(); });
  }
  resolver_cv_.notify_one();
}

void Http1Client::ResolverMain() {
  std::unique_lock lock(resolver_mutex_);
  while (true) {
    resolver_cv_.wait(lock, [this] { return resolver_stop_ || !to_resolve_.empty(); });
    if (resolver_stop_) return;
    std::string name = std::move(to_resolve_.front());
    to_resolve_.pop_front();
    lock.unlock();
    auto found = std::make_unique<Lookup>();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* list = nullptr;
    int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &list);
    if (rc != 0) {
      found->error = fmt::format("Could not resolve host: {} ({})", name, ::gai_strerror(rc));
    } else {
      for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Address a;
        std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
        a.len = ai->ai_addrlen;
        found->addresses.push_back(a);
      }
      ::freeaddrinfo(list);
      if (found->addresses.empty()) found->error = fmt::format("Could not resolve host: {}", name);
    }
    found->expires = Clock::now() + kDnsTtl;
    lock.lock();
    resolved_.emplace_back(std::move(name), std::move(found));
    any_resolved_.store(true, std::memory_order_release);
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
}

void Http1Client::Resolved() {
  std::vector<std::pair<std::string, std::unique_ptr<Lookup>>> done;
  {
    std::lock_guard lock(resolver_mutex_);
    done.swap(resolved_);
    any_resolved_.store(false, std::memory_order_relaxed);
  }
  for (auto& [name, lookup] : done) {
    std::vector<Exchange*> waiting;
    waiting.swap(resolving_[name]);
    if (lookup->addresses.empty()) {
      for (Exchange* ex : waiting) {
        ex->where = Exchange::Where::kNowhere;
        Fail(ex, kCouldntResolveHost, lookup->error);
      }
      continue;
    }
    lookups_[name] = std::move(lookup);  // without a port: Connect puts the request's in
    for (Exchange* ex : waiting) {
      ex->where = Exchange::Where::kNowhere;
      Dispatch(ex, false);
    }
  }
}

Http1Client::TlsContext* Http1Client::ContextFor(const TlsOptions& tls) {
  auto& slot = tls_contexts_[{tls.ca_file, tls.verify}];
  if (slot) return slot.get();
  slot = std::make_unique<TlsContext>();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) {
    slot->error = "TLS: " + OpenSslError();
    return slot.get();
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
  // A peer that closes without close_notify ends a body read to the close, as libcurl takes it.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
  if (tls.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    bool loaded = tls.ca_file.empty() ? SSL_CTX_set_default_verify_paths(ctx) == 1
                                      : SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) == 1;
    if (!loaded) {
      ERR_clear_error();
      SSL_CTX_free(ctx);
      slot->error = fmt::format("error setting certificate file: {}", tls.ca_file.empty() ? "(system)" : tls.ca_file);
      return slot.get();
    }
  }
  slot->ctx = ctx;
  return slot.get();
}

}  // namespace pv::workers
