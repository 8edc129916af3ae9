#include "pv/workers/backoff.hpp"

#include <gtest/gtest.h>

namespace pv::workers {
namespace {

using namespace std::chrono_literals;

TEST(BackoffTest, DoublesWithJitterUpToTheCap) {
  BackoffPolicy p;
  p.base = 1000ms;
  p.max = 10000ms;
  p.jitter = 0.5;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200; ++i) {
    auto d1 = RetryDelay(p, 1, std::nullopt, rng);
    EXPECT_GE(d1, 500ms);
    EXPECT_LE(d1, 1000ms);
    auto d3 = RetryDelay(p, 3, std::nullopt, rng);
    EXPECT_GE(d3, 2000ms);
    EXPECT_LE(d3, 4000ms);
    auto d10 = RetryDelay(p, 10, std::nullopt, rng);
    EXPECT_GE(d10, 5000ms);
    EXPECT_LE(d10, 10000ms);
  }
}

TEST(BackoffTest, JitterSpreadsSendsThatFailedTogether) {
  BackoffPolicy p;
  std::mt19937_64 rng(7);
  auto a = RetryDelay(p, 2, std::nullopt, rng);
  bool differs = false;
  for (int i = 0; i < 10; ++i) differs = differs || RetryDelay(p, 2, std::nullopt, rng) != a;
  EXPECT_TRUE(differs);
}

TEST(BackoffTest, RetryAfterIsAFloor) {
  BackoffPolicy p;
  p.base = 1000ms;
  std::mt19937_64 rng(1);
  EXPECT_EQ(RetryDelay(p, 1, 30000ms, rng), 30000ms);
  auto d = RetryDelay(p, 1, 10ms, rng);
  EXPECT_GE(d, 500ms);
}

TEST(BackoffTest, HugeAttemptNumbersDoNotOverflow) {
  BackoffPolicy p;
  std::mt19937_64 rng(3);
  EXPECT_LE(RetryDelay(p, 1000, std::nullopt, rng), p.max);
  EXPECT_GE(RetryDelay(p, 0, std::nullopt, rng), p.base / 2);
}

}  // namespace
}  // namespace pv::workers
