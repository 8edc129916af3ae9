#include "pv/workers/backoff.hpp"

#include <algorithm>

namespace pv::workers {

std::chrono::milliseconds RetryDelay(const BackoffPolicy& policy, int failed_attempt,
                                     std::optional<std::chrono::milliseconds> retry_after,
                                     std::mt19937_64& rng) {
  int shift = std::clamp(failed_attempt - 1, 0, 30);
  double full = static_cast<double>(policy.base.count()) * static_cast<double>(1LL << shift);
  full = std::min(full, static_cast<double>(policy.max.count()));
  double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> dist(full * (1.0 - jitter), full);
  auto delay = std::chrono::milliseconds(static_cast<long long>(dist(rng)));
  if (retry_after && *retry_after > delay) delay = *retry_after;
  return delay;
}

}  // namespace pv::workers
