#include "pv/dispatcher/suppression.hpp"

#include <fmt/format.h>

#include <algorithm>
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
  // One SMISMEMBER per channel for the whole batch (each query's user and address member, in turn),
  // at most kMaxQueriesPerCommand queries a command: Redis pays its per-command cost once a chunk
  // instead of twice a send. Every command is written as RESP into one reused buffer, and the batch
  // goes in one round trip.
  commands_.clear();
  order_.clear();
  chunk_begins_.clear();
  for (size_t c = 0; c < std::size(keys_); ++c) {
    const auto channel = static_cast<Channel>(c);
    const size_t first = order_.size();
    for (size_t i = 0; i < queries.size(); ++i) {
      if (queries[i].channel == channel) order_.push_back(i);
    }
    for (size_t at = first; at < order_.size(); at += kMaxQueriesPerCommand) {
      std::string& key = keys_[c];
      if (key.empty()) key = SuppressionKey(channel);
      const size_t end = std::min(order_.size(), at + kMaxQueriesPerCommand);
      args_.clear();
      args_.emplace_back("SMISMEMBER");
      args_.push_back(key);
      for (size_t k = at; k < end; ++k) {
        const SuppressionQuery& q = queries[order_[k]];
        args_.push_back(SuppressedUserMember(q.project, q.external_id));
        args_.push_back(SuppressedAddressMember(q.channel, q.address));
      }
      commands_.Add(args_);
      chunk_begins_.push_back(at);
    }
  }
  std::vector<Suppressed> result(queries.size(), Suppressed::kNo);
  if (!chunk_begins_.empty()) {
    auto replies = Run(commands_, error);
    if (!replies) return false;
    for (size_t c = 0; c < chunk_begins_.size(); ++c) {
      // Command c asked about order_[begin, end): the chunks follow each other in order_.
      const size_t begin = chunk_begins_[c];
      const size_t end = c + 1 < chunk_begins_.size() ? chunk_begins_[c + 1] : order_.size();
      const RedisReply& reply = (*replies)[c];
      if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 2 * (end - begin)) {
        error = fmt::format("redis {}:{}: SMISMEMBER: {}", endpoint().host, endpoint().port,
                            reply.IsError() ? reply.str : "unexpected reply");
        return false;
      }
      for (size_t k = begin; k < end; ++k) {
        const RedisReply& user = reply.elements[2 * (k - begin)];
        const RedisReply& address = reply.elements[2 * (k - begin) + 1];
        if (user.type != RedisReply::Type::kInteger || address.type != RedisReply::Type::kInteger) {
          error = fmt::format("redis {}:{}: SMISMEMBER: unexpected reply", endpoint().host, endpoint().port);
          return false;
        }
        if (user.integer == 1) {
          result[order_[k]] = Suppressed::kUser;
        } else if (address.integer == 1) {
          result[order_[k]] = Suppressed::kAddress;
        }
      }
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
      auto replies = Run(commands_, error);
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
