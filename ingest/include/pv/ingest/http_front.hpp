// The public API port: an event-driven HTTP/1.1 server (Boost.Asio event loops, Boost.Beast's
// request parser) bounded everywhere, with no thread per connection and none blocked per request.
//
// A few loop threads (default: one per core) each own their connections. A request is read in two
// steps: its head (request line and headers), which the handler may refuse at once without reading
// the body, then its body into memory. The handler completes the request later from any thread
// (ingest: the broker's delivery report) through its Responder, which posts the answer to the
// connection's loop. Requests of one connection are served in order (keep-alive and pipelining).
//
// Every limit answers with its status and closes the connection where the stream cannot be trusted
// any more; each one is counted in pv_ingest_refused_total{reason} and logged (at most once a second
// per reason). The limits and their statuses are in FrontOptions; tests/ingest/front_test.cpp
// attacks each of them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "pv/metrics.hpp"

namespace pv::ingest::http {

struct FrontOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0: any free port (see HttpFront::port())
  int threads = 0;  // event-loop threads; 0: one per core
  // Past it, a new connection is answered 503 and closed at once.
  size_t max_connections = 10000;
  // From a request's first byte to the end of its head, and from there to the end of its body;
  // whole-phase deadlines (not per read), so trickling bytes cannot extend them. → 408 and close.
  std::chrono::milliseconds header_timeout{5000};
  std::chrono::milliseconds body_timeout{10000};
  // An open connection with no request under way closes after this (keep-alive).
  std::chrono::milliseconds idle_timeout{5000};
  // A response the client does not read within this closes the connection.
  std::chrono::milliseconds write_timeout{10000};
  size_t max_header_bytes = 16 * 1024;  // request line + headers → 431 (414 when the line alone is)
  size_t max_header_count = 100;        // → 431
  size_t max_uri_bytes = 4096;          // → 414
  size_t max_body_bytes = 1 << 20;      // Content-Length or chunked, enforced while reading → 413
  // Memory for request bodies across every connection (read or waiting for their answer). A request
  // that would pass it gets 503 with Retry-After: 10,000 connections × 1 MiB bodies cannot exhaust
  // memory, whatever the per-request limit.
  size_t max_pending_body_bytes = 128u << 20;
  size_t keep_alive_max_requests = 100000;
  int retry_after_seconds = 1;
};

// A response to write. 204 and 1xx carry no body.
struct Response {
  int status = 204;
  std::string body;
  std::string_view content_type = "application/json";
  std::vector<std::pair<std::string_view, std::string>> headers;  // names are static strings
  bool close = false;                                             // close the connection after this response

  static Response Json(int status, std::string body) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }
};

// The head of a request as read from the wire. Views stay valid until the request is answered.
class RequestHead {
 public:
  std::string_view method() const { return View(method_); }
  std::string_view target() const { return View(target_); }
  // The first value of a header (case-insensitive name), or nullopt.
  std::optional<std::string_view> Header(std::string_view name) const;
  size_t header_count() const { return fields_.size(); }
  // Body bytes announced by Content-Length; nullopt when chunked or absent.
  std::optional<std::uint64_t> content_length() const { return content_length_; }
  bool chunked() const { return chunked_; }
  bool has_body() const { return chunked_ || content_length_.value_or(0) > 0; }

 private:
  friend class Connection;
  struct Span {
    std::uint32_t offset = 0;
    std::uint32_t size = 0;
  };
  std::string_view View(Span s) const { return std::string_view(store_).substr(s.offset, s.size); }
  Span Keep(std::string_view text);
  void Clear();

  std::string store_;  // request line parts and fields, copied out of the read buffer (reused)
  Span method_;
  Span target_;
  std::vector<std::pair<Span, Span>> fields_;
  std::optional<std::uint64_t> content_length_;
  bool chunked_ = false;
};

class Connection;

// Completes one request: Send exactly once, from any thread. Dropping it unsent answers 500.
class Responder {
 public:
  Responder() = default;
  explicit Responder(std::shared_ptr<Connection> connection, std::uint64_t request)
      : connection_(std::move(connection)), request_(request) {}
  Responder(Responder&&) noexcept = default;
  Responder& operator=(Responder&&) noexcept;
  Responder(const Responder&) = delete;
  Responder& operator=(const Responder&) = delete;
  ~Responder();

  void Send(Response response);

 private:
  std::shared_ptr<Connection> connection_;
  std::uint64_t request_ = 0;
};

// One request whose head the handler accepted: it receives the body.
class Exchange {
 public:
  virtual ~Exchange() = default;
  // The whole body (at most max_body_bytes). Runs on the connection's loop thread: must not block.
  virtual void OnBody(std::string body, Responder responder) = 0;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // Runs on the loop thread once a head is read, before any of the body. Return a Response to
  // answer without reading the body (a body still on the wire is then discarded when small, else
  // the connection closes), or an Exchange to go on.
  virtual std::variant<Response, std::unique_ptr<Exchange>> OnHead(const RequestHead& head) = 0;
  // The body of an error the front answers itself (408, 413, 414, 431, 400, 503).
  virtual std::string ErrorBody(std::string_view message) = 0;
};

class HttpFront {
 public:
  // Registers pv_ingest_connections, pv_ingest_connections_accepted_total and
  // pv_ingest_refused_total{reason} in `registry`. `handler` must outlive the front.
  HttpFront(FrontOptions options, Handler& handler, metrics::Registry& registry);
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds and listens (throws std::runtime_error when it cannot); returns the port.
  int Bind();
  // Starts the loop threads and accepting. Returns at once.
  void Start();
  // Stops accepting; idle connections close, every other connection finishes the request it is
  // reading or waiting on (answered with Connection: close), up to `grace`; then the loops stop.
  // Returns the number of connections that were still open at the deadline (closed anyway).
  size_t Shutdown(std::chrono::milliseconds grace);

  int port() const { return port_; }
  size_t open_connections() const;
  const FrontOptions& options() const { return options_; }

  struct Impl;

 private:
  FrontOptions options_;
  std::unique_ptr<Impl> impl_;
  int port_ = -1;
};

}  // namespace pv::ingest::http
