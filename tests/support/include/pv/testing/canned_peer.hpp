// pv::testing: a loopback TCP peer that answers every connection with a canned answer, for the Redis
// client's tests and its fuzz target (a Redis gone wrong, or something else on its port). Header-only:
// the unit tests and the fuzz targets link pv_common alone.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace pv::testing {

// For each connection, one at a time: reads until the request's first bytes came (2 s at most),
// writes the current answer, then either keeps the connection open until the client closes it (a
// server gone quiet; 10 s at most) or shuts its side and reads the rest away (a server that said
// all it will say). The destructor stops it within ~100 ms.
class CannedPeer {
 public:
  enum class After { kKeepOpen, kClose };

  explicit CannedPeer(std::string answer, After after = After::kKeepOpen)
      : answer_(std::move(answer)), after_(after) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("canned peer: cannot listen on loopback");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedPeer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  CannedPeer(const CannedPeer&) = delete;
  CannedPeer& operator=(const CannedPeer&) = delete;

  // The answer of the connections accepted from now on.
  void Set(std::string answer) {
    std::lock_guard lock(mutex_);
    answer_ = std::move(answer);
  }
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  using Clock = std::chrono::steady_clock;

  void Serve() {
    while (!stop_) {
      pollfd listening{fd_, POLLIN, 0};
      if (::poll(&listening, 1, 100) != 1) continue;
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      Answer(c);
      ::close(c);
    }
  }

  // Waits up to `limit` (in steps, watching stop_) for `c` to be readable; false when it was not.
  bool Readable(int c, std::chrono::milliseconds limit) {
    pollfd in{c, POLLIN, 0};
    for (auto deadline = Clock::now() + limit; !stop_ && Clock::now() < deadline;) {
      if (::poll(&in, 1, 100) == 1) return true;
    }
    return false;
  }

  void Answer(int c) {
    std::string answer;
    {
      std::lock_guard lock(mutex_);
      answer = answer_;
    }
    char buffer[4096];
    if (!Readable(c, std::chrono::seconds(2)) || ::recv(c, buffer, sizeof buffer, 0) <= 0) return;
    for (size_t sent = 0; sent < answer.size();) {
      ssize_t n = ::send(c, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;  // the client dropped the connection
      sent += static_cast<size_t>(n);
    }
    if (after_ == After::kClose) ::shutdown(c, SHUT_WR);
    // Until the client closes (recv 0 or an error): what it still sends is read away.
    auto deadline = Clock::now() + (after_ == After::kClose ? std::chrono::seconds(2) : std::chrono::seconds(10));
    pollfd in{c, POLLIN, 0};
    while (!stop_ && Clock::now() < deadline) {
      if (::poll(&in, 1, 100) == 1 && ::recv(c, buffer, sizeof buffer, 0) <= 0) break;
    }
  }

  std::mutex mutex_;
  std::string answer_;
  const After after_;
  std::atomic<bool> stop_{false};
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

}  // namespace pv::testing
