// Many HTTP and SMTP transfers in flight on one thread: libcurl's multi interface behind a
// submit-and-callback API. Connections are kept alive and reused (HTTP/2 streams are multiplexed on
// one connection), so a worker with hundreds of sends in flight does not pay a handshake per send.
//
// Event-driven (curl_multi_socket_action on an epoll set): a wake-up costs in proportion to the
// sockets that are ready, not to the transfers in flight. curl_multi_perform + curl_multi_poll
// before it visited every transfer and polled every socket at each wake-up: with 256 in flight
// that was most of a worker's CPU per send (docs/performance.md, "Workers"). Easy handles are
// reset and reused rather than created per transfer.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

namespace pv::workers {

struct TlsOptions {
  std::string ca_file;  // PEM bundle to trust instead of the system's (tests, private CAs)
  bool verify = true;   // false only for local experiments
};

// Request headers ("Name: value") that every request of a provider carries, made once into libcurl's
// list (with "Expect:", see CurlLoop::Submit) and into the lines the HTTP/1.1 client writes
// (Http1Client), and shared by its transfers instead of a list per send.
class SharedHeaders {
 public:
  explicit SharedHeaders(const std::vector<std::string>& headers);
  ~SharedHeaders();
  SharedHeaders(const SharedHeaders&) = delete;
  SharedHeaders& operator=(const SharedHeaders&) = delete;
  void* list() const { return list_; }  // curl_slist*, read-only to libcurl
  const std::string& lines() const { return lines_; }  // "Name: value\r\n" each, curl's rules applied
  bool has_accept() const { return has_accept_; }

 private:
  void* list_ = nullptr;
  std::string lines_;
  bool has_accept_ = false;
};

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::string> headers;  // "Name: value": this request's own, sent before shared_headers
  std::shared_ptr<const SharedHeaders> shared_headers;  // may be null
  // The answer's headers the provider reads (lower-case names, static storage): only these are
  // kept in TransferResult::headers. Empty: every header.
  std::span<const std::string_view> keep_headers;
  std::string body;
  std::string basic_user;  // non-empty: HTTP basic auth with basic_password
  std::string basic_password;
  bool http2 = false;  // HTTP/2 (prior knowledge for http://, ALPN for https://)
  std::chrono::milliseconds timeout{10000};
  std::chrono::milliseconds connect_timeout{5000};
  TlsOptions tls;
};

struct SmtpRequest {
  std::string url;  // smtp://host:port[/helo-name] or smtps://host:port (implicit TLS)
  bool require_starttls = false;
  std::string username;  // non-empty: AUTH
  std::string password;
  std::string mail_from;
  std::vector<std::string> recipients;
  std::string message;  // the whole RFC 5322 message, CRLF line ends
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds connect_timeout{5000};
  TlsOptions tls;
};

struct TransferResult {
  int curl_code = 0;  // CURLcode
  long status = 0;    // HTTP status, or the last SMTP reply code
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased (HttpRequest::keep_headers)
  std::string error;                                         // libcurl's message when curl_code != 0
  double seconds = 0;                                        // total transfer time
  // The whole request left us (HTTP: past connect and TLS, every body byte sent; SMTP: the whole
  // message). A failure after that may come after the peer acted on it: its outcome is unknown.
  bool request_sent = false;

  std::optional<std::string_view> Header(std::string_view lower_name) const;
  bool TimedOut() const;
  bool ConnectFailed() const;  // connect, resolve, TLS handshake, connection reset
  bool LoginDenied() const;
};

struct CurlLoopOptions {
  int max_connections = 512;     // connection cache size (keep-alive across transfers)
  int max_host_connections = 0;  // 0: unlimited
  // No thread of its own: the owner's thread turns the loop (Turn) and sleeps on fd() with its
  // other descriptors. The worker runs it so, beside its Kafka and Redis work, which saves the two
  // thread hand-offs of every send (docs/performance.md, "The transfer loop on the worker's thread").
  bool driven = false;
};

class Http1Client;
struct HttpTarget;

// HTTP/1.1 requests (not http2) go to Http1Client on this loop's thread and epoll set, unless a
// proxy variable was set at start or PV_CURL_VERBOSE is (libcurl's trace); the rest to libcurl.
// The loop's thread is its own, or, with CurlLoopOptions::driven, the thread that calls Turn()
// (and Stop); Submit may be called from any thread in either mode.
class CurlLoop {
 public:
  using Done = std::function<void(TransferResult&&)>;

  explicit CurlLoop(CurlLoopOptions options = {});
  // Stop()s.
  ~CurlLoop();
  CurlLoop(const CurlLoop&) = delete;
  CurlLoop& operator=(const CurlLoop&) = delete;

  // `done` runs on the loop's thread (in driven mode: inside Turn or Stop): keep it short, never
  // block in it.
  void Submit(HttpRequest request, Done done);
  void Submit(SmtpRequest request, Done done);
  // Stops the thread; transfers still running complete with an error ("loop stopped"), and later
  // submissions complete with it at once. Call before destroying what the callbacks point to. In
  // driven mode, call it on the thread that turns the loop: their callbacks run there, in Stop.
  void Stop();
  // Transfers submitted and not yet completed.
  std::size_t Active() const { return active_.load(std::memory_order_relaxed); }
  // Driven mode: starts what was submitted, acts on every ready socket and then on every due
  // deadline, without waiting (callbacks run here), and returns how long, in milliseconds (at
  // most 1000), the owner may sleep before the next Turn if fd() stays quiet.
  int Turn();
  // Driven mode: readable when a Turn has something to do (a socket, a submission from another
  // thread, a lookup done). A submission from the thread that turns the loop writes no wake-up (it
  // cost that thread a write and, at its next turn, a read per batch of sends): the owner asks
  // HasSubmissions() before it sleeps.
  int fd() const { return epoll_fd_; }
  // Submissions not yet started by a Turn.
  bool HasSubmissions();

 private:
  struct Transfer;
  struct TransferDeleter {
    void operator()(Transfer* t) const;
  };
  using TransferPtr = std::unique_ptr<Transfer, TransferDeleter>;
  // What the epoll set holds for a descriptor libcurl told us about (OnSocket); loop thread only.
  enum class FdState : std::uint8_t { kAbsent, kWanted, kUnwanted };
  struct NativeSubmission;  // an HttpRequest for native_, waiting for the loop thread
  TransferPtr NewTransfer(Done done);
  bool SubmitNative(HttpRequest& request, Done& done);
  void Enqueue(TransferPtr transfer);
  static void SetHttpOptions(Transfer& t, const HttpRequest& request);
  void Run();
  // One turn: takes the submissions, polls (at most max_wait_ms), completes what finished. False
  // once stopped.
  bool TurnOnce(int max_wait_ms);
  void Complete(Transfer* t, int code);
  void Finished();
  void Shutdown();
  // Waits for a socket, libcurl's timer or a wake-up (at most max_wait_ms) and lets libcurl act on
  // it. With max_wait_ms 0 (driven), what is ready is read before any deadline is judged: the
  // owner's thread may have been busy elsewhere while an answer arrived.
  void Poll(int max_wait_ms);
  // Milliseconds until libcurl's timer is due, at most `cap`.
  int TimerWait(int cap) const;
  void Wake();
  // Whether a submission from this thread must wake the loop: always, unless the loop is driven and
  // this is the thread that turns it.
  bool WakeNeeded() const {
    return !options_.driven || std::this_thread::get_id() != driver_.load(std::memory_order_relaxed);
  }
  static int OnSocket(void* easy, int socket, int what, void* self, void* socket_data);
  static int OnTimer(void* multi, long timeout_ms, void* self);

  CurlLoopOptions options_;
  void* multi_ = nullptr;  // CURLM*
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Submit and Stop wake the loop
  // When libcurl wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT) (its timer callback); loop
  // thread only. nullopt: no timeout pending.
  std::optional<std::chrono::steady_clock::time_point> timer_due_;
  std::mutex mutex_;
  std::vector<TransferPtr> pending_;
  std::vector<NativeSubmission> native_pending_;
  std::unique_ptr<Http1Client> native_;
  // Transfers (each with its easy handle, reset, and its buffers) kept for reuse, at most
  // max_connections.
  std::vector<Transfer*> free_transfers_;
  std::vector<FdState> fd_states_;  // by descriptor
  bool no_proxy_env_ = false;  // no *_proxy variable in the environment: libcurl need not look
  bool stop_ = false;
  bool shut_down_ = false;
  int driven_wait_ms_ = 1000;  // what the last driven Poll found: Turn's answer
  std::unordered_set<Transfer*> running_;
  std::vector<TransferPtr> batch_;
  std::vector<NativeSubmission> native_batch_;
  std::atomic<std::size_t> active_{0};
  std::atomic<std::thread::id> driver_{};  // driven mode: the thread of the last Turn
  std::thread thread_;
};

}  // namespace pv::workers
