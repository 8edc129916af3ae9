#include "pv/ingest/http_front.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <charconv>
#include <ctime>
#include <iterator>
#include <thread>

#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/strings.hpp"

namespace pv::ingest::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// Why a request or a connection was refused by the front itself (pv_ingest_refused_total{reason}).
enum class Reason {
  kMaxConnections,
  kHeaderTimeout,
  kBodyTimeout,
  kWriteTimeout,
  kHeaderTooLarge,
  kTooManyHeaders,
  kUriTooLong,
  kBodyTooLarge,
  kBadRequest,
  kOverloaded,
  kCount
};

// Indexed by Reason: the label of pv_ingest_refused_total.
constexpr const char* kReasonNames[] = {
    "max_connections",  "header_timeout", "body_timeout",   "write_timeout", "header_too_large",
    "too_many_headers", "uri_too_long",   "body_too_large", "bad_request",   "body_memory_full"};
static_assert(std::size(kReasonNames) == static_cast<size_t>(Reason::kCount));

const char* StatusText(int status) {
  static constexpr int kCodes[] = {100, 200, 204, 400, 401, 403, 404, 405, 408,
                                   409, 411, 413, 414, 415, 422, 431, 500, 503};
  static constexpr const char* kTexts[] = {"Continue",
                                           "OK",
                                           "No Content",
                                           "Bad Request",
                                           "Unauthorized",
                                           "Forbidden",
                                           "Not Found",
                                           "Method Not Allowed",
                                           "Request Timeout",
                                           "Conflict",
                                           "Length Required",
                                           "Content Too Large",
                                           "URI Too Long",
                                           "Unsupported Media Type",
                                           "Unprocessable Content",
                                           "Request Header Fields Too Large",
                                           "Internal Server Error",
                                           "Service Unavailable"};
  static_assert(std::size(kCodes) == std::size(kTexts));
  for (size_t i = 0; i < std::size(kCodes); ++i) {
    if (kCodes[i] == status) return kTexts[i];
  }
  return "Status";
}

void AppendDecimal(std::string& out, size_t n) {
  char digits[24];
  auto end = std::to_chars(std::begin(digits), std::end(digits), n).ptr;
  out.append(digits, static_cast<size_t>(end - digits));
}

std::string DateHeader() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char buf[64];
  size_t n = std::strftime(buf, sizeof(buf), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  return {buf, n};
}

constexpr auto kSweepInterval = std::chrono::milliseconds(250);
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerMaxBytes = 1 << 20;
// A refused request whose body is at most this is read and thrown away so the connection stays
// usable; a larger one closes the connection instead of costing the time to read it.
constexpr size_t kDiscardMaxBytes = 64 * 1024;
constexpr int kReadsPerTurn = 16;

}  // namespace

// ---- RequestHead ----

std::optional<std::string_view> RequestHead::Header(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (EqualsIgnoreCase(View(n), name)) return View(v);
  }
  return std::nullopt;
}

RequestHead::Span RequestHead::Keep(std::string_view text) {
  Span s{static_cast<std::uint32_t>(store_.size()), static_cast<std::uint32_t>(text.size())};
  store_.append(text);
  return s;
}

void RequestHead::Clear() {
  store_.clear();
  method_ = {};
  target_ = {};
  fields_.clear();
  content_length_.reset();
  chunked_ = false;
}

// ---- the loops ----

struct Loop {
  explicit Loop(HttpFront::Impl& f) : front(f), io(1), sweep(io), date(DateHeader()) {}
  HttpFront::Impl& front;
  asio::io_context io;
  asio::steady_timer sweep;
  std::vector<Connection*> connections;   // touched on this loop's thread only
  std::array<char, 64 * 1024> scratch{};  // every read lands here first, then only what is unparsed is kept
  std::string date;                       // "Date: ...\r\n", refreshed by the sweep
  std::thread thread;
};

struct HttpFront::Impl {
  Impl(FrontOptions& o, Handler& h) : options(o), handler(h) {}

  FrontOptions& options;
  Handler& handler;
  std::vector<std::unique_ptr<Loop>> loops;
  std::optional<tcp::acceptor> acceptor;  // on loops[0]
  std::optional<asio::steady_timer> accept_retry;
  size_t next_loop = 0;
  std::atomic<size_t> open{0};
  std::atomic<size_t> pending_body{0};
  std::atomic<bool> draining{false};
  bool started = false;

  metrics::Counter* accepted = nullptr;
  std::array<metrics::Counter*, static_cast<size_t>(Reason::kCount)> refused{};
  std::array<std::atomic<std::int64_t>, static_cast<size_t>(Reason::kCount)> last_logged{};
  std::array<std::atomic<std::int64_t>, static_cast<size_t>(Reason::kCount)> unlogged{};

  void Refused(Reason reason, int status, const tcp::socket* socket) {
    auto r = static_cast<size_t>(reason);
    refused[r]->Inc();
    // One log line a second per reason at most: an attack must not turn into a log flood.
    std::int64_t second =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
    std::int64_t last = last_logged[r].load(std::memory_order_relaxed);
    if (last == second || !last_logged[r].compare_exchange_strong(last, second)) {
      unlogged[r].fetch_add(1, std::memory_order_relaxed);
      return;
    }
    std::string peer;
    if (socket != nullptr) {
      boost::system::error_code ec;
      auto ep = socket->remote_endpoint(ec);
      if (!ec) peer = fmt::format("{}:{}", ep.address().to_string(), ep.port());
    }
    log::Warn("request_refused", {{"reason", kReasonNames[r]},
                                  {"status", status},
                                  {"peer", peer},
                                  {"also_refused_since_last_line", unlogged[r].exchange(0)}});
  }

  bool ChargeBody(size_t bytes) {
    size_t now = pending_body.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    if (now > options.max_pending_body_bytes) {
      pending_body.fetch_sub(bytes, std::memory_order_relaxed);
      return false;
    }
    return true;
  }
  void ReleaseBody(size_t bytes) { pending_body.fetch_sub(bytes, std::memory_order_relaxed); }

  void Accept();
  void OnAccepted(Loop& loop, tcp::socket socket);
  void Sweep(Loop& loop);
};

// ---- one connection ----

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Loop& loop, tcp::socket socket) : loop_(loop), front_(loop.front), socket_(std::move(socket)) {}
  ~Connection() {
    // Every path closes first (the last reference goes on this loop's thread); this is the net.
    if (state_ != State::kClosed) Close();
  }

  void Start() {
    index_ = loop_.connections.size();
    loop_.connections.push_back(this);
    SetState(State::kIdle, front_.options.header_timeout);
    ReadSome();
  }

  // A response from the handler (posted to this loop by a Responder).
  void Deliver(std::uint64_t request, Response response) {
    if (state_ != State::kHandling || request != request_) return;  // closed meanwhile
    Write(std::move(response));
  }

  // The sweep found this connection's deadline passed.
  void Expire() {
    switch (state_) {
      case State::kIdle:
        return Close();
      case State::kHead:
        return Refuse(Reason::kHeaderTimeout, 408,
                      fmt::format("the request head did not arrive within {} ms",
                                  front_.options.header_timeout.count()));
      case State::kBody:
        return Refuse(
            Reason::kBodyTimeout, 408,
            fmt::format("the request body did not arrive within {} ms", front_.options.body_timeout.count()));
      case State::kWriting:
        front_.Refused(Reason::kWriteTimeout, 0, &socket_);
        return Close();
      case State::kLinger:
        return Close();
      case State::kHandling:
      case State::kClosed:
        return;
    }
  }

  // Shutdown: a connection with no request under way closes now; others finish theirs.
  void Drain() {
    if (state_ == State::kIdle && pending_.empty()) Close();
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    boost::system::error_code ignored;
    socket_.close(ignored);
    // Swap-remove from the loop's list.
    auto& list = loop_.connections;
    list[index_] = list.back();
    list[index_]->index_ = index_;
    list.pop_back();
    front_.open.fetch_sub(1, std::memory_order_relaxed);
    front_.ReleaseBody(charged_);
    charged_ = 0;
    exchange_.reset();
  }

  Clock::time_point deadline() const { return deadline_; }
  Loop& loop() { return loop_; }

 private:
  enum class State { kIdle, kHead, kBody, kHandling, kWriting, kLinger, kClosed };
  enum class Limit { kNone, kUriTooLong, kTooManyHeaders, kOverloaded };

  // Beast's HTTP/1.1 request parser, fed by hand: it keeps nothing but copies what the head holds
  // into the RequestHead, counts fields, and appends body bytes (or throws them away).
  class Parser final : public beast::http::basic_parser<true> {
   public:
    explicit Parser(Connection& c) : c_(c) {}

   private:
    void on_request_impl(beast::http::verb /*verb*/, beast::string_view method, beast::string_view target,
                         int /*version*/, beast::error_code& ec) override {
      if (target.size() > c_.front_.options.max_uri_bytes) {
        c_.limit_ = Limit::kUriTooLong;
        ec = beast::http::error::bad_target;
        return;
      }
      c_.head_.method_ = c_.head_.Keep({method.data(), method.size()});
      c_.head_.target_ = c_.head_.Keep({target.data(), target.size()});
    }
    void on_response_impl(int, beast::string_view, int, beast::error_code&) override {}
    void on_field_impl(beast::http::field /*name*/, beast::string_view name, beast::string_view value,
                       beast::error_code& ec) override {
      if (c_.head_.fields_.size() >= c_.front_.options.max_header_count) {
        c_.limit_ = Limit::kTooManyHeaders;
        ec = beast::http::error::bad_field;
        return;
      }
      auto n = c_.head_.Keep({name.data(), name.size()});
      auto v = c_.head_.Keep({value.data(), value.size()});
      c_.head_.fields_.emplace_back(n, v);
    }
    void on_header_impl(beast::error_code& /*ec*/) override {}
    void on_body_init_impl(const boost::optional<std::uint64_t>& /*length*/,
                           beast::error_code& /*ec*/) override {}
    std::size_t on_body_impl(beast::string_view body, beast::error_code& /*ec*/) override {
      if (!c_.discard_) c_.body_.append(body.data(), body.size());
      return body.size();
    }
    void on_chunk_header_impl(std::uint64_t /*size*/, beast::string_view /*extensions*/,
                              beast::error_code& /*ec*/) override {}
    std::size_t on_chunk_body_impl(std::uint64_t /*remain*/, beast::string_view body,
                                   beast::error_code& ec) override {
      if (c_.discard_) return body.size();
      // A chunked body has no announced size: charge the memory budget as it grows.
      if (!c_.front_.ChargeBody(body.size())) {
        c_.limit_ = Limit::kOverloaded;
        ec = beast::http::error::body_limit;
        return 0;
      }
      c_.charged_ += body.size();
      c_.body_.append(body.data(), body.size());
      return body.size();
    }
    void on_finish_impl(beast::error_code& /*ec*/) override {}

    Connection& c_;
  };

  void SetState(State state, std::chrono::milliseconds timeout) {
    state_ = state;
    deadline_ = Clock::now() + timeout;
  }

  static bool WouldBlock(const boost::system::error_code& ec) {
    return ec == asio::error::would_block || ec == asio::error::try_again;
  }

  // Reads whatever the socket has (non-blocking) and parses it, until it would block or a request
  // is complete. Idle connections hold no read buffer: bytes land in the loop's scratch buffer and
  // only an unparsed remainder is kept.
  void ReadSome() {
    for (int i = 0; i < kReadsPerTurn; ++i) {
      if (state_ != State::kIdle && state_ != State::kHead && state_ != State::kBody &&
          state_ != State::kLinger)
        return;
      boost::system::error_code ec;
      size_t n = socket_.read_some(asio::buffer(loop_.scratch), ec);
      if (WouldBlock(ec)) return WaitReadable();
      if (ec) return Close();  // EOF or reset: nothing more can be answered
      if (state_ == State::kLinger) {
        lingered_ += n;
        if (lingered_ > kLingerMaxBytes) return Close();
        continue;
      }
      pending_.append(loop_.scratch.data(), n);
      Parse();
    }
    // Many reads in a row: let the loop's other connections have a turn.
    asio::post(loop_.io, [self = shared_from_this()] { self->ReadSome(); });
  }

  void WaitReadable() {
    if (read_waiting_) return;  // one wait at a time: a 408 written mid-head already has one
    read_waiting_ = true;
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->read_waiting_ = false;
                         if (self->state_ == State::kClosed) return;
                         if (ec) return self->Close();
                         self->ReadSome();
                       });
  }

  // Feeds pending_ to the parser and acts on what it finds.
  void Parse() {
    size_t used = 0;
    while (used < pending_.size()) {
      if (state_ == State::kIdle) BeginRequest();
      if (state_ != State::kHead && state_ != State::kBody) break;
      beast::error_code ec;
      size_t n = parser_->put(asio::buffer(pending_.data() + used, pending_.size() - used), ec);
      used += n;
      if (ec == beast::http::error::need_more) break;
      if (ec) {
        pending_.erase(0, used);
        return ParseError(ec);
      }
      if (state_ == State::kHead && parser_->is_header_done()) {
        if (!HeadDone(/*body_bytes_buffered=*/used < pending_.size())) {
          pending_.erase(0, used);
          return;
        }
      }
      if (parser_->is_done()) {
        pending_.erase(0, used);
        return RequestDone();
      }
    }
    pending_.erase(0, used);
    // Beast bounds the head, and body bytes are consumed as they come, but a chunk header (its
    // extensions) or a trailer field is kept whole until its line ends, with no limit of Beast's:
    // bound what may wait unparsed, or one connection could make it grow without end.
    if (pending_.size() > front_.options.max_header_bytes + loop_.scratch.size()) {
      Refuse(
          Reason::kHeaderTooLarge, 431,
          fmt::format("a chunk header or trailer is larger than {} bytes", front_.options.max_header_bytes));
    }
  }

  void BeginRequest() {
    head_.Clear();
    body_.clear();
    discard_ = false;
    limit_ = Limit::kNone;
    refusal_.reset();
    parser_.emplace(*this);
    parser_->eager(false);  // stop after the head, so the handler sees it before the body
    parser_->header_limit(static_cast<std::uint32_t>(front_.options.max_header_bytes));
    parser_->body_limit(front_.options.max_body_bytes);
    SetState(State::kHead, front_.options.header_timeout);
  }

  // Returns false when the request was answered (or the connection closed) without its body.
  bool HeadDone(bool body_bytes_buffered) {
    head_.content_length_ =
        parser_->content_length() ? std::optional(*parser_->content_length()) : std::nullopt;
    head_.chunked_ = parser_->chunked();
    keep_alive_ = parser_->keep_alive();
    bool expects_continue = false;
    if (auto expect = head_.Header("Expect")) expects_continue = EqualsIgnoreCase(*expect, "100-continue");

    std::variant<Response, std::unique_ptr<Exchange>> decision;
    try {
      decision = front_.handler.OnHead(head_);
    } catch (const std::exception& e) {
      // A handler bug must cost one request, never the loop thread and every connection on it.
      log::Error("handler_failed", {{"step", "head"}, {"error", e.what()}});
      decision = Response::Json(500, front_.handler.ErrorBody("internal error"));
    }
    if (auto* refusal = std::get_if<Response>(&decision)) {
      bool small = !head_.chunked_ && head_.content_length_.value_or(0) <= kDiscardMaxBytes;
      if (!head_.has_body() || (small && !expects_continue)) {
        // Read (and drop) a small body so the connection stays usable for the next request.
        discard_ = true;
        refusal_ = std::move(*refusal);
        parser_->eager(true);
        SetState(State::kBody, front_.options.body_timeout);
        return true;
      }
      refusal->close = true;
      Write(std::move(*refusal));
      return false;
    }
    exchange_ = std::move(std::get<std::unique_ptr<Exchange>>(decision));
    size_t announced = head_.content_length_.value_or(0);
    if (announced > 0) {
      if (!front_.ChargeBody(announced)) {
        Refuse(Reason::kOverloaded, 503, "ingest has too many request bodies in memory; retry", true);
        return false;
      }
      charged_ += announced;
      body_.reserve(announced);
    }
    if (expects_continue && head_.has_body() && !body_bytes_buffered) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      boost::system::error_code ec;
      // Best effort: a client that does not get it sends the body after its own short wait.
      socket_.write_some(asio::buffer(kContinue.data(), kContinue.size()), ec);
    }
    parser_->eager(true);
    SetState(State::kBody, front_.options.body_timeout);
    return true;
  }
  void RequestDone() {
    SetState(State::kHandling, std::chrono::hours(24 * 365));
    if (discard_) {
      Response refusal = std::move(*refusal_);
      refusal_.reset();
      return Write(std::move(refusal));
    }
    ++request_;
    std::unique_ptr<Exchange> exchange = std::move(exchange_);
    try {
      exchange->OnBody(std::move(body_), Responder(shared_from_this(), request_));
    } catch (const std::exception& e) {
      // The Responder, gone with the exception, answered 500 unless the handler had answered.
      log::Error("handler_failed", {{"step", "body"}, {"error", e.what()}});
    }
  }

  void ParseError(const beast::error_code& ec) {
    // Beast parses the request line and each field as they arrive; if even the request line had
    // not ended within the head's limit, the target is what is too long.
    bool head_limit = limit_ == Limit::kNone && ec == beast::http::error::header_limit;
    if (limit_ == Limit::kUriTooLong || (head_limit && head_.target().empty())) {
      return Refuse(Reason::kUriTooLong, 414,
                    fmt::format("the request target is longer than {} bytes", front_.options.max_uri_bytes));
    }
    if (limit_ == Limit::kTooManyHeaders) {
      return Refuse(Reason::kTooManyHeaders, 431,
                    fmt::format("more than {} header fields", front_.options.max_header_count));
    }
    if (limit_ == Limit::kOverloaded) {
      return Refuse(Reason::kOverloaded, 503, "ingest has too many request bodies in memory; retry", true);
    }
    if (head_limit) {
      return Refuse(Reason::kHeaderTooLarge, 431,
                    fmt::format("the request head is larger than {} bytes", front_.options.max_header_bytes));
    }
    if (ec == beast::http::error::body_limit) {
      return Refuse(Reason::kBodyTooLarge, 413,
                    fmt::format("request body too large (at most {} bytes)", front_.options.max_body_bytes));
    }
    Refuse(Reason::kBadRequest, 400, fmt::format("malformed HTTP request: {}", ec.message()));
  }

  // A request the front refuses itself: counted, logged (rate-limited) and answered.
  void Refuse(Reason reason, int status, std::string_view message, bool retry = false) {
    front_.Refused(reason, status, &socket_);
    WriteError(status, message, retry);
  }

  // An error the front answers itself; the connection closes after it.
  void WriteError(int status, std::string_view message, bool retry = false) {
    Response r = Response::Json(status, front_.handler.ErrorBody(message));
    if (retry) r.headers.emplace_back("Retry-After", std::to_string(front_.options.retry_after_seconds));
    r.close = true;
    Write(std::move(r));
  }

  void Write(Response response) {
    exchange_.reset();  // a request answered early (408, 413, 503) ends here, not at the close
    front_.ReleaseBody(charged_);
    charged_ = 0;
    ++served_;
    close_after_write_ = response.close || !keep_alive_ || front_.draining.load(std::memory_order_relaxed) ||
                         served_ >= front_.options.keep_alive_max_requests;
    bool has_body = response.status >= 200 && response.status != 204 && response.status != 304;
    bool send_body = has_body && head_.method() != "HEAD";  // HEAD: the length, not the bytes
    // Appended piece by piece: a fmt::format per line cost a temporary string and a format parse
    // on every answer.
    out_.clear();
    out_ += "HTTP/1.1 ";
    AppendDecimal(out_, static_cast<size_t>(response.status));
    out_.append(" ").append(StatusText(response.status)).append("\r\n");
    out_ += loop_.date;
    if (has_body) {
      out_.append("Content-Type: ").append(response.content_type).append("\r\nContent-Length: ");
      AppendDecimal(out_, response.body.size());
      out_ += "\r\n";
    }
    for (const auto& [name, value] : response.headers)
      out_.append(name).append(": ").append(value).append("\r\n");
    if (close_after_write_) out_ += "Connection: close\r\n";
    out_ += "\r\n";
    if (send_body) out_ += response.body;
    written_ = 0;
    SetState(State::kWriting, front_.options.write_timeout);
    WriteSome();
  }

  void WriteSome() {
    while (written_ < out_.size()) {
      boost::system::error_code ec;
      size_t n = socket_.write_some(asio::buffer(out_.data() + written_, out_.size() - written_), ec);
      if (WouldBlock(ec)) {
        socket_.async_wait(tcp::socket::wait_write,
                           [self = shared_from_this()](const boost::system::error_code& wait_ec) {
                             if (self->state_ != State::kWriting) return;
                             if (wait_ec) return self->Close();
                             self->WriteSome();
                           });
        return;
      }
      if (ec) return Close();
      written_ += n;
    }
    Written();
  }

  void Written() {
    if (out_.capacity() > 4096) std::string().swap(out_);
    if (close_after_write_) return Linger();
    SetState(State::kIdle, front_.options.idle_timeout);
    if (front_.draining.load(std::memory_order_relaxed) && pending_.empty()) return Close();
    // Go on from the loop, not from here: a refusal is written from inside Parse(), so going on
    // directly would recurse once per pipelined request.
    asio::post(loop_.io, [self = shared_from_this()] { self->Resume(); });
  }

  void Resume() {
    if (state_ != State::kIdle) return;
    if (!pending_.empty()) Parse();  // a pipelined request already read
    if (pending_.empty() && pending_.capacity() > 4096) std::string().swap(pending_);
    // A client almost always sends its next request only once it has this answer, so a read now
    // would find nothing: a wasted system call per request. Wait for the socket instead: asio re-arms
    // it (epoll_ctl), which reports at once bytes that are already there.
    if (state_ == State::kIdle || state_ == State::kHead || state_ == State::kBody) return WaitReadable();
    ReadSome();
  }

  // Closing after a response: stop sending, then read and drop what the client still sends for a
  // moment, so our close does not reset the connection before the client has read the response.
  void Linger() {
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    pending_.clear();
    lingered_ = 0;
    SetState(State::kLinger, std::chrono::duration_cast<std::chrono::milliseconds>(kLingerTime));
    ReadSome();
  }

  Loop& loop_;
  HttpFront::Impl& front_;
  tcp::socket socket_;
  size_t index_ = 0;
  State state_ = State::kIdle;
  Clock::time_point deadline_{};
  std::string pending_;  // read but not yet parsed (a partial head, or pipelined requests)
  std::optional<Parser> parser_;
  RequestHead head_;
  std::string body_;
  std::unique_ptr<Exchange> exchange_;
  std::optional<Response> refusal_;
  bool discard_ = false;
  bool keep_alive_ = true;
  Limit limit_ = Limit::kNone;
  size_t charged_ = 0;  // body bytes counted against max_pending_body_bytes
  std::uint64_t request_ = 0;
  size_t served_ = 0;
  std::string out_;
  size_t written_ = 0;
  bool close_after_write_ = false;
  size_t lingered_ = 0;
  bool read_waiting_ = false;
};

// ---- Responder ----

// What a Responder dropped unanswered sends.
constexpr std::string_view kDropped = "{\"status\":\"error\",\"error\":\"request dropped\",\"errors\":[]}";

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    if (connection_) Send(Response::Json(500, std::string(kDropped)));
    connection_ = std::move(other.connection_);
    request_ = other.request_;
  }
  return *this;
}

Responder::~Responder() {
  if (connection_) Send(Response::Json(500, std::string(kDropped)));
}

void Responder::Send(Response response) {
  std::shared_ptr<Connection> c = std::move(connection_);
  if (!c) return;
  asio::post(c->loop().io, [c, request = request_, r = std::move(response)]() mutable {
    c->Deliver(request, std::move(r));
  });
}

// ---- accepting and sweeping ----

void HttpFront::Impl::Accept() {
  Loop& target = *loops[next_loop];
  next_loop = (next_loop + 1) % loops.size();
  acceptor->async_accept(target.io, [this, &target](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Out of descriptors or memory: retrying at once would spin. Wait a little.
      log::Warn("accept_failed", {{"error", ec.message()}});
      accept_retry->expires_after(std::chrono::milliseconds(100));
      accept_retry->async_wait([this](const boost::system::error_code& wait_ec) {
        if (!wait_ec && acceptor->is_open()) Accept();
      });
      return;
    }
    OnAccepted(target, std::move(socket));
    Accept();
  });
}

void HttpFront::Impl::OnAccepted(Loop& loop, tcp::socket socket) {
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.set_option(tcp::no_delay(true), ec);
  if (open.load(std::memory_order_relaxed) >= options.max_connections) {
    Refused(Reason::kMaxConnections, 503, &socket);
    std::string body = handler.ErrorBody("too many open connections; retry");
    std::string out = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
        options.retry_after_seconds, body.size(), body);
    socket.write_some(asio::buffer(out), ec);  // best effort on a fresh socket: it fits its buffer
    socket.shutdown(tcp::socket::shutdown_send, ec);
    socket.close(ec);
    return;
  }
  open.fetch_add(1, std::memory_order_relaxed);
  accepted->Inc();
  asio::post(loop.io, [&loop, s = std::move(socket)]() mutable {
    std::make_shared<Connection>(loop, std::move(s))->Start();
  });
}

namespace {

// The loop's connections, each held alive: Expire, Drain and Close may swap-remove from the list.
std::vector<std::shared_ptr<Connection>> Snapshot(const Loop& loop) {
  std::vector<std::shared_ptr<Connection>> all;
  all.reserve(loop.connections.size());
  for (Connection* c : loop.connections) all.push_back(c->shared_from_this());
  return all;
}

}  // namespace

void HttpFront::Impl::Sweep(Loop& loop) {
  loop.date = DateHeader();
  auto now = Clock::now();
  // Expire may close (and swap-remove) connections: walk a snapshot, holding each alive.
  std::vector<std::shared_ptr<Connection>> due;
  for (Connection* c : loop.connections) {
    if (c->deadline() <= now) due.push_back(c->shared_from_this());
  }
  for (auto& c : due) c->Expire();
  if (draining.load(std::memory_order_relaxed)) {
    for (auto& c : Snapshot(loop)) c->Drain();
  }
  loop.sweep.expires_after(kSweepInterval);
  loop.sweep.async_wait([this, &loop](const boost::system::error_code& ec) {
    if (!ec) Sweep(loop);
  });
}

// ---- HttpFront ----

HttpFront::HttpFront(FrontOptions options, Handler& handler, metrics::Registry& registry)
    : options_(std::move(options)), impl_(std::make_unique<Impl>(options_, handler)) {
  int threads =
      options_.threads > 0 ? options_.threads : static_cast<int>(std::thread::hardware_concurrency());
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) impl_->loops.push_back(std::make_unique<Loop>(*impl_));
  Impl* impl = impl_.get();
  registry.AddCallbackGauge("pv_ingest_connections", "Open connections on the API port",
                            [impl] { return static_cast<double>(impl->open.load()); });
  registry.AddCallbackGauge("pv_ingest_pending_body_bytes",
                            "Request body bytes held in memory (limit: ingest.max_pending_body_bytes)",
                            [impl] { return static_cast<double>(impl->pending_body.load()); });
  impl_->accepted =
      &registry.AddCounter("pv_ingest_connections_accepted_total", "Connections accepted on the API port")
           .Get();
  auto& refused = registry.AddCounter(
      "pv_ingest_refused_total", "Requests and connections refused by the HTTP front's limits", {"reason"});
  for (size_t r = 0; r < impl_->refused.size(); ++r) {
    impl_->refused[r] = &refused.With({kReasonNames[r]});
  }
}

HttpFront::~HttpFront() {
  Shutdown(std::chrono::milliseconds(0));
}

int HttpFront::Bind() {
  Loop& first = *impl_->loops.front();
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) throw std::runtime_error(fmt::format("ingest.host '{}' is not an IP address", options_.host));
  tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
  impl_->acceptor.emplace(first.io);
  auto& acceptor = *impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(SOMAXCONN, ec);
  if (ec) {
    impl_->acceptor.reset();
    throw std::runtime_error(
        fmt::format("cannot listen on {}:{}: {}", options_.host, options_.port, ec.message()));
  }
  impl_->accept_retry.emplace(first.io);
  port_ = acceptor.local_endpoint().port();
  return port_;
}

void HttpFront::Start() {
  if (!impl_->acceptor) throw std::logic_error("HttpFront::Start before Bind");
  if (impl_->started) return;
  impl_->started = true;
  Impl* impl = impl_.get();
  asio::post(impl_->loops.front()->io, [impl] { impl->Accept(); });
  for (auto& loop : impl_->loops) {
    Loop* l = loop.get();
    asio::post(l->io, [impl, l] { impl->Sweep(*l); });
    size_t index = static_cast<size_t>(&loop - &impl_->loops.front());
    l->thread = std::thread([l, index] {
      // Named, so `top -H` and perf tell the loops from librdkafka's threads.
      ::pthread_setname_np(::pthread_self(), fmt::format("ingest-loop-{}", index).c_str());
      auto guard = asio::make_work_guard(l->io);
      l->io.run();
    });
  }
}

size_t HttpFront::Shutdown(std::chrono::milliseconds grace) {
  if (!impl_->started) {
    if (impl_->acceptor) {
      boost::system::error_code ignored;
      impl_->acceptor->close(ignored);
    }
    return 0;
  }
  if (impl_->loops.front()->thread.joinable()) {
    impl_->draining.store(true);
    Impl* impl = impl_.get();
    asio::post(impl_->loops.front()->io, [impl] {
      boost::system::error_code ignored;
      impl->acceptor->close(ignored);
      impl->accept_retry->cancel();
    });
    for (auto& loop : impl_->loops) {
      Loop* l = loop.get();
      asio::post(l->io, [l] {
        for (auto& c : Snapshot(*l)) c->Drain();
      });
    }
    auto deadline = Clock::now() + grace;
    while (impl_->open.load() > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  size_t left = impl_->open.load();
  for (auto& loop : impl_->loops) {
    Loop* l = loop.get();
    if (!l->thread.joinable()) continue;
    asio::post(l->io, [l] {
      for (auto& c : Snapshot(*l)) c->Close();
      l->sweep.cancel();
      l->io.stop();
    });
  }
  for (auto& loop : impl_->loops) {
    if (loop->thread.joinable()) loop->thread.join();
  }
  return left;
}

size_t HttpFront::open_connections() const {
  return impl_->open.load();
}

}  // namespace pv::ingest::http
