// When to try a failed send again: exponential backoff with jitter, never sooner than the
// provider's Retry-After.
#pragma once

#include <chrono>
#include <optional>
#include <random>

namespace pv::workers {

struct BackoffPolicy {
  std::chrono::milliseconds base{5000};  // delay after the first attempt
  std::chrono::milliseconds max{3600000};
  double jitter = 0.5;  // the delay is drawn from [d * (1 - jitter), d]
};

// The delay before attempt `failed_attempt + 1`: base * 2^(failed_attempt - 1), capped at max, with
// jitter (so sends that failed together do not come back together), and at least `retry_after`.
std::chrono::milliseconds RetryDelay(const BackoffPolicy& policy, int failed_attempt,
                                     std::optional<std::chrono::milliseconds> retry_after,
                                     std::mt19937_64& rng);

}  // namespace pv::workers
