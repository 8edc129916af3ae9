// pv::testing: a real redis-server on a free loopback port, owned by the test.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "pv/testing/process.hpp"

namespace pv::testing {

// redis-server without persistence, on a port chosen free at construction and kept across Stop() and
// Start(): a restart loses every key, like a crashed cache. The destructor kills it.
class RedisServer {
 public:
  // Starts it and waits (10 s at most) until it answers PING; throws with its log otherwise.
  RedisServer();
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  void Start();
  void Stop();  // SIGKILL: no goodbye to clients
  // SIGSTOP freezes it (connections stay open, nothing answers), SIGCONT thaws it.
  void Signal(int signal);
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // One command over a fresh connection (2 s timeout); returns the reply: a string, status or error as
  // it is, an integer in decimal, an array's strings one a line. Throws when it cannot connect.
  std::string Command(const std::vector<std::string>& args);

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace pv::testing
