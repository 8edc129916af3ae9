// pv-dispatcher: consumes pv.triggers, renders each trigger's campaign template for the user's locale,
// applies suppression and send windows, produces sends to pv.send.<channel>, and runs the delay
// ladder. All logic lives in pv_dispatcher (dispatcher.hpp); this wires config, signals and lifetime.
#include <fmt/format.h>

#include <atomic>

#include "pv/dispatcher/dispatcher.hpp"
#include "pv/log.hpp"
#include "pv/service.hpp"

int main(int argc, char** argv) {
  pv::service::BlockStopSignals();
  pv::service::Args args;
  if (auto code = pv::service::ParseArgs(
          argc, argv, "pv-dispatcher",
          "Consumes pv.triggers and produces one rendered send per trigger to pv.send.<channel> (or defers\n"
          "it to the campaign's send window, or suppresses it), re-publishes due records of the delay\n"
          "ladder (pv.delay.<tier>), and serves /healthz, /readyz and /metrics on dispatcher.admin_port\n"
          "(--port-file receives that port). SIGHUP reloads the catalog; SIGTERM finishes in-flight work.",
          args)) {
    return *code;
  }
  try {
    pv::Config config = pv::service::LoadConfig(args, "dispatcher");
    auto options = pv::dispatcher::DispatcherOptions::FromConfig(config);
    auto kafka_settings = pv::kafka::LoadSettings(config);
    if (args.print_config) {
      fmt::print("{}", config.Describe());
      return 0;
    }
    // Signals first: every thread started afterwards (librdkafka's among them) inherits the mask.
    std::atomic<pv::dispatcher::Dispatcher*> current{nullptr};
    std::atomic<bool> stop_requested{false};
    pv::service::Signals signals(
        [&] {
          stop_requested.store(true);
          if (auto* d = current.load()) d->Stop();
        },
        [&] {
          if (auto* d = current.load()) d->Reload();
        });
    pv::dispatcher::Dispatcher dispatcher(options, kafka_settings);
    current.store(&dispatcher);
    if (stop_requested.load()) dispatcher.Stop();
    int port = dispatcher.StartAdmin();
    if (!args.port_file.empty()) pv::service::WritePortFile(args.port_file, port);
    int status = dispatcher.Run();
    current.store(nullptr);
    pv::log::Info("exit", {{"status", status}});
    return status;
  } catch (const std::exception& e) {
    pv::log::Error("fatal", {{"error", e.what()}});
    fmt::print(stderr, "pv-dispatcher: {}\n", e.what());
    return 1;
  }
}
