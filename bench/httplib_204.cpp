// The framework's ceiling for bench/ingest: cpp-httplib 0.11.4 configured as pv-ingest is (same
// thread pool, keep-alive, TCP_NODELAY, listen backlog raised to SOMAXCONN) answering 204 at once,
// with no auth, parsing or Kafka. The gap between this and pv-ingest is what the durable path costs.
#include <httplib.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: pv-bench-httplib-204 PORT\n");
    return 2;
  }
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(128); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100000);
  // As ingest does: cpp-httplib listens with a compiled-in backlog of 5, so clients connecting at
  // once wait a 1 s SYN retransmit; keep the listening fd and listen again with SOMAXCONN.
  int listen_fd = -1;
  server.set_socket_options([&listen_fd](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd = fd;
  });
  server.Post(R"(/api/client/campaigns/([^/]+)/trigger)",
              [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  if (!server.bind_to_port("127.0.0.1", std::atoi(argv[1]))) {
    return 1;
  }
  if (listen_fd >= 0) {
    ::listen(listen_fd, SOMAXCONN);
  }
  return server.listen_after_bind() ? 0 : 1;
}
