#include "pv/service.hpp"

#include <fmt/format.h>
#include <pthread.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "pv/build_info.hpp"
#include "pv/log.hpp"

namespace pv::service {

std::optional<int> ParseArgs(int argc, char** argv, std::string_view name, std::string_view summary,
                             Args& args) {
  auto usage = [&](FILE* out) {
    fmt::print(
        out,
        "Usage: {} [--config PATH] [--port-file PATH] [--print-config]\n\n{}\n\n"
        "Options:\n"
        "  --config PATH      deployment config (YAML); default: $PV_CONFIG, else defaults + environment\n"
        "  --port-file PATH   write the port actually bound there (useful with port 0)\n"
        "  --print-config     print the effective settings and where each came from, then exit\n"
        "  --version          print the version and exit\n"
        "  -h, --help         this help\n\n"
        "Every setting can be overridden by an environment variable: PV_ + its path in upper case\n"
        "with dots as underscores (kafka.brokers -> PV_KAFKA_BROKERS). See docs/configuration.md.\n",
        name, summary);
  };
  if (const char* env = std::getenv("PV_CONFIG"); env != nullptr) args.config_path = env;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) {
        fmt::print(stderr, "{}: {} needs a value\n", name, a);
        return false;
      }
      out = argv[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      usage(stdout);
      return 0;
    }
    if (a == "--version") {
      fmt::print("{} {} (commit {})\n", name, build::Version(), build::Commit());
      return 0;
    }
    if (a == "--config") {
      if (!value(args.config_path)) return 2;
    } else if (a.rfind("--config=", 0) == 0) {
      args.config_path = std::string(a.substr(9));
    } else if (a == "--port-file") {
      if (!value(args.port_file)) return 2;
    } else if (a == "--print-config") {
      args.print_config = true;
    } else {
      fmt::print(stderr, "{}: unknown option '{}'\n\n", name, a);
      usage(stderr);
      return 2;
    }
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

void WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out) throw std::runtime_error(fmt::format("cannot write {}", tmp));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(fmt::format("cannot rename to {}", path));
}

}  // namespace pv::service
