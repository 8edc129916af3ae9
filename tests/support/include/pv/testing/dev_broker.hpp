// pv::testing: the dev broker (tools/dev-broker, a librdkafka mock cluster) as a subprocess of the test.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "pv/testing/process.hpp"

namespace pv::testing {

// pv-dev-broker with its bootstrap, control and log files in a temporary directory of its own,
// stopped (SIGTERM, then SIGKILL after 10 s) by the destructor. Control calls are HTTP POSTs to its
// loopback control server.
class DevBroker {
 public:
  // `extra_args`: more of its options, e.g. {"--no-default-topics", "--topic", "pv.triggers:2",
  // "--log-level", "warn"}. Throws, with its log, when it has not written its files within 20 s.
  explicit DevBroker(int brokers = 1, const std::vector<std::string>& extra_args = {});
  ~DevBroker();
  DevBroker(const DevBroker&) = delete;
  DevBroker& operator=(const DevBroker&) = delete;

  const std::string& bootstrap() const { return bootstrap_; }
  // POSTs to the control API (e.g. "/brokers/all/down"); returns the HTTP status, -1 when nothing
  // answered.
  int Control(const std::string& path) const;
  // GETs from it (e.g. "/long-poll"): the body of a 200, else "".
  std::string ControlGet(const std::string& path) const;
  pid_t pid() const { return process_->pid(); }
  Subprocess& process() { return *process_; }
  std::string Log() const { return process_->Log(); }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  std::string bootstrap_;
  std::string control_host_;
  int control_port_ = 0;
};

// Path of the pv-dev-broker binary (from the build).
std::string DevBrokerPath();

}  // namespace pv::testing
