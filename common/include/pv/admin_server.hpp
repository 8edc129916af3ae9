// The admin HTTP endpoints every background service (dispatcher, workers) serves on its own port:
// GET /healthz (the process is alive), GET /readyz (its dependencies answer: the `ready` callback),
// GET /metrics (Prometheus text). Ingest serves the same three on its main port.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "pv/metrics.hpp"

namespace httplib {
class Server;
}

namespace pv {

class AdminServer {
 public:
  // `ready` returns an empty string when ready, else the reason it is not (shown with 503).
  AdminServer(metrics::Registry& registry, std::function<std::string()> ready);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds host:port (port 0: any free port) and serves on a background thread. Returns the port.
  int Start(const std::string& host, int port);
  void Stop();

 private:
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

}  // namespace pv
