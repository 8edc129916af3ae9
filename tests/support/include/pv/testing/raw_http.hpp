// A raw HTTP/1.1 client over one TCP connection, for tests that must control every byte on the
// wire (partial heads, trickled bytes, pipelining, oversized fields) and see exactly what the
// server answers and when it closes. Loopback only; every wait is bounded.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pv::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string Header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port; throws std::runtime_error when it cannot.
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // Sends every byte (blocking, up to 5 s); false when the peer is gone.
  bool Send(std::string_view data);
  // One response: head, then a Content-Length body. nullopt when none completes within `timeout`
  // (or the peer closed first).
  std::optional<RawResponse> Read(std::chrono::milliseconds timeout);
  // Whether the peer closed the connection (EOF or reset) within `timeout`; bytes that arrive
  // first are kept for Read.
  bool ClosedWithin(std::chrono::milliseconds timeout);
  int fd() const { return fd_; }

 private:
  // Reads what is available within `timeout`; returns false on EOF/error.
  bool Fill(std::chrono::milliseconds timeout);
  int fd_ = -1;
  bool eof_ = false;
  std::string buffer_;
};

// "POST <target> HTTP/1.1" with Host, the given extra header lines ("Name: value\r\n" each), and a
// Content-Length body.
std::string PostRequest(std::string_view target, std::string_view body, std::string_view extra_headers = "");

// The VmRSS of a process in KiB (0 when it cannot be read).
long RssKib(int pid);

}  // namespace pv::testing
