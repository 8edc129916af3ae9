// pv::testing: pv's own binaries (workers, dispatcher) started by a test with a generated config, on
// free loopback ports, stopped by pid. Tests that need other options start the binary themselves with a
// Subprocess and the paths below.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "pv/testing/process.hpp"
#include "pv/topics.hpp"

namespace pv::testing {

// A worker binary with `config_yaml` as its whole config file; Start() waits for its admin port.
class WorkerProcess {
 public:
  WorkerProcess(Channel channel, const std::string& config_yaml, const std::string& log_path);
  ~WorkerProcess();
  void Start();
  int Stop(int signal, std::chrono::milliseconds timeout);
  bool Running() { return process_ && process_->Running(); }
  int admin_port() const { return admin_port_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  std::string Log() const;

 private:
  Channel channel_;
  TempDir dir_;
  std::string log_path_;
  std::unique_ptr<Subprocess> process_;
  int admin_port_ = 0;
};

// pv-dispatcher, for its delay-ladder scheduler: re-publishes due pv.delay.<tier> records.
class DispatcherProcess {
 public:
  DispatcherProcess(const std::string& bootstrap, const std::string& redis_url,
                    const std::string& tiers_yaml_list);
  ~DispatcherProcess();
  std::string Log() const;

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
};

// Paths of the binaries (from the build).
std::string WorkerBinary(Channel channel);
std::string DispatcherBinary();

}  // namespace pv::testing
