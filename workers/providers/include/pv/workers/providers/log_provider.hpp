// The `log` provider: delivers a send by appending one JSON line to <outbox_dir>/<channel>.jsonl
// ({send_id, trigger_id, campaign_id, channel, provider, attempt, to, content, at}). The dev stack
// uses it; so do the benchmark and every test that needs a provider that always succeeds.
// One write(2) per line on an O_APPEND file, so several worker processes may share the file.
#pragma once

#include <string>

#include "pv/topics.hpp"
#include "pv/workers/provider.hpp"

namespace pv::workers::providers {

class LogProvider final : public Provider {
 public:
  // Creates the directory if needed; throws std::runtime_error when the file cannot be opened.
  LogProvider(std::string name, const std::string& outbox_dir, Channel channel);
  ~LogProvider() override;

  const std::string& name() const override { return name_; }
  std::string_view type() const override { return "log"; }
  void Deliver(const std::shared_ptr<const Send>& send, Done done) override;
  int Cost(const Send& send) const override;

  const std::string& path() const { return path_; }

 private:
  std::string name_;
  Channel channel_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace pv::workers::providers
