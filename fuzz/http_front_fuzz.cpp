// Bytes on the public port: each input is sent on a fresh connection to an in-process HttpFront
// (the one ingest runs), then the client half-closes. The front must answer or close within 2 s
// (a stall aborts: it is a finding), and never crash; every few inputs a well-formed request must
// still be answered 204. The handler accepts /ok, refuses /refuse at the head, 404 otherwise.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "pv/ingest/http_front.hpp"
#include "pv/log.hpp"

namespace {

using namespace pv::ingest::http;

class FuzzHandler final : public Handler {
 public:
  std::variant<Response, std::unique_ptr<Exchange>> OnHead(const RequestHead& head) override {
    (void)head.Header("Authorization");
    (void)head.Header("Expect");
    if (head.target() == "/refuse") return Response::Json(401, ErrorBody("no"));
    if (head.target() != "/ok") return Response::Json(404, ErrorBody("none"));
    return std::make_unique<Answer>();
  }
  std::string ErrorBody(std::string_view message) override {
    return "{\"error\":\"" + std::string(message) + "\"}";
  }

 private:
  struct Answer final : Exchange {
    void OnBody(std::string body, Responder responder) override {
      Response r;
      r.headers.emplace_back("X-Body-Bytes", std::to_string(body.size()));
      responder.Send(std::move(r));
    }
  };
};

struct Server {
  Server() {
    pv::log::SetLevel(pv::log::Level::kError);
    FrontOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = 2;
    o.header_timeout = std::chrono::milliseconds(500);
    o.body_timeout = std::chrono::milliseconds(500);
    o.max_body_bytes = 64 * 1024;
    o.max_pending_body_bytes = 1 << 20;
    front = std::make_unique<HttpFront>(o, handler, registry);
    port = front->Bind();
    front->Start();
  }
  FuzzHandler handler;
  pv::metrics::Registry registry;
  std::unique_ptr<HttpFront> front;
  int port = 0;
};

int Connect(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0) {
    std::perror("socket");
    std::abort();
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    // libFuzzer's -timeout timer (SIGALRM each second) can interrupt connect(); the connection then
    // completes in the background: wait for it and read its result instead of aborting (a finding of
    // the harness, not of the front: campaign of 2026-12-02).
    int error = errno;
    if (error == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      while (::poll(&p, 1, 2000) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof(error);
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) != 0) error = errno;
    }
    if (error != 0) {
      errno = error;
      std::perror("connect");
      std::abort();
    }
  }
  return fd;
}

// Sends everything, half-closes, and reads until the server closes. Returns what it answered.
std::string RoundTrip(int port, const char* data, size_t size) {
  int fd = Connect(port);
  size_t sent = 0;
  std::string answer;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  bool write_closed = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (sent < size) {
      ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN) sent = size;  // the server closed on us: fine
    } else if (!write_closed) {
      ::shutdown(fd, SHUT_WR);
      write_closed = true;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) > 0) {
      char buf[8192];
      ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN)) {
        ::close(fd);
        return answer;
      }
      if (n > 0) answer.append(buf, static_cast<size_t>(n));
    }
  }
  std::fprintf(stderr, "stall: the front neither answered nor closed within 2 s\n");
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Server server;
  static int runs = 0;
  RoundTrip(server.port, reinterpret_cast<const char*>(data), size);
  if (++runs % 64 == 0) {
    static const std::string kGood = "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    std::string answer = RoundTrip(server.port, kGood.data(), kGood.size());
    if (answer.rfind("HTTP/1.1 204", 0) != 0) {
      std::fprintf(stderr, "the front no longer serves a good request: %s\n", answer.c_str());
      std::abort();
    }
  }
  return 0;
}
