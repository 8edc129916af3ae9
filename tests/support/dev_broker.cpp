#include "pv/testing/dev_broker.hpp"

#include <httplib.h>

#include <chrono>
#include <map>
#include <stdexcept>

namespace pv::testing {

std::string DevBrokerPath() {
  return PV_DEV_BROKER_BIN;
}

DevBroker::DevBroker(int brokers, const std::vector<std::string>& extra_args) : dir_("pv-dev-broker") {
  std::vector<std::string> argv = {
      DevBrokerPath(),        "--brokers",      std::to_string(brokers), "--bootstrap-file",
      dir_.File("bootstrap"), "--control-file", dir_.File("control")};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ =
      std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, dir_.File("broker.log"));
  bool up = WaitFor(
      [&] {
        return (!ReadFile(dir_.File("bootstrap")).empty() && !ReadFile(dir_.File("control")).empty()) ||
               !process_->Running();
      },
      std::chrono::seconds(20));
  if (!up || !process_->Running()) throw std::runtime_error("dev broker did not start: " + Log());
  bootstrap_ = WaitForFile(dir_.File("bootstrap"), std::chrono::seconds(2));
  std::string control = WaitForFile(dir_.File("control"), std::chrono::seconds(2));
  auto colon = control.rfind(':');
  if (bootstrap_.empty() || colon == std::string::npos) {
    throw std::runtime_error("dev broker wrote no bootstrap or control address: " + Log());
  }
  control_host_ = control.substr(0, colon);
  control_port_ = std::stoi(control.substr(colon + 1));
}

DevBroker::~DevBroker() {
  process_->Stop(SIGTERM, std::chrono::seconds(10));
}

int DevBroker::Control(const std::string& path) const {
  httplib::Client client(control_host_, control_port_);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Post(path.c_str());
  return res ? res->status : -1;
}

std::string DevBroker::ControlGet(const std::string& path) const {
  httplib::Client client(control_host_, control_port_);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Get(path.c_str());
  return res && res->status == 200 ? res->body : std::string();
}

}  // namespace pv::testing
