// The admin HTTP endpoints every background service (dispatcher, workers) serves on its own port:
// GET /healthz (the process is alive), GET /readyz (its dependencies answer: the `ready` callback),
// GET /metrics (Prometheus text: the registry's families, then pv_build_info and the process_* families
// of metrics::RenderProcessMetrics). Ingest serves the same three here too, off its public API port.
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
  // `health`, when given, returns the JSON object /healthz answers (always 200: the process is
  // alive; details such as a dependency's state go in the object), else {"status":"ok"}.
  AdminServer(metrics::Registry& registry, std::function<std::string()> ready,
              std::function<std::string()> health = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds host:port (port 0: any free port) and serves on a background thread. Returns the port
  // once the server accepts, so a Stop() at any moment afterwards ends it.
  int Start(const std::string& host, int port);
  void Stop();

 private:
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
};

}  // namespace pv
