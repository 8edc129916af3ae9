// pv::testing: a loopback port that takes no connection, as a host that went away: header-only, for
// the unit tests that link pv_common alone as well as the integration tests.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>
#include <string>

namespace pv::testing {

// A listener whose accept queue (backlog 0) is filled by one connection made here and never
// accepted: the kernel drops the SYNs of every later connect, as it drops those to a host that went
// away, so a connect to url() waits for its own timeout.
class Blackhole {
 public:
  Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    filler_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0 || filler_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 0) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        ::connect(filler_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Close();
      throw std::runtime_error("blackhole: cannot listen on loopback");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~Blackhole() { Close(); }
  Blackhole(const Blackhole&) = delete;
  Blackhole& operator=(const Blackhole&) = delete;

  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  void Close() {
    if (filler_ >= 0) ::close(filler_);
    if (fd_ >= 0) ::close(fd_);
    filler_ = fd_ = -1;
  }

  int fd_ = -1;
  int filler_ = -1;
  int port_ = 0;
};

}  // namespace pv::testing
