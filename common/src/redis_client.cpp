#include "pv/redis_client.hpp"

#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "pv/config.hpp"
#include "pv/log.hpp"
#include "pv/redis_url.hpp"

namespace pv {

// Errors show the URL with its password masked: they end up in logs and on the terminal.
RedisEndpoint ParseRedisEndpoint(const std::string& url) {
  RedisEndpoint endpoint;
  std::string error;
  if (!pv::ParseRedisUrl(url, endpoint, error)) throw std::invalid_argument(error);
  return endpoint;
}

namespace {

// hiredis' own reply functions, but for arrays: hiredis allocates an array's element table as soon as
// it reads the count ("*2147483647" is 16 GiB), long before the elements come and the byte limit
// could see them. Every element takes at least 3 bytes ("+\r\n"), so a count over a third of
// max_reply_bytes (the task's privdata) could only make a reply over it: refused before the
// allocation (hiredis then reports "Out of memory", which NextReply names for what it is).
thread_local bool t_array_refused = false;
void* (*g_hiredis_create_array)(const redisReadTask*, int) = nullptr;  // set with the table below

void* LimitedArray(const redisReadTask* task, int elements) {
  const auto* limit = static_cast<const std::size_t*>(task->privdata);
  if (limit != nullptr && elements > 0 && static_cast<std::size_t>(elements) > *limit / 3) {
    t_array_refused = true;
    return nullptr;
  }
  return g_hiredis_create_array(task, elements);
}

// The table every context's reader uses: hiredis' own (the same for every context) with LimitedArray.
redisReplyObjectFunctions* LimitedFunctions(const redisReplyObjectFunctions* hiredis) {
  static redisReplyObjectFunctions limited = [&] {
    g_hiredis_create_array = hiredis->createArray;
    redisReplyObjectFunctions f = *hiredis;
    f.createArray = &LimitedArray;
    return f;
  }();
  return &limited;
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = r->type == REDIS_REPLY_STRING   ? RedisReply::Type::kString
                 : r->type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                 : RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
  }
  return out;
}

}  // namespace

// A connection being made on a thread of its own: by a client of the thread's (blocking, quiet: its
// owner logs), whose connection the owner then takes.
struct RedisClient::Attempt {
  std::mutex mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::unique_ptr<RedisClient> made;
};

RedisClient::RedisClient(Options options)
    : options_(std::move(options)), endpoint_(ParseRedisEndpoint(options_.url)) {}

RedisClient::~RedisClient() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

void RedisClient::Drop(const std::string& why) {
  unsent_.clear();
  written_ = 0;
  awaiting_ = 0;
  fed_ = 0;
  reply_start_ = 0;
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
  bool was_connected = connected_.exchange(false);
  if (!quiet_ && (was_connected || last_error_ != why)) {
    pv::log::Warn("redis_unreachable", {{"host", endpoint_.host}, {"port", endpoint_.port}, {"error", why}});
  }
  last_error_ = why;
  next_attempt_ = std::chrono::steady_clock::now() + options_.reconnect_backoff;
}

bool RedisClient::EnsureConnected() {
  if (ctx_ != nullptr) return true;
  if (attempt_ != nullptr) return Adopt(std::chrono::milliseconds(0));
  if (std::chrono::steady_clock::now() < next_attempt_) return false;
  if (!options_.connect_in_background) return ConnectNow();
  // The thread's client has its own copy of the options: this one may be gone before it ends (the
  // attempt, shared, then frees the connection it made).
  attempt_ = std::make_shared<Attempt>();
  Options blocking = options_;
  blocking.connect_in_background = false;
  std::thread connector;
  try {
    connector = std::thread([attempt = attempt_, blocking = std::move(blocking)] {
      auto made = std::make_unique<RedisClient>(blocking);
      made->quiet_ = true;
      made->ConnectNow();
      std::lock_guard lock(attempt->mutex);
      attempt->made = std::move(made);
      attempt->done = true;
      attempt->done_cv.notify_all();
    });
  } catch (const std::system_error& e) {  // no thread to be had: an attempt failed, tried again later
    attempt_.reset();
    Drop(std::string("cannot start the connecting thread: ") + e.what());
    return false;
  }
  connector.detach();
  return Adopt(options_.connect_wait);
}

bool RedisClient::ConnectNow() {
  ctx_ = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, ToTimeval(options_.timeout));
  if (ctx_ == nullptr || ctx_->err != 0) {
    Drop(ctx_ == nullptr ? "cannot allocate context" : ctx_->errstr);
    return false;
  }
  redisSetTimeout(ctx_, ToTimeval(options_.timeout));
  redisEnableKeepAlive(ctx_);
  ctx_->reader->fn = LimitedFunctions(ctx_->reader->fn);
  ctx_->reader->privdata = &options_.max_reply_bytes;
  std::vector<std::vector<std::string>> setup;
  if (!endpoint_.password.empty()) setup.push_back({"AUTH", endpoint_.password});
  if (endpoint_.db != 0) setup.push_back({"SELECT", std::to_string(endpoint_.db)});
  const std::size_t own = setup.size();
  setup.insert(setup.end(), options_.on_connect.begin(), options_.on_connect.end());
  ++generation_;  // before Pipeline, which needs ctx_ only
  setup_replies_.clear();
  if (!setup.empty()) {
    // One round trip, its replies read as every batch's (the reply limit, the timeout).
    auto replies = Pipeline(setup);
    if (!replies) return false;
    for (const auto& r : *replies) {
      if (r.IsError()) {
        Drop("setup: " + r.str);
        return false;
      }
    }
    setup_replies_.assign(std::make_move_iterator(replies->begin() + static_cast<std::ptrdiff_t>(own)),
                          std::make_move_iterator(replies->end()));
  }
  MarkConnected();
  return true;
}

bool RedisClient::Adopt(std::chrono::milliseconds wait) {
  std::unique_lock lock(attempt_->mutex);
  if (wait.count() > 0) attempt_->done_cv.wait_for(lock, wait, [&] { return attempt_->done; });
  if (!attempt_->done) return false;
  std::unique_ptr<RedisClient> made = std::move(attempt_->made);
  lock.unlock();
  attempt_.reset();
  if (made->ctx_ == nullptr) {
    Drop(made->last_error_);
    return false;
  }
  ctx_ = std::exchange(made->ctx_, nullptr);
  ctx_->reader->privdata = &options_.max_reply_bytes;  // the limit the thread's client read with is gone
  fed_ = made->fed_;  // what its reader was given, so that the next reply's size counts from there
  reply_start_ = made->reply_start_;
  setup_replies_ = std::move(made->setup_replies_);
  ++generation_;
  MarkConnected();
  return true;
}

void RedisClient::MarkConnected() {
  if (!connected_.exchange(true) && !quiet_) {
    pv::log::Info("redis_connected", {{"host", endpoint_.host}, {"port", endpoint_.port}});
  }
  last_error_.clear();
}

namespace {

size_t Digits(size_t n) {
  size_t digits = 1;
  for (; n >= 10; n /= 10) ++digits;
  return digits;
}

// "<tag><n>\r\n" at `p`; returns its end.
char* PutHeader(char* p, char tag, size_t n) {
  *p++ = tag;
  p = std::to_chars(p, p + 20, n).ptr;
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

// The command as a RESP array of bulk strings, its size counted first and written in place: an append
// per header, argument and CRLF cost ~3,500 instructions of a status write's five commands (callgrind).
template <typename Args>
void AppendCommand(std::string& resp, const Args& args) {
  size_t bytes = 3 + Digits(std::size(args));
  for (const auto& a : args) bytes += 5 + Digits(a.size()) + a.size();
  const size_t at = resp.size();
  resp.resize(at + bytes);
  char* p = PutHeader(resp.data() + at, '*', std::size(args));
  for (const auto& a : args) {
    p = PutHeader(p, '$', a.size());
    if (!a.empty()) std::memcpy(p, a.data(), a.size());
    p += a.size();
    *p++ = '\r';
    *p++ = '\n';
  }
}

}  // namespace

void RedisCommands::Add(std::initializer_list<std::string_view> args) {
  AppendCommand(resp_, args);
  ++count_;
}

void RedisCommands::Add(const std::vector<std::string>& args) {
  AppendCommand(resp_, args);
  ++count_;
}

void RedisCommands::Add(std::span<const std::string_view> args) {
  AppendCommand(resp_, args);
  ++count_;
}

std::optional<std::vector<RedisReply>> RedisClient::Pipeline(
    const std::vector<std::vector<std::string>>& commands) {
  RedisCommands batch;
  for (const auto& cmd : commands) batch.Add(cmd);
  return Pipeline(batch);
}

std::optional<std::vector<RedisReply>> RedisClient::Pipeline(const RedisCommands& commands) {
  if (awaiting_ > 0) {
    // A caller's bug: these replies would be read as the sent batch's. Refuse, and lose the connection
    // rather than the order.
    pv::log::Error("redis_pipeline_while_sent_batch_unanswered", {{"awaiting", static_cast<std::int64_t>(awaiting_)}});
    Drop("pipeline while a sent batch is unanswered");
    return std::nullopt;
  }
  if (!EnsureConnected()) return std::nullopt;
  if (commands.empty()) return std::vector<RedisReply>{};
  // One write of the whole batch, then every reply: one round trip. Blocking, each step bounded by
  // options_.timeout (the socket's send and receive timeouts).
  if (redisAppendFormattedCommand(ctx_, commands.resp().data(), commands.resp().size()) != REDIS_OK) {
    Drop(ctx_->errstr);
    return std::nullopt;
  }
  for (int done = 0; done == 0;) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
      Drop(ctx_->errstr);
      return std::nullopt;
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  while (replies.size() < commands.size()) {
    if (auto reply = NextReply()) {
      replies.push_back(std::move(*reply));
      continue;
    }
    if (ctx_ == nullptr || ReadSome(true) < 0) return std::nullopt;
  }
  return replies;
}

}  // namespace pv

namespace pv {

int RedisClient::fd() const {
  return ctx_ != nullptr ? ctx_->fd : -1;
}

bool RedisClient::Flush() {
  while (written_ < unsent_.size()) {
    ssize_t n = ::send(ctx_->fd, unsent_.data() + written_, unsent_.size() - written_, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      written_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;  // the rest at a later Receive
    Drop(n < 0 ? std::strerror(errno) : "connection closed");
    return false;
  }
  unsent_.clear();
  written_ = 0;
  return true;
}

bool RedisClient::Send(const RedisCommands& commands) {
  if (!EnsureConnected()) return false;
  if (awaiting_ == 0) {
    unsent_.clear();
    written_ = 0;
  }
  unsent_.append(commands.resp());  // behind what is still to write of the batches before
  awaiting_ += commands.size();
  return Flush();
}

bool RedisClient::Receive(std::vector<RedisReply>& replies, std::size_t count) {
  if (ctx_ == nullptr) return false;
  if (!Flush()) return false;
  while (replies.size() < count) {
    if (auto reply = NextReply()) {
      replies.push_back(std::move(*reply));
      if (awaiting_ > 0) --awaiting_;
      continue;
    }
    if (ctx_ == nullptr) return false;
    int read = ReadSome(false);
    if (read < 0) return false;
    if (read == 0) return true;  // not all here yet
  }
  return true;
}

std::optional<RedisReply> RedisClient::NextReply() {
  void* raw = nullptr;
  t_array_refused = false;
  if (redisReaderGetReply(ctx_->reader, &raw) != REDIS_OK) {
    if (t_array_refused) {
      if (!quiet_)
        pv::log::Error("redis_reply_too_large", {{"host", endpoint_.host},
                                               {"port", endpoint_.port},
                                               {"limit_bytes", static_cast<std::int64_t>(options_.max_reply_bytes)}});
      Drop("a reply larger than " + std::to_string(options_.max_reply_bytes) + " bytes (an array's count)");
      return std::nullopt;
    }
    Drop(ctx_->reader->err != 0 ? ctx_->reader->errstr : "protocol error");
    return std::nullopt;
  }
  if (raw == nullptr) {
    // Everything fed since the last whole reply belongs to the one being read.
    if (fed_ - reply_start_ > options_.max_reply_bytes) {
      if (!quiet_)
        pv::log::Error("redis_reply_too_large", {{"host", endpoint_.host},
                                               {"port", endpoint_.port},
                                               {"limit_bytes", static_cast<std::int64_t>(options_.max_reply_bytes)}});
      Drop("a reply larger than " + std::to_string(options_.max_reply_bytes) + " bytes");
    }
    return std::nullopt;
  }
  reply_start_ = fed_ - (ctx_->reader->len - ctx_->reader->pos);  // the next one starts where this ended
  auto* reply = static_cast<redisReply*>(raw);
  std::optional<RedisReply> out(Convert(reply));
  freeReplyObject(reply);
  return out;
}

int RedisClient::ReadSome(bool wait) {
  char buffer[16384];
  for (;;) {
    ssize_t n = ::recv(ctx_->fd, buffer, sizeof buffer, wait ? 0 : MSG_DONTWAIT);
    if (n > 0) {
      fed_ += static_cast<std::uint64_t>(n);
      if (redisReaderFeed(ctx_->reader, buffer, static_cast<std::size_t>(n)) != REDIS_OK) {
        Drop("reply buffer");
        return -1;
      }
      return 1;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!wait) return 0;
      Drop("no reply within " + std::to_string(options_.timeout.count()) + " ms");  // the socket's timeout
      return -1;
    }
    Drop(n < 0 ? std::strerror(errno) : "connection closed by the server");
    return -1;
  }
}

}  // namespace pv
