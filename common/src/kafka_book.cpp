#include "pv/kafka_book.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace pv::kafka {

WakeFd::WakeFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

WakeFd::~WakeFd() {
  ::close(fd_);
}

void WakeFd::Wake() const {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof(one));
}

bool WakeFd::Sleep(std::chrono::milliseconds timeout) const {
  pollfd pfd{fd_, POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(timeout.count())) <= 0) return false;
  std::uint64_t value = 0;
  [[maybe_unused]] ssize_t n = ::read(fd_, &value, sizeof(value));
  return true;
}

PartitionBook::Topic& PartitionBook::At(std::string_view topic) {
  auto it = topics_.find(topic);
  return it != topics_.end() ? it->second : topics_.try_emplace(std::string(topic)).first->second;
}

const PartitionBook::Topic* PartitionBook::Find(std::string_view topic) const {
  auto it = topics_.find(topic);
  return it == topics_.end() ? nullptr : &it->second;
}

std::uint64_t PartitionBook::Assign(std::string_view topic, std::int32_t partition) {
  return At(topic).generations[partition] = ++next_generation_;
}

void PartitionBook::Revoke(std::string_view topic, std::int32_t partition) {
  Topic& t = At(topic);
  t.generations.erase(partition);
  t.outstanding.erase(partition);
  t.tracker.Forget(partition);
}

std::uint64_t PartitionBook::Generation(std::string_view topic, std::int32_t partition) const {
  const Topic* t = Find(topic);
  if (t == nullptr) return 0;
  auto it = t->generations.find(partition);
  return it == t->generations.end() ? 0 : it->second;
}

void PartitionBook::Begin(std::string_view topic, std::int32_t partition, std::int64_t offset) {
  At(topic).tracker.Begin(partition, offset);
}

std::int64_t PartitionBook::Finish(std::string_view topic, std::int32_t partition, std::int64_t offset,
                                   std::uint64_t generation) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return -1;
  auto g = it->second.generations.find(partition);
  if (g == it->second.generations.end() || g->second != generation) return -1;
  return it->second.tracker.Finish(partition, offset);
}

void PartitionBook::AddOutstanding(std::string_view topic, std::int32_t partition) {
  ++At(topic).outstanding[partition];
}

void PartitionBook::DoneOutstanding(std::string_view topic, std::int32_t partition) {
  Topic& t = At(topic);
  auto it = t.outstanding.find(partition);
  if (it != t.outstanding.end() && --it->second == 0) t.outstanding.erase(it);
}

size_t PartitionBook::Outstanding(std::string_view topic, std::int32_t partition) const {
  const Topic* t = Find(topic);
  if (t == nullptr) return 0;
  auto it = t->outstanding.find(partition);
  return it == t->outstanding.end() ? 0 : it->second;
}

size_t PartitionBook::Outstanding() const {
  size_t n = 0;
  for (const auto& [name, t] : topics_) {
    for (const auto& [p, count] : t.outstanding) n += count;
  }
  return n;
}

size_t PartitionBook::InFlight() const {
  size_t n = 0;
  for (const auto& [name, t] : topics_) n += t.tracker.InFlight();
  return n;
}

}  // namespace pv::kafka
