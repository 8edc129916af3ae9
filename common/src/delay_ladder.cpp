#include "pv/delay_ladder.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

#include "pv/json.hpp"
#include "pv/strings.hpp"
#include "pv/topics.hpp"

namespace pv::ladder {

std::vector<Tier> ParseTiers(const std::vector<std::string>& names) {
  std::vector<Tier> tiers;
  for (const auto& name : names) {
    size_t digits = 0;
    while (digits < name.size() && name[digits] >= '0' && name[digits] <= '9') ++digits;
    std::string unit = name.substr(digits);
    if (digits == 0 || digits > 9)
      throw std::invalid_argument(fmt::format("delay tier '{}': expected e.g. 30s", name));
    long long n = 0;
    ParseNumber(std::string_view(name).substr(0, digits), n);  // at most 9 digits: cannot fail
    std::chrono::milliseconds delay{};
    if (unit == "ms") {
      delay = std::chrono::milliseconds(n);
    } else if (unit == "s") {
      delay = std::chrono::seconds(n);
    } else if (unit == "m") {
      delay = std::chrono::minutes(n);
    } else if (unit == "h") {
      delay = std::chrono::hours(n);
    } else {
      throw std::invalid_argument(fmt::format("delay tier '{}': unit must be ms, s, m or h", name));
    }
    if (delay.count() <= 0)
      throw std::invalid_argument(fmt::format("delay tier '{}': must be positive", name));
    tiers.push_back({name, delay, topics::Delay(name)});
  }
  if (tiers.empty()) throw std::invalid_argument("at least one delay tier is required");
  std::sort(tiers.begin(), tiers.end(), [](const Tier& a, const Tier& b) { return a.delay < b.delay; });
  for (size_t i = 1; i < tiers.size(); ++i) {
    if (tiers[i].delay == tiers[i - 1].delay) {
      throw std::invalid_argument(
          fmt::format("delay tiers '{}' and '{}' are the same delay", tiers[i - 1].name, tiers[i].name));
    }
  }
  return tiers;
}

std::optional<int> ParseAttempt(std::string_view text) {
  int value = 0;
  if (!ParseNumber(text, value) || value < 1) return std::nullopt;
  return value;
}

const Tier& ChooseTier(std::span<const Tier> tiers, std::chrono::milliseconds remaining) {
  const Tier* chosen = &tiers.front();
  for (const auto& tier : tiers) {
    if (tier.delay <= remaining) chosen = &tier;
  }
  return *chosen;
}

std::chrono::system_clock::time_point ReleaseTime(const Tier& tier,
                                                  std::chrono::system_clock::time_point produced_at,
                                                  std::chrono::system_clock::time_point due) {
  return std::min(due, produced_at + tier.delay);
}

rd_kafka_resp_err_t Schedule(kafka::Producer& producer, std::span<const Tier> tiers, std::string_view target,
                             std::string_view key, std::string_view value,
                             std::chrono::system_clock::time_point due, int attempt,
                             std::span<const kafka::Header> extra,
                             const std::shared_ptr<kafka::DeliveryGroup>& group,
                             std::chrono::system_clock::time_point now) {
  auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
  const Tier& tier = ChooseTier(tiers, remaining);
  std::string due_at = FormatTimestamp(due);
  std::string attempt_text = std::to_string(attempt);
  std::vector<kafka::Header> headers = {{kDueAt, due_at}, {kTarget, target}, {kAttempt, attempt_text}};
  for (const auto& h : extra) {
    std::string_view n = h.name;
    if (n != kDueAt && n != kTarget && n != kAttempt) headers.push_back(h);
  }
  return producer.Produce(tier.topic, key, value, headers, group);
}

}  // namespace pv::ladder
