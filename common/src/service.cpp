#include "pv/service.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "pv/build_info.hpp"
#include "pv/command_line.hpp"
#include "pv/files.hpp"
#include "pv/log.hpp"

namespace pv::service {

std::optional<int> ParseArgs(int argc, char** argv, std::string_view name, std::string_view summary,
                             Args& args) {
  CLI::App app{std::string(summary), std::string(name)};
  app.footer(
      "Every setting can be overridden by an environment variable: PV_ + its path in upper case\n"
      "with dots as underscores (kafka.brokers -> PV_KAFKA_BROKERS). See docs/configuration.md.");
  app.add_option("--config", args.config_path,
                 "deployment config (YAML); default: $PV_CONFIG, else defaults + environment")
      ->type_name("PATH")
      ->envname("PV_CONFIG");
  app.add_option("--port-file", args.port_file, "write the port actually bound there (useful with port 0)")
      ->type_name("PATH");
  app.add_flag("--print-config", args.print_config,
               "print the effective settings and where each came from, then exit");
  bool version = false;
  app.add_flag("--version", version, "print the version and exit");
  std::vector<std::string> words(argv + (argc > 0 ? 1 : 0), argv + argc);
  if (auto code = cli::Parse(app, words, std::cout, std::cerr)) {
    std::cout.flush();
    return code;
  }
  if (version) {
    fmt::print("{} {} (commit {})\n", name, build::Version(), build::Commit());
    return 0;
  }
  return std::nullopt;
}

Config LoadConfig(const Args& args, std::string_view service) {
  log::SetService(service);
  Config config = Config::Load(args.config_path);
  try {
    log::SetLevel(log::ParseLevel(config.GetString("log.level", "info")));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("setting log.level: {}", e.what()));
  }
  return config;
}

namespace {

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

void BlockStopSignals() {
  sigset_t set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

Signals::Signals(std::function<void()> on_stop, std::function<void()> on_reload) {
  BlockStopSignals();
  sigset_t set = StopSignals();
  thread_ = std::thread([set, stop = std::move(on_stop), reload = std::move(on_reload)] {
    bool stopping = false;
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        log::Info("signal", {{"signal", "SIGHUP"}, {"action", "reload"}});
        if (reload) reload();
        continue;
      }
      if (stopping) {
        log::Warn("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"action", "exit now"}});
        std::_Exit(1);
      }
      stopping = true;
      log::Info("signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"action", "stop"}});
      if (stop) stop();
      // Keep serving the second-signal escape hatch; the process exits from main.
    }
  });
  thread_.detach();
}

Signals::~Signals() = default;

void WritePortFile(const std::string& path, int port) {
  std::string error;
  if (!WriteFileAtomically(path, std::to_string(port) + "\n", error)) throw std::runtime_error(error);
}

}  // namespace pv::service
