#include "pv/admin_server.hpp"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>
#include <thread>

#include "pv/json.hpp"
#include "pv/log.hpp"

namespace pv {

AdminServer::AdminServer(metrics::Registry& registry, std::function<std::string()> ready,
                         std::function<std::string()> health)
    : http_(std::make_unique<httplib::Server>()) {
  http_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  http_->Get("/healthz", [health = std::move(health)](const httplib::Request&, httplib::Response& res) {
    res.set_content(health ? health() : std::string(R"({"status":"ok"})"), "application/json");
  });
  http_->Get("/readyz", [ready = std::move(ready)](const httplib::Request&, httplib::Response& res) {
    std::string why = ready ? ready() : std::string();
    if (why.empty()) {
      res.set_content(R"({"status":"ready"})", "application/json");
    } else {
      std::string body = "{\"status\":";
      AppendJsonString(body, why);
      body += '}';
      res.status = 503;
      res.set_content(body, "application/json");
    }
  });
  http_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    // The service's own families, then pv_build_info and process_* (the same in every binary).
    res.set_content(registry.Render() + metrics::RenderProcessMetrics(), "text/plain; version=0.0.4");
  });
}

AdminServer::~AdminServer() {
  Stop();
}

int AdminServer::Start(const std::string& host, int port) {
  int bound = port == 0 ? http_->bind_to_any_port(host.c_str())
                        : (http_->bind_to_port(host.c_str(), port) ? port : -1);
  if (bound < 0) throw std::runtime_error(fmt::format("admin server: cannot listen on {}:{}", host, port));
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // cpp-httplib's stop() does nothing until listen has begun (it would then accept forever): wait
  // for it, so Stop() may come at any moment after Start returns.
  for (int i = 0; i < 5000 && !http_->is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  log::Info("admin_listening", {{"host", host}, {"port", bound}});
  return bound;
}

void AdminServer::Stop() {
  if (thread_.joinable()) {
    http_->stop();
    thread_.join();
  }
}

}  // namespace pv
