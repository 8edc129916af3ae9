#include "pv/testing/redis_server.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <chrono>
#include <map>
#include <stdexcept>

namespace pv::testing {

using namespace std::chrono_literals;

RedisServer::RedisServer() : dir_("pv-redis"), port_(FreePort()) {
  Start();
}

RedisServer::~RedisServer() {
  Stop();
}

void RedisServer::Start() {
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir",
                               dir_.path()},
      std::map<std::string, std::string>{}, dir_.File("redis.log"));
  bool up = WaitFor(
      [&] {
        if (!process_->Running()) return true;
        timeval tv{0, 200000};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        bool ok = c != nullptr && c->err == 0;
        if (ok) {
          auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
          ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
          if (r != nullptr) freeReplyObject(r);
        }
        if (c != nullptr) redisFree(c);
        return ok;
      },
      10s);
  if (!up || !process_->Running())
    throw std::runtime_error("redis-server did not start: " + ReadFile(dir_.File("redis.log")));
}

void RedisServer::Signal(int signal) {
  if (process_) process_->Signal(signal);
}

void RedisServer::Stop() {
  if (process_) process_->Stop(SIGKILL, 5s);
  process_.reset();
}

std::string RedisServer::Command(const std::vector<std::string>& args) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    throw std::runtime_error("cannot connect to redis");
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r =
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out;
  if (r != nullptr) {
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
      out.assign(r->str, r->len);
    } else if (r->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(r->integer);
    } else if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) {
        if (r->element[i]->type == REDIS_REPLY_STRING)
          out += std::string(r->element[i]->str, r->element[i]->len) + "\n";
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return out;
}

}  // namespace pv::testing
