#include "pv/dispatcher/suppression.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <iterator>

#include "pv/config.hpp"
#include "pv/json.hpp"
#include "pv/redis_url.hpp"

namespace pv::dispatcher {
namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

// One command in RESP ("*<count>\r\n", then "$<length>\r\n<argument>\r\n" for each), appended.
void AppendCommand(std::string& out, std::initializer_list<std::string_view> args) {
  fmt::format_to(std::back_inserter(out), "*{}\r\n", args.size());
  for (std::string_view a : args) {
    fmt::format_to(std::back_inserter(out), "${}\r\n", a.size());
    out.append(a);
    out.append("\r\n");
  }
}

}  // namespace

std::string SuppressionRedisUrl(const Config& config, std::string_view default_url) {
  // An empty suppression.redis_url means "not set": an empty override must not turn suppression off
  // while redis.url names a store.
  std::string url = config.GetString("suppression.redis_url", "");
  return url.empty() ? config.GetString("redis.url", default_url) : url;
}

std::string SuppressionKey(Channel channel) {
  return fmt::format("pv:suppress:{}", ChannelName(channel));
}

std::string SuppressedUserMember(std::string_view project, std::string_view external_id) {
  return fmt::format("user:{}:{}", project, external_id);
}

std::string SuppressedAddressMember(Channel channel, std::string_view address) {
  std::string member = "address:";
  member += address;
  if (channel == Channel::kEmail) {
    std::transform(member.begin() + 8, member.end(), member.begin() + 8,
                   [](unsigned char c) { return std::tolower(c); });
  }
  return member;
}

std::string SuppressionWhyKey(Channel channel) {
  return SuppressionKey(channel) + ":why";
}

std::string SuppressionWhyJson(std::string_view reason, std::string_view at, std::string_view source) {
  std::string out = "{\"reason\":";
  AppendJsonString(out, reason);
  out += ",\"at\":";
  AppendJsonString(out, at);
  if (!source.empty()) {
    out += ",\"source\":";
    AppendJsonString(out, source);
  }
  out += '}';
  return out;
}

SuppressionWhy ParseSuppressionWhy(std::string_view json) {
  SuppressionWhy why;
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (!doc.HasParseError() && doc.IsObject()) {
    why.reason = std::string(FindString(doc, "reason").value_or(""));
    why.at = std::string(FindString(doc, "at").value_or(""));
    why.source = std::string(FindString(doc, "source").value_or(""));
  }
  if (why.reason.empty()) why.reason = "unknown";
  return why;
}

std::vector<std::string> SuppressCommand(Channel channel, std::string_view member,
                                         std::string_view why_json) {
  static const std::string kScript =
      "local added = redis.call('SADD', KEYS[1], ARGV[1]) "
      "redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) "
      "return added";
  return {"EVAL",
          kScript,
          "2",
          SuppressionKey(channel),
          SuppressionWhyKey(channel),
          std::string(member),
          std::string(why_json)};
}

std::vector<std::string> LiftStopCommand(Channel channel, std::string_view member) {
  // cjson is in every Redis since 2.6: the reason is read, not pattern-matched.
  static const std::string kScript =
      "local why = redis.call('HGET', KEYS[2], ARGV[1]) "
      "if not why then return 0 end "
      "local ok, value = pcall(cjson.decode, why) "
      "if not ok or type(value) ~= 'table' or value['reason'] ~= 'stop' then return 0 end "
      "redis.call('SREM', KEYS[1], ARGV[1]) "
      "redis.call('HDEL', KEYS[2], ARGV[1]) "
      "return 1";
  return {"EVAL", kScript, "2", SuppressionKey(channel), SuppressionWhyKey(channel), std::string(member)};
}

SuppressionStore::SuppressionStore(RedisAddress address, std::chrono::milliseconds timeout)
    : address_(std::move(address)), timeout_(timeout) {}

SuppressionStore::~SuppressionStore() {
  Disconnect();
}

void SuppressionStore::Disconnect() {
  if (ctx_ != nullptr) redisFree(ctx_);
  ctx_ = nullptr;
}

bool SuppressionStore::Connect(std::string& error) {
  if (ctx_ != nullptr && ctx_->err == 0) return true;
  Disconnect();
  ctx_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, ToTimeval(timeout_));
  if (ctx_ == nullptr || ctx_->err != 0) {
    error =
        fmt::format("redis {}:{}: {}", address_.host, address_.port, ctx_ ? ctx_->errstr : "cannot allocate");
    Disconnect();
    return false;
  }
  redisSetTimeout(ctx_, ToTimeval(timeout_));
  auto command = [&](std::initializer_list<std::string> args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
      error = fmt::format("redis {}:{}: {} failed: {}", address_.host, address_.port, *args.begin(),
                          reply ? reply->str : ctx_->errstr);
      return false;
    }
    return true;
  };
  if (!address_.password.empty() && !command({"AUTH", address_.password})) {
    Disconnect();
    return false;
  }
  if (address_.db != 0 && !command({"SELECT", std::to_string(address_.db)})) {
    Disconnect();
    return false;
  }
  return true;
}

bool SuppressionStore::Ping(std::string& error) {
  if (!Connect(error)) return false;
  Reply reply(static_cast<redisReply*>(redisCommand(ctx_, "PING")));
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    error =
        fmt::format("redis {}:{}: PING: {}", address_.host, address_.port, reply ? reply->str : ctx_->errstr);
    Disconnect();
    return false;
  }
  return true;
}

bool SuppressionStore::Check(std::span<const SuppressionQuery> queries, std::vector<Suppressed>& out,
                             std::string& error, std::vector<SuppressionWhy>* why) {
  if (!Connect(error)) return false;
  // Writes every command into one buffer (RESP, reused from batch to batch: hiredis's own formatting
  // took a dozen allocations per trigger), appends it, then reads every reply: one round trip for
  // the batch.
  commands_.clear();
  std::string keys[3];  // SuppressionKey by channel, made once per batch
  size_t appended = 0;
  for (const auto& q : queries) {
    std::string& key = keys[static_cast<size_t>(q.channel) % std::size(keys)];
    if (key.empty()) key = SuppressionKey(q.channel);
    AppendCommand(commands_, {"SISMEMBER", key, SuppressedUserMember(q.project, q.external_id)});
    AppendCommand(commands_, {"SISMEMBER", key, SuppressedAddressMember(q.channel, q.address)});
    appended += 2;
  }
  if (appended > 0 && redisAppendFormattedCommand(ctx_, commands_.data(), commands_.size()) != REDIS_OK) {
    error = fmt::format("redis {}:{}: {}", address_.host, address_.port, ctx_->errstr);
    Disconnect();
    return false;
  }
  std::vector<Suppressed> result(queries.size(), Suppressed::kNo);
  for (size_t i = 0; i < appended; ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK) {
      error = fmt::format("redis {}:{}: {}", address_.host, address_.port, ctx_->errstr);
      Disconnect();
      return false;
    }
    Reply reply(static_cast<redisReply*>(raw));
    if (reply->type != REDIS_REPLY_INTEGER) {
      error = fmt::format("redis {}:{}: SISMEMBER: {}", address_.host, address_.port,
                          reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
      // The connection is still in step (one reply per command); read the rest before failing.
      for (++i; i < appended; ++i) {
        if (redisGetReply(ctx_, &raw) != REDIS_OK) {
          Disconnect();
          return false;
        }
        freeReplyObject(raw);
      }
      return false;
    }
    if (reply->integer == 1 && result[i / 2] == Suppressed::kNo) {
      result[i / 2] = i % 2 == 0 ? Suppressed::kUser : Suppressed::kAddress;
    }
  }
  if (why != nullptr) {
    // The reasons of the (few) suppressed ones: a second round trip, only when there are any.
    why->assign(queries.size(), SuppressionWhy());
    std::vector<size_t> hits;
    for (size_t i = 0; i < queries.size(); ++i) {
      if (result[i] == Suppressed::kNo) continue;
      const auto& q = queries[i];
      std::string key = SuppressionWhyKey(q.channel);
      std::string member = result[i] == Suppressed::kUser ? SuppressedUserMember(q.project, q.external_id)
                                                          : SuppressedAddressMember(q.channel, q.address);
      redisAppendCommand(ctx_, "HGET %b %b", key.data(), key.size(), member.data(), member.size());
      hits.push_back(i);
    }
    for (size_t k = 0; k < hits.size(); ++k) {
      void* raw = nullptr;
      if (redisGetReply(ctx_, &raw) != REDIS_OK) {
        error = fmt::format("redis {}:{}: {}", address_.host, address_.port, ctx_->errstr);
        Disconnect();
        return false;
      }
      Reply reply(static_cast<redisReply*>(raw));
      (*why)[hits[k]] = ParseSuppressionWhy(
          reply->type == REDIS_REPLY_STRING ? std::string_view(reply->str, reply->len) : std::string_view());
    }
  }
  out = std::move(result);
  return true;
}

}  // namespace pv::dispatcher
