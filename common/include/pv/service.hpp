// What every pv binary does at start and stop: the common command line, logging setup from the
// config, signal handling on a dedicated thread, and atomic small-file writes (pid, port files).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pv/config.hpp"

namespace pv::service {

struct Args {
  std::string config_path;  // --config PATH, or PV_CONFIG
  std::string port_file;    // --port-file PATH: the bound port is written there (tests, dev stack)
  bool print_config = false;
};

// Parses the common options (--config, --port-file, --print-config, --version, -h/--help) with CLI11
// (pv/command_line.hpp). Returns nullopt to go on, or the exit code once it printed: 0 for --help
// (with `summary`, the binary's own description) and --version ("<name> <version>"), 2 for a usage
// error such as an unknown option or a missing value (one line on stderr).
std::optional<int> ParseArgs(int argc, char** argv, std::string_view name, std::string_view summary,
                             Args& args);

// Loads the config, sets log level (log.level) and the service name. Throws ConfigError.
Config LoadConfig(const Args& args, std::string_view service);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread: the first statement of every main, so a
// signal that arrives while the config loads stays pending until Signals (below) handles it, instead
// of killing the process half-started. Only a signal before main (while the dynamic loader maps the
// libraries, a few ms) still ends the process by its default action: nothing is open by then.
void BlockStopSignals();

// Blocks SIGTERM, SIGINT, SIGHUP in the calling thread (so in every thread it starts afterwards:
// call it first in main) and handles them on its own thread: `on_stop` once for SIGTERM/SIGINT,
// `on_reload` for each SIGHUP. A second SIGTERM/SIGINT while stopping exits at once (status 1).
class Signals {
 public:
  Signals(std::function<void()> on_stop, std::function<void()> on_reload = {});
  ~Signals();
  Signals(const Signals&) = delete;
  Signals& operator=(const Signals&) = delete;

 private:
  std::thread thread_;
};

// Writes the port a service listens on to `path` ("<port>\n", atomically: pv/files.hpp), for tests and
// scripts that start it on port 0. Throws std::runtime_error when it cannot.
void WritePortFile(const std::string& path, int port);

}  // namespace pv::service
