#include "pv/dispatcher/suppression.hpp"

#include <fmt/format.h>

#include <iterator>

namespace pv::dispatcher {
namespace {

RedisClient::Options StoreOptions(const std::string& url, std::chrono::milliseconds timeout) {
  RedisClient::Options options;
  options.url = url;
  options.timeout = timeout;
  // Every call may reconnect: the trigger pipeline paces its own retries (redis_retry_at_).
  options.reconnect_backoff = std::chrono::milliseconds(0);
  return options;
}

}  // namespace

SuppressionStore::SuppressionStore(const std::string& url, std::chrono::milliseconds timeout)
    : redis_(StoreOptions(url, timeout)) {}

std::optional<std::vector<RedisReply>> SuppressionStore::Run(const RedisCommands& commands,
                                                             std::string& error) {
  auto replies = redis_.Pipeline(commands);
  if (!replies) error = fmt::format("redis {}:{}: {}", endpoint().host, endpoint().port, redis_.last_error());
  return replies;
}

bool SuppressionStore::Ping(std::string& error) {
  RedisCommands ping;
  ping.Add({"PING"});
  auto replies = Run(ping, error);
  if (!replies) return false;
  if (replies->front().IsError()) {
    error = fmt::format("redis {}:{}: PING: {}", endpoint().host, endpoint().port, replies->front().str);
    return false;
  }
  return true;
}

bool SuppressionStore::Check(std::span<const SuppressionQuery> queries, std::vector<Suppressed>& out,
                             std::string& error, std::vector<SuppressionWhy>* why) {
  // Every command written as RESP into one reused buffer, then one round trip for the batch.
  commands_.clear();
  for (const auto& q : queries) {
    std::string& key = keys_[static_cast<size_t>(q.channel) % std::size(keys_)];
    if (key.empty()) key = SuppressionKey(q.channel);
    commands_.Add({"SISMEMBER", key, SuppressedUserMember(q.project, q.external_id)});
    commands_.Add({"SISMEMBER", key, SuppressedAddressMember(q.channel, q.address)});
  }
  auto replies = Run(commands_, error);
  if (!replies) return false;
  std::vector<Suppressed> result(queries.size(), Suppressed::kNo);
  for (size_t i = 0; i < replies->size(); ++i) {
    const RedisReply& reply = (*replies)[i];
    if (reply.type != RedisReply::Type::kInteger) {
      error = fmt::format("redis {}:{}: SISMEMBER: {}", endpoint().host, endpoint().port,
                          reply.IsError() ? reply.str : "unexpected reply");
      return false;
    }
    if (reply.integer == 1 && result[i / 2] == Suppressed::kNo) {
      result[i / 2] = i % 2 == 0 ? Suppressed::kUser : Suppressed::kAddress;
    }
  }
  if (why != nullptr) {
    // The reasons of the (few) suppressed ones: a second round trip, only when there are any.
    why->assign(queries.size(), SuppressionWhy());
    std::vector<size_t> hits;
    commands_.clear();
    for (size_t i = 0; i < queries.size(); ++i) {
      if (result[i] == Suppressed::kNo) continue;
      const auto& q = queries[i];
      const std::string member = result[i] == Suppressed::kUser
                                     ? SuppressedUserMember(q.project, q.external_id)
                                     : SuppressedAddressMember(q.channel, q.address);
      commands_.Add({"HGET", SuppressionWhyKey(q.channel), member});
      hits.push_back(i);
    }
    if (!hits.empty()) {
      replies = Run(commands_, error);
      if (!replies) return false;
      for (size_t k = 0; k < hits.size(); ++k) {
        const RedisReply& reply = (*replies)[k];
        (*why)[hits[k]] = ParseSuppressionWhy(
            reply.type == RedisReply::Type::kString ? std::string_view(reply.str) : std::string_view());
      }
    }
  }
  out = std::move(result);
  return true;
}

}  // namespace pv::dispatcher
