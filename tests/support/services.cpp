#include "pv/testing/services.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <vector>

namespace pv::testing {

using namespace std::chrono_literals;

std::string WorkerBinary(Channel channel) {
  switch (channel) {
    case Channel::kEmail:
      return PV_EMAIL_WORKER_BIN;
    case Channel::kSms:
      return PV_SMS_WORKER_BIN;
    case Channel::kPush:
      return PV_PUSH_WORKER_BIN;
  }
  return PV_EMAIL_WORKER_BIN;
}

std::string DispatcherBinary() {
  return PV_DISPATCHER_BIN;
}

WorkerProcess::WorkerProcess(Channel channel, const std::string& config_yaml, const std::string& log_path)
    : channel_(channel), dir_("pv-worker"), log_path_(log_path) {
  WriteFile(dir_.File("config.yaml"), config_yaml);
}

WorkerProcess::~WorkerProcess() {
  if (process_) process_->Stop(SIGKILL, 5s);
}

void WorkerProcess::Start() {
  std::filesystem::remove(dir_.File("admin.port"));
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{WorkerBinary(channel_), "--config", dir_.File("config.yaml"), "--port-file",
                               dir_.File("admin.port")},
      std::map<std::string, std::string>{}, log_path_);
  admin_port_ = WaitForPortFile(dir_.File("admin.port"), *process_, 20s);
}

int WorkerProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (!process_) return -1;
  return process_->Stop(signal, timeout);
}

std::string WorkerProcess::Log() const {
  return ReadFile(log_path_);
}

DispatcherProcess::DispatcherProcess(const std::string& bootstrap, const std::string& redis_url,
                                     const std::string& tiers_yaml_list)
    : dir_("pv-dispatcher") {
  std::string config = fmt::format(
      "kafka:\n  brokers: \"{}\"\n  properties:\n    session.timeout.ms: \"6000\"\n    "
      "heartbeat.interval.ms: \"500\"\n"
      "    log_level: \"3\"\nredis:\n  url: \"{}\"\ncatalog_dir: \"{}\"\nlog:\n  level: warn\n"
      "dispatcher:\n  admin_port: 0\n  delay_tiers: {}\n",
      bootstrap, redis_url, PV_SOURCE_DIR "/catalog/demo", tiers_yaml_list);
  WriteFile(dir_.File("config.yaml"), config);
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{DispatcherBinary(), "--config", dir_.File("config.yaml"), "--port-file",
                               dir_.File("admin.port")},
      std::map<std::string, std::string>{}, dir_.File("dispatcher.log"));
  WaitForPortFile(dir_.File("admin.port"), *process_, 20s);
}

DispatcherProcess::~DispatcherProcess() {
  process_->Stop(SIGTERM, 10s);
}

std::string DispatcherProcess::Log() const {
  return ReadFile(dir_.File("dispatcher.log"));
}

}  // namespace pv::testing
