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
  TakeWake();
  return true;
}

void WakeFd::TakeWake() const {
  std::uint64_t value = 0;
  [[maybe_unused]] ssize_t n = ::read(fd_, &value, sizeof(value));  // EAGAIN: none pending
}

std::int64_t PartitionBook::Finish(std::string_view topic, std::int32_t partition, std::int64_t offset,
                                   std::uint64_t generation) {
  Partition* p = Find(topic, partition);
  // Generation 0 is "not assigned": work begun on a partition we did not own stores nothing.
  if (p == nullptr || generation == 0 || p->generation != generation || p->in_flight.erase(offset) == 0)
    return -1;
  std::int64_t next = p->in_flight.empty() ? p->highest_begun + 1 : *p->in_flight.begin();
  if (next <= p->stored) return -1;
  p->stored = next;
  return next;
}

}  // namespace pv::kafka
