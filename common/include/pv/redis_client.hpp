// A small Redis client over hiredis for one thread (the workers' loop, the dispatcher's feedback
// pipeline): pipelines (every command of a batch in one write, every reply in one read), reconnection
// with backoff, and a connection generation so that callers know when server-side state (loaded
// scripts) is gone. A batch is either run (Pipeline: write, then wait for every reply) or sent and
// its replies received later (Send, Receive: an event loop that waits on fd() beside its other work).
// An event loop also connects without blocking (Options::connect_in_background): a Redis that does
// not answer (a host gone, its packets dropped) must not hold the loop for a connect timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pv/redis_url.hpp"

struct redisContext;

namespace pv {

struct RedisReply {
  enum class Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // string, status or error text
  long long integer = 0;
  std::vector<RedisReply> elements;

  bool IsError() const { return type == Type::kError; }
  bool IsNil() const { return type == Type::kNil; }
};

using RedisEndpoint = pv::RedisUrl;

// redis.url by the parser every component uses (pv/redis_url.hpp). Throws std::invalid_argument
// (without the password).
RedisEndpoint ParseRedisEndpoint(const std::string& url);

// A batch of commands written as RESP into one buffer ("*<n>\r\n" then "$<len>\r\n<arg>\r\n" per
// argument): clear() keeps the buffer, so a caller that keeps one RedisCommands formats every batch
// without allocating (hiredis's own formatting took a dozen allocations per command).
class RedisCommands {
 public:
  void Add(std::initializer_list<std::string_view> args);
  void Add(const std::vector<std::string>& args);
  void Add(std::span<const std::string_view> args);
  void clear() {
    resp_.clear();
    count_ = 0;
  }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  std::string_view resp() const { return resp_; }

 private:
  std::string resp_;
  size_t count_ = 0;
};

class RedisClient {
 public:
  struct Options {
    std::string url = "redis://127.0.0.1:6379";
    std::chrono::milliseconds timeout{2000};           // connect and each read/write
    std::chrono::milliseconds reconnect_backoff{500};  // no reconnect attempt more often than this
    // The most bytes one reply may take on the wire. A server answering without end (a bulk string
    // or an array that does not stop: a bug, or something else listening on the port) would
    // otherwise take the process's memory; past it the connection is dropped. Our replies are
    // under a few kilobytes; SSCAN pages of 1,000 members well under a megabyte.
    std::size_t max_reply_bytes = 64 << 20;
    // Commands run on every new connection after AUTH and SELECT (the worker's SCRIPT LOAD), in one
    // round trip; an error reply fails the connection. Their replies: setup_replies().
    std::vector<std::vector<std::string>> on_connect;
    // Connect on a thread of its own: the lookup, the connect and the setup commands each block for
    // up to `timeout`. Every call that would connect (EnsureConnected, Pipeline, Send) then waits at
    // most `connect_wait` for a connection it starts (a healthy server's takes a millisecond) and
    // otherwise returns "not connected" at once, as while the backoff runs; a later call takes the
    // connection once it is made. For an event loop, which must not stop for a server that does not
    // answer. Off: calls block while they connect (bounded by `timeout`).
    bool connect_in_background = false;
    std::chrono::milliseconds connect_wait{50};
  };

  explicit RedisClient(Options options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Runs `commands` in one round trip. nullopt when the server could not be reached or the
  // connection broke (it is dropped, and a later call reconnects). Error replies are replies.
  std::optional<std::vector<RedisReply>> Pipeline(const std::vector<std::vector<std::string>>& commands);
  std::optional<std::vector<RedisReply>> Pipeline(const RedisCommands& commands);

  // A batch without waiting for it: Send writes what the socket takes now and keeps the rest; each
  // Receive writes more of it and reads the replies that have come, without blocking, appending
  // them to `replies` until it holds `count`. Both return false when not connected or when the
  // connection broke (it is dropped). Batches may follow each other before their replies come (the
  // replies come in order); no Pipeline before the last reply of the last batch sent.
  bool Send(const RedisCommands& commands);
  bool Receive(std::vector<RedisReply>& replies, std::size_t count);
  // While a sent batch is unanswered: the socket, and whether part of the batch is still to write
  // (wait for POLLOUT too). -1 when not connected.
  int fd() const;
  bool WantsWrite() const { return written_ < unsent_.size(); }
  // Drops the connection (a caller that gave up waiting); the next call reconnects.
  void Drop(const std::string& why);

  // Connects now if not connected (respecting the backoff; in the background when so configured).
  // Returns whether connected.
  bool EnsureConnected();
  // Readable from any thread.
  bool connected() const { return connected_.load(std::memory_order_relaxed); }
  // A connection is being made in the background (connect_in_background): not connected yet, and
  // not known to be unreachable either.
  bool connecting() const { return attempt_ != nullptr; }
  // Increments on every successful (re)connect.
  std::uint64_t generation() const { return generation_; }
  // The replies to Options::on_connect on the current connection (of the last one when none).
  const std::vector<RedisReply>& setup_replies() const { return setup_replies_; }
  const std::string& last_error() const { return last_error_; }
  const RedisEndpoint& endpoint() const { return endpoint_; }

 private:
  // Writes unsent_ from written_ without blocking; false when the connection broke.
  bool Flush();
  // Reads what the socket holds (at most 16 KiB) into the reply reader, waiting up to
  // options_.timeout when `wait`. 1: read some; 0: nothing there yet; -1: the connection broke or
  // the wait timed out (dropped).
  int ReadSome(bool wait);
  // The next whole reply the reader holds. nullopt: none yet, or the connection was dropped (which
  // `ctx_ == nullptr` tells) on a protocol error or because the reply being read already took more
  // than max_reply_bytes (checked after every read, so at most 16 KiB past it are ever held).
  std::optional<RedisReply> NextReply();
  // Connects and runs the setup (AUTH, SELECT, on_connect) in one round trip, blocking.
  bool ConnectNow();
  // Takes the background attempt's connection once it is made, waiting up to `wait` for it.
  bool Adopt(std::chrono::milliseconds wait);
  void MarkConnected();

  // A connection being made on a thread of its own; shared with that thread, which outlives the
  // client when it is destroyed meanwhile (the attempt then frees what it made).
  struct Attempt;
  std::shared_ptr<Attempt> attempt_;
  std::vector<RedisReply> setup_replies_;
  bool quiet_ = false;  // the connecting thread's client: its owner logs what becomes of it

  Options options_;
  RedisEndpoint endpoint_;
  redisContext* ctx_ = nullptr;
  std::atomic<bool> connected_{false};
  std::uint64_t generation_ = 0;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::string last_error_;
  std::string unsent_;  // the sent batches, until the socket took all of them
  std::size_t written_ = 0;
  std::size_t awaiting_ = 0;  // replies of the sent batches not yet received
  std::uint64_t fed_ = 0;          // bytes given to this connection's reply reader
  std::uint64_t reply_start_ = 0;  // where in them the reply being read starts
};

}  // namespace pv
