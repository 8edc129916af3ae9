// A provider's circuit (pv/workers/circuit_breaker.hpp): opens after N consecutive failures, half-opens
// when the open period ran out, closes on the provider's next answer; time injected.
#include "pv/workers/circuit_breaker.hpp"

#include <gtest/gtest.h>

namespace pv::workers {
namespace {

using namespace std::chrono_literals;
using State = CircuitBreaker::State;

const CircuitBreaker::Clock::time_point kT0 = CircuitBreaker::Clock::time_point{} + 1000h;

TEST(CircuitBreaker, OpensAfterConsecutiveFailures) {
  CircuitBreaker c(3, 30s);
  EXPECT_EQ(c.StateAt(kT0), State::kClosed);
  EXPECT_FALSE(c.OnFailure(kT0));
  EXPECT_FALSE(c.OnFailure(kT0));
  EXPECT_EQ(c.StateAt(kT0), State::kClosed);
  EXPECT_TRUE(c.OnFailure(kT0));  // the third
  EXPECT_EQ(c.StateAt(kT0), State::kOpen);
  EXPECT_TRUE(c.IsOpen(kT0 + 29999ms));
  EXPECT_EQ(c.StateAt(kT0 + 29999ms), State::kOpen);
}

TEST(CircuitBreaker, AnAnswerBetweenFailuresKeepsItClosed) {
  CircuitBreaker c(3, 30s);
  c.OnFailure(kT0);
  c.OnFailure(kT0);
  c.OnAnswer();  // a success or a permanent error: the provider is there
  EXPECT_FALSE(c.OnFailure(kT0));
  EXPECT_FALSE(c.OnFailure(kT0));
  EXPECT_EQ(c.StateAt(kT0), State::kClosed);
}

TEST(CircuitBreaker, HalfOpensWhenTheOpenPeriodRanOut) {
  CircuitBreaker c(2, 30s);
  c.OnFailure(kT0);
  c.OnFailure(kT0);
  EXPECT_EQ(c.StateAt(kT0 + 30s), State::kHalfOpen);
  EXPECT_FALSE(c.IsOpen(kT0 + 30s));  // traffic goes to the primary again
  // Its count started anew: one failure does not open it again, the threshold's worth does.
  EXPECT_FALSE(c.OnFailure(kT0 + 31s));
  EXPECT_EQ(c.StateAt(kT0 + 31s), State::kHalfOpen);
  EXPECT_TRUE(c.OnFailure(kT0 + 32s));
  EXPECT_EQ(c.StateAt(kT0 + 32s), State::kOpen);
  EXPECT_EQ(c.StateAt(kT0 + 32s + 29999ms), State::kOpen);
  EXPECT_EQ(c.StateAt(kT0 + 62s), State::kHalfOpen);
}

TEST(CircuitBreaker, ClosesOnTheProvidersNextAnswer) {
  CircuitBreaker c(1, 30s);
  EXPECT_TRUE(c.OnFailure(kT0));
  EXPECT_EQ(c.StateAt(kT0 + 40s), State::kHalfOpen);
  c.OnAnswer();
  EXPECT_EQ(c.StateAt(kT0 + 40s), State::kClosed);
}

}  // namespace
}  // namespace pv::workers
