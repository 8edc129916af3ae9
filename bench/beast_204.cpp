// A candidate for ingest's event-driven front (issue 8), measured by bench/ingest: bare
// Boost.Beast 1.81 (header-only Beast over Asio) answering 204 to every request, with no auth,
// parsing or Kafka. Each request is read whole (header + body) by an
// http::request_parser<string_body> with a header and a body limit, as the real front would;
// keep-alive and pipelining are kept (a pipelined request is parsed from what the previous read
// left in the buffer, answers go out in order). N event-loop threads, one io_context each; the
// acceptor (on loop 0) hands accepted sockets to the loops round-robin. TCP_NODELAY, SOMAXCONN
// backlog, no per-connection deadlines (the real front would add a timer per connection).
//
//   pv-bench-beast-204 PORT [THREADS]      THREADS defaults to the number of cores; binds 127.0.0.1
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace net = boost::asio;
namespace http = boost::beast::http;
using boost::beast::error_code;
using tcp = net::ip::tcp;

constexpr std::uint32_t kHeaderLimit = 16 * 1024;  // the header limit
constexpr std::uint64_t kBodyLimit = 1024 * 1024;

// One connection; it lives on the io_context its socket was accepted for and is only ever touched
// from that loop's thread.
class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {
    response_.version(11);
    response_.result(http::status::no_content);
  }

  void Start() { Read(); }

 private:
  void Read() {
    parser_.emplace();  // a parser reads one message; a fresh one per request
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, std::size_t) { self->OnRead(ec); });
  }

  void OnRead(error_code ec) {
    if (ec) {  // end of stream, reset, or a request over a limit: close
      Close();
      return;
    }
    response_.keep_alive(parser_->get().keep_alive());
    http::async_write(socket_, response_,
                      [self = shared_from_this()](error_code wec, std::size_t) { self->OnWrite(wec); });
  }

  void OnWrite(error_code ec) {
    if (ec || !response_.keep_alive()) {
      Close();
      return;
    }
    Read();
  }

  void Close() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::empty_body> response_;
};

class Listener {
 public:
  Listener(net::io_context& own, std::vector<std::unique_ptr<net::io_context>>& loops,
           const tcp::endpoint& at)
      : acceptor_(own), loops_(loops) {
    acceptor_.open(at.protocol());
    acceptor_.set_option(net::socket_base::reuse_address(true));
    acceptor_.bind(at);
    acceptor_.listen(net::socket_base::max_listen_connections);
  }

  void Accept() {
    net::io_context& loop = *loops_[next_];
    next_ = (next_ + 1) % loops_.size();
    acceptor_.async_accept(loop, [this, &loop](error_code ec, tcp::socket socket) {
      if (!ec) {
        error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<Session>(std::move(socket));
        // Start on the session's own loop, so its state is only touched by that thread.
        net::post(loop, [session] { session->Start(); });
      } else if (ec == net::error::no_descriptors) {
        std::fprintf(stderr, "pv-bench-beast-204: accept: %s\n", ec.message().c_str());
      }
      Accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<net::io_context>>& loops_;
  std::size_t next_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: pv-bench-beast-204 PORT [THREADS]\n");
    return 2;
  }
  const auto port = static_cast<unsigned short>(std::atoi(argv[1]));
  unsigned threads =
      argc == 3 ? static_cast<unsigned>(std::atoi(argv[2])) : std::thread::hardware_concurrency();
  if (threads == 0) {
    threads = 1;
  }

  std::vector<std::unique_ptr<net::io_context>> loops;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards;
  for (unsigned i = 0; i < threads; ++i) {
    loops.push_back(std::make_unique<net::io_context>(1));  // one thread runs each loop
    guards.push_back(net::make_work_guard(*loops.back()));
  }
  try {
    Listener listener(*loops[0], loops, tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    listener.Accept();
    std::vector<std::thread> runners;
    for (unsigned i = 1; i < threads; ++i) {
      runners.emplace_back([&loop = *loops[i]] { loop.run(); });
    }
    loops[0]->run();
    for (auto& t : runners) {
      t.join();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pv-bench-beast-204: %s\n", e.what());
    return 1;
  }
  return 0;
}
