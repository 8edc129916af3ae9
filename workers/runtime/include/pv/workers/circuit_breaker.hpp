// One provider's circuit in one worker: `failures` consecutive failed attempts (transient or
// configuration errors) open it for `open_for`, and while it is open the sends that have a fallback
// provider go there (docs/configuration-workers.md "What happens to a send", 2). When the open period
// has run out it is half-open: the primary takes traffic again and its count starts from zero, so
// `failures` more open it again; the primary's next answer that is not a failure (a success, or a
// permanent error: the provider answered, the send was the problem) closes it.
//
// The time is passed in (`now`), so tests drive every state without waiting:
// workers/test/circuit_breaker_test.cpp.
#pragma once

#include <chrono>

namespace pv::workers {

class CircuitBreaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(int failures, std::chrono::milliseconds open_for)
      : failures_(failures), open_for_(open_for) {}

  State StateAt(Clock::time_point now) const {
    if (now < open_until_) return State::kOpen;
    return opened_ ? State::kHalfOpen : State::kClosed;
  }
  bool IsOpen(Clock::time_point now) const { return now < open_until_; }

  // A success, or a permanent error.
  void OnAnswer() {
    consecutive_ = 0;
    opened_ = false;
  }
  // Returns true when this failure opened the circuit (the caller logs it).
  bool OnFailure(Clock::time_point now) {
    if (++consecutive_ < failures_) return false;
    consecutive_ = 0;
    opened_ = true;
    open_until_ = now + open_for_;
    return true;
  }

 private:
  int failures_;
  std::chrono::milliseconds open_for_;
  int consecutive_ = 0;
  bool opened_ = false;  // opened since the last answer
  Clock::time_point open_until_{};
};

}  // namespace pv::workers
