// pv-ingest: the trigger API. All logic lives in pv_ingest (server.hpp); this wires config,
// signals and the process lifetime.
#include <fmt/format.h>
#include <sys/resource.h>

#include <atomic>

#include "pv/ingest/server.hpp"
#include "pv/log.hpp"
#include "pv/service.hpp"

int main(int argc, char** argv) {
  pv::service::BlockStopSignals();
  pv::service::Args args;
  if (auto code = pv::service::ParseArgs(
          argc, argv, "pv-ingest",
          "Accepts POST /api/client/campaigns/:campaignId/trigger (and /trigger/batch), validates each\n"
          "trigger against the campaign catalog, publishes it to Kafka (pv.triggers) and answers 204 only\n"
          "after the broker acknowledged it. Serves /healthz, /readyz and /metrics on ingest.admin_port\n"
          "(127.0.0.1:9110 by default), never on the API port. SIGTERM: unready at once, serves for\n"
          "ingest.shutdown_delay_ms more, then finishes what is in flight and exits 0.",
          args)) {
    return *code;
  }
  try {
    pv::Config config = pv::service::LoadConfig(args, "ingest");
    auto options = pv::ingest::IngestOptions::FromConfig(config);
    auto kafka_settings = pv::kafka::LoadSettings(config);
    if (args.print_config) {
      fmt::print("{}", config.Describe());
      return 0;
    }
    // Each connection is a descriptor: take the hard limit, and say so when even that is short of
    // ingest.max_connections (past the limit, accept fails and is retried every 100 ms).
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
      files.rlim_cur = files.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &files);
      if (files.rlim_cur < options.front.max_connections + 256) {
        pv::log::Warn("open_files_limit_low", {{"limit", static_cast<std::int64_t>(files.rlim_cur)},
                                               {"max_connections", options.front.max_connections}});
      }
    }
    // Signals first: every thread started afterwards (librdkafka's among them) inherits the mask,
    // so SIGTERM reaches the signal thread and never kills the process from a library thread.
    std::atomic<pv::ingest::IngestServer*> current{nullptr};
    std::atomic<bool> stop_requested{false};
    pv::service::Signals signals(
        [&] {
          stop_requested.store(true);
          if (auto* s = current.load()) s->Stop();
        },
        [&] {
          if (auto* s = current.load()) s->Reload();
        });
    pv::ingest::IngestServer server(options, kafka_settings);
    current.store(&server);
    if (stop_requested.load()) server.Stop();
    int port = server.Bind();
    if (!args.port_file.empty()) pv::service::WritePortFile(args.port_file, port);
    server.Run();
    server.Stop();
    current.store(nullptr);
    int status = server.failed() ? 1 : 0;
    pv::log::Info("exit", {{"status", status}});
    return status;
  } catch (const std::exception& e) {
    pv::log::Error("fatal", {{"error", e.what()}});
    fmt::print(stderr, "pv-ingest: {}\n", e.what());
    return 1;
  }
}
