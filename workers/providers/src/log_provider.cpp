#include "pv/workers/providers/log_provider.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "pv/json.hpp"
#include "pv/workers/sms_segments.hpp"

namespace pv::workers::providers {

LogProvider::LogProvider(std::string name, const std::string& outbox_dir, Channel channel)
    : name_(std::move(name)), channel_(channel) {
  std::error_code ec;
  std::filesystem::create_directories(outbox_dir, ec);
  path_ = outbox_dir + "/" + std::string(ChannelName(channel)) + ".jsonl";
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(fmt::format("log provider: cannot open {}: {}", path_, std::strerror(errno)));
}

LogProvider::~LogProvider() {
  if (fd_ >= 0) ::close(fd_);
}

int LogProvider::Cost(const Send& send) const {
  if (channel_ != Channel::kSms) return 1;
  return std::max(1, CountSmsSegments(send.ContentString("body")).segments);
}

void LogProvider::Deliver(const std::shared_ptr<const Send>& send, Done done) {
  std::string line;
  line.reserve(send->value.size() + 256);
  line += R"({"send_id":)";
  AppendJsonString(line, send->send_id);
  line += R"(,"trigger_id":)";
  AppendJsonString(line, send->trigger_id);
  line += R"(,"campaign_id":)";
  AppendJsonString(line, send->campaign_id);
  line += R"(,"channel":)";
  AppendJsonString(line, send->channel);
  line += R"(,"provider":)";
  AppendJsonString(line, name_);
  line += R"(,"attempt":)";
  line += std::to_string(send->attempt);
  line += R"(,"to":)";
  // `to` and `content` as the record wrote them (Send::AppendObject): re-serialising them was a third
  // of this provider's cost (callgrind).
  if (send->to != nullptr) {
    send->AppendObject(line, *send->to);
  } else {
    line += "null";
  }
  line += R"(,"content":)";
  if (send->content != nullptr) {
    send->AppendObject(line, *send->content);
  } else {
    line += "null";
  }
  line += R"(,"at":)";
  AppendJsonString(line, FormatTimestamp(std::chrono::system_clock::now()));
  line += "}\n";
  ssize_t n = ::write(fd_, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) {
    // A full disk or a short write is worth a retry later, not a lost send.
    done(DeliveryResult::Failed(
        ErrorKind::kServerError,
        fmt::format("write {}: {}", path_, n < 0 ? std::strerror(errno) : "short write")));
    return;
  }
  done(DeliveryResult::Sent(fmt::format("log-{}", send->send_id)));
}

}  // namespace pv::workers::providers
