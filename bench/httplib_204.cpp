// The framework's ceiling for bench/ingest: cpp-httplib 0.11.4 configured as pv-ingest is (same
// thread pool, keep-alive, TCP_NODELAY) answering 204 at once, with no auth, parsing or Kafka.
// The gap between this and pv-ingest is what the durable path costs.
#include <httplib.h>

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
  server.Post(R"(/api/client/campaigns/([^/]+)/trigger)",
              [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  return server.listen("127.0.0.1", std::atoi(argv[1])) ? 0 : 1;
}
