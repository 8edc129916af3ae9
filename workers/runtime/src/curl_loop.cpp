#include "pv/workers/curl_loop.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <unordered_set>

#include "pv/log.hpp"
#include "pv/workers/http1_client.hpp"
#include "pv/strings.hpp"

namespace pv::workers {
namespace {

constexpr std::size_t kMaxResponseBody = 1 << 20;  // a provider's answer is small; cap what we keep

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// Whether any proxy variable libcurl may read (http_proxy, HTTPS_PROXY, all_proxy, no_proxy, ...)
// is set. When none is, transfers say "no proxy" themselves and libcurl skips reading the
// environment for every new request.
bool ProxyEnvironment() {
  for (char** env = environ; *env != nullptr; ++env) {
    std::string_view entry(*env);
    std::string_view name = entry.substr(0, entry.find('='));
    if (name.size() >= 6 && EqualsIgnoreCase(name.substr(name.size() - 6), "_proxy")) return true;
  }
  return false;
}

// In every header list: no "Expect: 100-continue" round trip (see CurlLoop::Submit).
char kNoExpect[] = "Expect:";

// What sets an HTTP transfer's options apart from its URL, body and headers (CurlLoop::Submit).
struct HttpOptions {
  std::string method;
  std::string basic_user;
  std::string basic_password;
  bool http2 = false;
  bool https = false;
  std::chrono::milliseconds timeout{};
  std::chrono::milliseconds connect_timeout{};
  std::string ca_file;
  bool verify = true;

  explicit HttpOptions(const HttpRequest& r)
      : method(r.method),
        basic_user(r.basic_user),
        basic_password(r.basic_password),
        http2(r.http2),
        https(r.url.rfind("https:", 0) == 0),
        timeout(r.timeout),
        connect_timeout(r.connect_timeout),
        ca_file(r.tls.ca_file),
        verify(r.tls.verify) {}
  bool operator==(const HttpOptions&) const = default;
};

// What a transfer submitted to (or left in) a stopped loop completes with.
TransferResult Stopped() {
  TransferResult r;
  r.curl_code = CURLE_ABORTED_BY_CALLBACK;
  r.error = "transfer loop stopped";
  return r;
}

bool H2cReuseBroken() {
  static const bool broken = curl_version_info(CURLVERSION_NOW)->version_num < 0x075900;
  return broken;
}

}  // namespace

SharedHeaders::SharedHeaders(const std::vector<std::string>& headers) {
  curl_slist* list = curl_slist_append(nullptr, kNoExpect);
  for (const auto& h : headers) {
    if (list == nullptr) break;
    curl_slist* longer = curl_slist_append(list, h.c_str());
    if (longer == nullptr) curl_slist_free_all(list);
    list = longer;
  }
  if (list == nullptr) throw std::bad_alloc();
  list_ = list;
  for (const auto& h : headers) AppendHeaderLine(lines_, h, has_accept_);
}

SharedHeaders::~SharedHeaders() {
  curl_slist_free_all(static_cast<curl_slist*>(list_));
}

std::optional<std::string_view> TransferResult::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return std::string_view(value);
  }
  return std::nullopt;
}

bool TransferResult::TimedOut() const {
  return curl_code == CURLE_OPERATION_TIMEDOUT;
}

bool TransferResult::ConnectFailed() const {
  switch (curl_code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_ABORTED_BY_CALLBACK:
      return true;
    default:
      return false;
  }
}

bool TransferResult::LoginDenied() const {
  return curl_code == CURLE_LOGIN_DENIED;
}

struct CurlLoop::NativeSubmission {
  HttpRequest request;
  std::shared_ptr<const HttpTarget> target;
  Done done;
};

// One transfer: the easy handle and everything it points into, alive until completion. Kept with
// its easy handle for the next transfer (TransferDeleter), so its buffers are allocated once.
struct CurlLoop::Transfer {
  CurlLoop* loop = nullptr;
  CURL* easy = nullptr;
  curl_slist* rcpt_list = nullptr;
  // The request's own headers, linked in front of the shared list (or of no_expect).
  std::vector<std::string> own_headers;
  std::vector<curl_slist> own_nodes;
  std::shared_ptr<const SharedHeaders> shared_headers;
  curl_slist no_expect{kNoExpect, nullptr};
  std::span<const std::string_view> keep_headers;
  std::string upload;  // request body or SMTP message
  std::size_t upload_offset = 0;
  bool smtp = false;
  TransferResult result;
  Done done;
  char errbuf[CURL_ERROR_SIZE] = {};
  // The easy handle's options since its last curl_easy_reset: those of an HTTP request (apart from
  // URL, body and headers), or nullopt (SMTP, or never used). A request with the same options
  // sets only what differs per request.
  std::optional<HttpOptions> http_options;
  bool used = false;  // the easy handle ran a transfer since it was made or reset
  // The last HTTP request's URL, parsed (CURLOPT_CURLU): a request to the same URL is not parsed
  // again. url_text empty: not parsed.
  CURLU* url = nullptr;
  std::string url_text;

  ~Transfer() {
    if (rcpt_list != nullptr) curl_slist_free_all(rcpt_list);
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (url != nullptr) curl_url_cleanup(url);
  }

  // CURLOPT_CURLU with the parsed URL, or CURLOPT_URL when it does not parse (libcurl then reports
  // what is wrong with it as it always did).
  void SetUrl(const std::string& text) {
    if (text != url_text) {
      url_text.clear();
      if (url == nullptr) url = curl_url();
      if (url != nullptr && curl_url_set(url, CURLUPART_URL, text.c_str(), CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK)
        url_text = text;
    }
    if (!url_text.empty()) {
      curl_easy_setopt(easy, CURLOPT_CURLU, url);
      return;
    }
    curl_easy_setopt(easy, CURLOPT_CURLU, nullptr);
    curl_easy_setopt(easy, CURLOPT_URL, text.c_str());
  }

  // Back to how NewTransfer hands it out, short of the easy handle's options (reset apart). Big
  // buffers (an SMTP message, a long answer) are not kept.
  void Clear() {
    constexpr std::size_t kKeepCapacity = 64 << 10;
    if (rcpt_list != nullptr) curl_slist_free_all(rcpt_list);
    rcpt_list = nullptr;
    own_headers.clear();
    own_nodes.clear();
    shared_headers.reset();
    keep_headers = {};
    upload.clear();
    if (upload.capacity() > kKeepCapacity) std::string().swap(upload);
    upload_offset = 0;
    smtp = false;
    result.curl_code = 0;
    result.status = 0;
    result.body.clear();
    if (result.body.capacity() > kKeepCapacity) std::string().swap(result.body);
    result.headers.clear();
    result.error.clear();
    result.seconds = 0;
    result.request_sent = false;
    done = nullptr;
    errbuf[0] = '\0';
  }

  static size_t OnBody(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t n = size * count;
    if (t->result.body.size() < kMaxResponseBody) {
      t->result.body.append(data, std::min(n, kMaxResponseBody - t->result.body.size()));
    }
    return n;
  }

  static size_t OnHeader(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t n = size * count;
    std::string_view line(data, n);
    if (line.rfind("HTTP/", 0) == 0) {
      t->result.headers.clear();  // a new response (after 100 Continue, or a redirect)
      return n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return n;
    std::string_view name = TrimView(line.substr(0, colon));
    if (t->keep_headers.empty()) {
      t->result.headers.emplace_back(Lower(name), std::string(TrimView(line.substr(colon + 1))));
      return n;
    }
    for (std::string_view keep : t->keep_headers) {
      if (EqualsIgnoreCase(name, keep)) {
        t->result.headers.emplace_back(std::string(keep), std::string(TrimView(line.substr(colon + 1))));
        break;
      }
    }
    return n;
  }

  static size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    size_t n = std::min(size * count, t->upload.size() - t->upload_offset);
    std::memcpy(buffer, t->upload.data() + t->upload_offset, n);
    t->upload_offset += n;
    return n;
  }

  // Hands the result to `done`; the transfer no longer counts as active.
  void Finish() {
    loop->active_.fetch_sub(1, std::memory_order_relaxed);
    done(std::move(result));
  }
  // Ends a transfer libcurl did not run to its end.
  void Fail(int code, std::string error) {
    result.curl_code = code;
    result.error = std::move(error);
    Finish();
  }

  // libcurl sets the pretransfer time when it starts sending the request (after connect and TLS);
  // the upload counter says how much of the body went. SMTP reads the message through OnRead, which
  // hands the last bytes to libcurl just before it sends the closing "." line.
  bool RequestSent() const {
    curl_off_t pretransfer = 0;
    curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
    if (pretransfer <= 0) return false;
    if (smtp) return upload_offset == upload.size();
    curl_off_t uploaded = 0;
    curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded);
    return uploaded >= static_cast<curl_off_t>(upload.size());
  }

  void Common(std::chrono::milliseconds timeout, std::chrono::milliseconds connect_timeout,
              const TlsOptions& tls) {
    curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    // PV_CURL_VERBOSE=1 prints libcurl's protocol trace on stderr (debugging a provider by hand).
    static const bool verbose = std::getenv("PV_CURL_VERBOSE") != nullptr;
    if (verbose) curl_easy_setopt(easy, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Transfer::OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
    if (!tls.ca_file.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
    if (!tls.verify) {
      curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!loop->no_proxy_env_) return;
    // What the empty environment would say, without libcurl reading it for each request.
    curl_easy_setopt(easy, CURLOPT_PROXY, "");
    curl_easy_setopt(easy, CURLOPT_NOPROXY, "");
  }
};

// The transfer and its easy handle go back to the pool, or are cleaned up when the pool is full.
// The handle keeps its options until the next Submit, which resets it unless the next request has
// the same (HttpOptions); its pointers into the transfer stay valid, the others are set again.
void CurlLoop::TransferDeleter::operator()(Transfer* t) const {
  if (t == nullptr) return;
  t->Clear();
  t->used = true;
  CurlLoop* loop = t->loop;
  {
    std::lock_guard lock(loop->mutex_);
    if (loop->free_transfers_.size() < static_cast<std::size_t>(loop->options_.max_connections)) {
      loop->free_transfers_.push_back(t);
      return;
    }
  }
  delete t;
}

CurlLoop::TransferPtr CurlLoop::NewTransfer(Done done) {
  Transfer* reused = nullptr;
  {
    std::lock_guard lock(mutex_);
    if (!free_transfers_.empty()) {
      reused = free_transfers_.back();
      free_transfers_.pop_back();
    }
  }
  if (reused == nullptr) {
    auto fresh = std::make_unique<Transfer>();
    fresh->loop = this;
    fresh->easy = curl_easy_init();
    if (fresh->easy == nullptr) throw std::runtime_error("curl_easy_init failed");
    reused = fresh.release();
  }
  TransferPtr t(reused);
  t->done = std::move(done);
  return t;
}

// A socket libcurl no longer watches stays in the epoll set (kUnwanted): a kept-alive connection is
// mostly wanted again by the next transfer, and one EPOLL_CTL_MOD then costs less than a DEL now
// and an ADD then. Poll takes it out when it reports an event (the peer closed it while idle). A
// socket libcurl closes leaves the set by itself, and a descriptor number reused for a new socket
// is added when MOD says it is not there.
int CurlLoop::OnSocket(void* /*easy*/, int socket, int what, void* self, void* /*socket_data*/) {
  auto* loop = static_cast<CurlLoop*>(self);
  if (socket < 0) return 0;
  auto fd = static_cast<std::size_t>(socket);
  if (fd >= loop->fd_states_.size()) loop->fd_states_.resize(fd + 1, FdState::kAbsent);
  FdState& state = loop->fd_states_[fd];
  if (what == CURL_POLL_REMOVE) {
    if (state == FdState::kWanted) state = FdState::kUnwanted;
    return 0;
  }
  epoll_event ev{};
  ev.data.fd = socket;
  ev.events = ((what & CURL_POLL_IN) != 0 ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) != 0 ? EPOLLOUT : 0u);
  if (state == FdState::kAbsent) {
    if (::epoll_ctl(loop->epoll_fd_, EPOLL_CTL_ADD, socket, &ev) != 0 && errno == EEXIST) {
      ::epoll_ctl(loop->epoll_fd_, EPOLL_CTL_MOD, socket, &ev);
    }
  } else if (::epoll_ctl(loop->epoll_fd_, EPOLL_CTL_MOD, socket, &ev) != 0 && errno == ENOENT) {
    ::epoll_ctl(loop->epoll_fd_, EPOLL_CTL_ADD, socket, &ev);
  }
  state = FdState::kWanted;
  return 0;
}

int CurlLoop::OnTimer(void* /*multi*/, long timeout_ms, void* self) {
  auto* loop = static_cast<CurlLoop*>(self);
  if (timeout_ms < 0) {
    loop->timer_due_.reset();
  } else {
    loop->timer_due_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  }
  return 0;
}

CurlLoop::CurlLoop(CurlLoopOptions options) : options_(options), no_proxy_env_(!ProxyEnvironment()) {
  GlobalInit();
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ < 0 || wake_fd_ < 0) {
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw std::runtime_error(fmt::format("curl loop: epoll/eventfd: {}", std::strerror(errno)));
  }
  epoll_event wake{};
  wake.events = EPOLLIN;
  wake.data.fd = wake_fd_;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &wake);
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) throw std::runtime_error("curl_multi_init failed");
  using SocketFn = int (*)(CURL*, curl_socket_t, int, void*, void*);
  using TimerFn = int (*)(CURLM*, long, void*);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, reinterpret_cast<SocketFn>(&CurlLoop::OnSocket));
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, reinterpret_cast<TimerFn>(&CurlLoop::OnTimer));
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(options_.max_connections));
  if (options_.max_host_connections > 0) {
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_host_connections));
  }
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  multi_ = multi;
  native_ = std::make_unique<Http1Client>(epoll_fd_, wake_fd_, options_, active_);
  if (!options_.driven) thread_ = std::thread([this] { Run(); });
}

CurlLoop::~CurlLoop() {
  Stop();
  curl_multi_cleanup(static_cast<CURLM*>(multi_));
  for (Transfer* t : free_transfers_) delete t;
  ::close(wake_fd_);
  ::close(epoll_fd_);
}

void CurlLoop::Wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));  // EAGAIN: already pending
}

void CurlLoop::Stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
  if (options_.driven) Shutdown();
}

// An HTTP/1.1 request for native_: true when taken (or failed at once, the loop being stopped).
bool CurlLoop::SubmitNative(HttpRequest& request, Done& done) {
  static const bool verbose = std::getenv("PV_CURL_VERBOSE") != nullptr;
  // The last URL parsed, per submitting thread: a provider sends to the same URL again and again.
  thread_local std::string last_url;
  thread_local std::shared_ptr<const HttpTarget> last_target;
  if (request.http2 || !no_proxy_env_ || verbose) return false;
  if (request.url != last_url || !last_target) {
    last_target.reset();
    last_url = request.url;
    if (auto parsed = ParseHttpTarget(request.url)) last_target = std::make_shared<const HttpTarget>(std::move(*parsed));
  }
  if (!last_target) return false;
  active_.fetch_add(1, std::memory_order_relaxed);
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    if (!stop_) {
      was_empty = pending_.empty() && native_pending_.empty();
      native_pending_.push_back({std::move(request), last_target, std::move(done)});
      done = nullptr;
    }
  }
  if (done) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    done(Stopped());
  } else if (was_empty && WakeNeeded()) {
    Wake();
  }
  return true;
}

void CurlLoop::Submit(HttpRequest request, Done done) {
  if (SubmitNative(request, done)) return;
  TransferPtr t = NewTransfer(std::move(done));
  t->upload = std::move(request.body);
  CURL* e = t->easy;
  HttpOptions options(request);
  bool same = t->http_options && *t->http_options == options;
  if (!same) {
    if (t->used) curl_easy_reset(e);
    t->http_options = options;
    SetHttpOptions(*t, request);
  }
  // What differs per request, and what points into this request.
  t->SetUrl(request.url);
  if (request.method != "GET") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->upload.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->upload.size()));
  }
  // No "Expect: 100-continue" round trip: our bodies are small and the providers answer at once.
  // Every list has "Expect:": first in a SharedHeaders list, else the transfer's no_expect at the
  // end. The request's own headers are nodes of this transfer put in front of the shared list,
  // which libcurl only reads.
  t->shared_headers = std::move(request.shared_headers);
  t->own_headers = std::move(request.headers);
  t->keep_headers = request.keep_headers;
  curl_slist* list = t->shared_headers ? static_cast<curl_slist*>(t->shared_headers->list()) : &t->no_expect;
  t->own_nodes.resize(t->own_headers.size());
  for (std::size_t i = t->own_headers.size(); i-- > 0;) {
    t->own_nodes[i] = curl_slist{t->own_headers[i].data(), list};
    list = &t->own_nodes[i];
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, list);
  Enqueue(std::move(t));
}

// The options HttpOptions stands for, on a fresh or reset handle.
void CurlLoop::SetHttpOptions(Transfer& t, const HttpRequest& request) {
  CURL* e = t.easy;
  t.Common(request.timeout, request.connect_timeout, request.tls);
  if (request.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    if (request.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (!request.basic_user.empty()) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(e, CURLOPT_USERNAME, request.basic_user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, request.basic_password.c_str());
  }
  if (request.http2) {
    bool tls = request.url.rfind("https:", 0) == 0;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     static_cast<long>(tls ? CURL_HTTP_VERSION_2TLS : CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE));
    if (tls || !H2cReuseBroken()) {
      // Wait for a multiplexable connection rather than opening one per stream.
      curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    } else {
      // libcurl before 7.89 fails streams on a reused h2c (prior knowledge) connection with "Error
      // in the HTTP2 framing layer" (curl#10634): one connection per transfer instead.
      curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
  } else {
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  }
}

void CurlLoop::Submit(SmtpRequest request, Done done) {
  TransferPtr t = NewTransfer(std::move(done));
  t->upload = std::move(request.message);
  t->smtp = true;
  CURL* e = t->easy;
  if (t->used) curl_easy_reset(e);
  t->http_options.reset();
  t->Common(request.timeout, request.connect_timeout, request.tls);
  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  if (request.require_starttls) curl_easy_setopt(e, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
  if (!request.username.empty()) {
    curl_easy_setopt(e, CURLOPT_USERNAME, request.username.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, request.password.c_str());
  }
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, ("<" + request.mail_from + ">").c_str());
  for (const auto& r : request.recipients)
    t->rcpt_list = curl_slist_append(t->rcpt_list, ("<" + r + ">").c_str());
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, t->rcpt_list);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, &Transfer::OnRead);
  curl_easy_setopt(e, CURLOPT_READDATA, t.get());
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(t->upload.size()));
  Enqueue(std::move(t));
}

// The loop is woken by the submission that made the queue non-empty: it takes the whole queue
// after every wake-up, so later ones would only cost a write and a read each.
void CurlLoop::Enqueue(TransferPtr transfer) {
  active_.fetch_add(1, std::memory_order_relaxed);
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    if (!stop_) {
      was_empty = pending_.empty() && native_pending_.empty();
      pending_.push_back(std::move(transfer));
      transfer = nullptr;
    }
  }
  if (transfer) return transfer->Fail(CURLE_ABORTED_BY_CALLBACK, "transfer loop stopped");
  if (was_empty && WakeNeeded()) Wake();
}

bool CurlLoop::HasSubmissions() {
  std::lock_guard lock(mutex_);
  return !pending_.empty() || !native_pending_.empty();
}

void CurlLoop::Complete(Transfer* t, int code) {
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), t->easy);
  running_.erase(t);
  TransferPtr owned(t);
  t->result.curl_code = code;
  if (code != CURLE_OK)
    t->result.error = t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(static_cast<CURLcode>(code));
  long status = 0;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  t->result.status = status;
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &t->result.seconds);
  t->result.request_sent = t->RequestSent();
  t->Finish();
}

void CurlLoop::Finished() {
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(static_cast<CURLM*>(multi_), &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    Complete(t, msg->data.result);
  }
}

bool CurlLoop::TurnOnce(int max_wait_ms) {
  auto* multi = static_cast<CURLM*>(multi_);
  {
    std::lock_guard lock(mutex_);
    if (stop_) return false;
    batch_.swap(pending_);
    native_batch_.swap(native_pending_);
  }
  for (auto& s : native_batch_) native_->Start(std::move(s.request), std::move(s.target), std::move(s.done));
  native_batch_.clear();
  for (auto& t : batch_) {
    Transfer* raw = t.release();
    CURLMcode mc = curl_multi_add_handle(multi, raw->easy);  // sets the timer to "now"
    if (mc != CURLM_OK) {
      TransferPtr(raw)->Fail(CURLE_FAILED_INIT, curl_multi_strerror(mc));
      continue;
    }
    running_.insert(raw);
  }
  batch_.clear();
  Poll(max_wait_ms);
  Finished();
  return true;
}

int CurlLoop::Turn() {
  driver_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  if (!TurnOnce(0)) return 1000;  // stopped: Stop ran (or runs) the shutdown
  return driven_wait_ms_;
}

int CurlLoop::TimerWait(int cap) const {
  if (!timer_due_) return cap;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(*timer_due_ - std::chrono::steady_clock::now());
  return static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, cap));
}

void CurlLoop::Run() {
  while (TurnOnce(1000)) {
  }
  Shutdown();
}

void CurlLoop::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  // Stopping: whatever still runs ends with an error, and pending transfers never start.
  std::vector<Transfer*> left(running_.begin(), running_.end());
  for (Transfer* t : left) {
    std::snprintf(t->errbuf, sizeof(t->errbuf), "transfer loop stopped");
    Complete(t, CURLE_ABORTED_BY_CALLBACK);
  }
  native_->Stop();
  std::vector<TransferPtr> never;
  std::vector<NativeSubmission> native_batch;
  {
    std::lock_guard lock(mutex_);
    never.swap(pending_);
    native_batch.swap(native_pending_);
  }
  for (auto& t : never) t->Fail(CURLE_ABORTED_BY_CALLBACK, "transfer loop stopped");
  for (auto& s : native_batch) {
    active_.fetch_sub(1, std::memory_order_relaxed);
    s.done(Stopped());
  }
}

void CurlLoop::Poll(int max_wait_ms) {
  auto* multi = static_cast<CURLM*>(multi_);
  int still_running = 0;  // libcurl's count; the transfers' ends come from curl_multi_info_read
  constexpr int kMaxEvents = 128;
  epoll_event events[kMaxEvents];
  // Sleep until a socket is ready, libcurl's timer is due, or a submission wakes us; at most 1 s
  // (libcurl keeps a timer whenever a transfer runs, so this is only a safety net).
  int wait_ms = TimerWait(max_wait_ms);
  // Its deadlines due and lookups done, and how long till the next; driven, after the events.
  if (max_wait_ms > 0) wait_ms = native_->Tick(wait_ms);
  int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, wait_ms);
  for (int i = 0; i < n; ++i) {
    int fd = events[i].data.fd;
    if (fd == wake_fd_) {
      std::uint64_t count = 0;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof(count));
      continue;
    }
    if (native_->OnEvent(fd, events[i].events)) continue;
    auto at = static_cast<std::size_t>(fd);
    if (at < fd_states_.size() && fd_states_[at] != FdState::kWanted) {
      // Kept in the set after libcurl let go of it (OnSocket): taken out now that it says something.
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
      fd_states_[at] = FdState::kAbsent;
      continue;
    }
    int flags = 0;
    if ((events[i].events & EPOLLIN) != 0) flags |= CURL_CSELECT_IN;
    if ((events[i].events & EPOLLOUT) != 0) flags |= CURL_CSELECT_OUT;
    if ((events[i].events & (EPOLLERR | EPOLLHUP)) != 0) flags |= CURL_CSELECT_ERR;
    curl_multi_socket_action(multi, fd, flags, &still_running);
  }
  if (timer_due_ && *timer_due_ <= std::chrono::steady_clock::now()) {
    timer_due_.reset();  // libcurl sets it again through OnTimer when it needs one
    curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &still_running);
  }
  if (max_wait_ms == 0) driven_wait_ms_ = native_->Tick(TimerWait(1000));
}

}  // namespace pv::workers
