// pvctl suppress: the users and addresses a channel must not reach, in the Redis sets the dispatcher
// checks before producing a send. The key layout is the dispatcher's own (SuppressionKey and the
// member helpers of pv/dispatcher/suppression.hpp), so the two cannot drift apart:
//   pv:suppress:<email|text|push>  SET of  user:<project>:<external_id>  and  address:<address>
#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <memory>
#include <ostream>
#include <vector>

#include "pv/dispatcher/suppression.hpp"
#include "pv/json.hpp"
#include "pv/validate.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kSuppressUsage = R"(Usage:
  pvctl suppress add    --channel email|text|push ADDRESS...
  pvctl suppress add    --channel email|text|push --user --project P EXTERNAL_ID...
  pvctl suppress remove --channel email|text|push ADDRESS... | --user --project P EXTERNAL_ID...
  pvctl suppress list   [--channel email|text|push] [--json]

A suppressed address (an email address, an E.164 phone number, a device token) gets no message of
that channel from any project; a suppressed user (--user: an external id of project P) gets none of
that channel from P. The dispatcher checks both before producing each send, and marks the send
`suppressed` in pv.events instead. Members may also be given raw: address:bob@example.com,
user:demo:u-123. Email addresses are stored in lower case.

Redis: suppression.redis_url from the config, else redis.url (or --redis-url
redis://[:password@]host[:port][/db]): the dispatcher's suppression store.
Storage: SET pv:suppress:<channel>, members address:<address> and user:<project>:<external_id>.
Exit codes: 0 ok, 1 Redis failed, 2 usage.
)";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;
struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};

class Redis {
 public:
  explicit Redis(const std::string& url) {
    std::string error;
    if (!dispatcher::ParseRedisUrl(url, address_, error))
      throw std::runtime_error("suppression store URL: " + error);
    timeval tv{5, 0};
    ctx_.reset(redisConnectWithTimeout(address_.host.c_str(), address_.port, tv));
    if (!ctx_ || ctx_->err != 0) {
      throw std::runtime_error(fmt::format("redis {}:{}: {}", address_.host, address_.port,
                                           ctx_ ? ctx_->errstr : "cannot allocate a connection"));
    }
    redisSetTimeout(ctx_.get(), tv);
    if (!address_.password.empty()) Command({"AUTH", address_.password});
    if (address_.db != 0) Command({"SELECT", std::to_string(address_.db)});
  }

  Reply Command(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply reply(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (!reply) {
      throw std::runtime_error(
          fmt::format("redis {}:{}: {}: {}", address_.host, address_.port, args[0], ctx_->errstr));
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      throw std::runtime_error(fmt::format("redis {}:{}: {}: {}", address_.host, address_.port, args[0],
                                           std::string(reply->str, reply->len)));
    }
    return reply;
  }

  // Every member of a set, sorted (SSCAN: a large set does not block the server).
  std::vector<std::string> Members(const std::string& key) {
    std::vector<std::string> out;
    std::string cursor = "0";
    for (int rounds = 0; rounds < 1000000; ++rounds) {
      Reply r = Command({"SSCAN", key, cursor, "COUNT", "1000"});
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        throw std::runtime_error("redis: unexpected SSCAN reply");
      cursor.assign(r->element[0]->str, r->element[0]->len);
      const redisReply* items = r->element[1];
      for (size_t i = 0; i < items->elements; ++i)
        out.emplace_back(items->element[i]->str, items->element[i]->len);
      if (cursor == "0") break;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

 private:
  dispatcher::RedisAddress address_;
  std::unique_ptr<redisContext, ContextDeleter> ctx_;
};

std::string RedisUrl(const Context& ctx) {
  std::string url = ctx.args.Get("--redis-url");
  return url.empty() || url == "true" ? dispatcher::SuppressionRedisUrl(ctx.config, "redis://127.0.0.1:6379")
                                      : url;
}

// The set member for one command-line value; "" and `error` set when it is not valid for the channel.
std::string MemberFor(const Context& ctx, Channel channel, const std::string& value, std::string& error) {
  if (ctx.args.Has("--user")) {
    std::string project = ctx.args.Get("--project");
    if (project.empty() || project == "true") {
      error = "--user needs --project P (external ids are per project)";
      return "";
    }
    if (!validate::IsProjectName(project)) {
      error = fmt::format("--project '{}' is not a project name: {}", project, validate::kProjectNameRule);
      return "";
    }
    return dispatcher::SuppressedUserMember(project, value);
  }
  if (value.rfind("user:", 0) == 0) {
    size_t colon = value.find(':', 5);
    if (colon == std::string::npos) {
      error = fmt::format("'{}': expected user:<project>:<external_id>", value);
    } else if (!validate::IsProjectName(std::string_view(value).substr(5, colon - 5))) {
      error = fmt::format("'{}': the project is not a project name: {}", value, validate::kProjectNameRule);
    }
    return error.empty() ? value : "";
  }
  std::string address = value.rfind("address:", 0) == 0 ? value.substr(8) : value;
  bool valid = true;
  switch (channel) {
    case Channel::kEmail:
      valid = validate::IsEmail(address);
      break;
    case Channel::kSms:
      valid = validate::IsE164(address);
      break;
    case Channel::kPush:
      valid = !address.empty();
      break;
  }
  if (!valid) {
    error = fmt::format("'{}' is not {} (use --user --project P for external ids)", address,
                        channel == Channel::kEmail ? "an email address"
                        : channel == Channel::kSms ? "an E.164 phone number (+15551234567)"
                                                   : "a device token");
    return "";
  }
  return dispatcher::SuppressedAddressMember(channel, address);
}

std::string MemberJson(const std::string& member) {
  std::string out;
  if (member.rfind("user:", 0) == 0) {
    std::string rest = member.substr(5);
    size_t colon = rest.find(':');
    out = "{\"type\":\"user\",\"project\":";
    AppendJsonString(out, rest.substr(0, colon));
    out += ",\"external_id\":";
    AppendJsonString(out, colon == std::string::npos ? "" : rest.substr(colon + 1));
  } else {
    out = "{\"type\":\"address\",\"value\":";
    AppendJsonString(out, member.rfind("address:", 0) == 0 ? member.substr(8) : member);
  }
  out += ",\"member\":";
  AppendJsonString(out, member);
  return out + "}";
}

int Change(Context& ctx, Channel channel, bool add) {
  const auto& pos = ctx.args.positional;
  const char* verb = add ? "add" : "remove";
  if (pos.size() < 3) {
    *ctx.err << fmt::format("pvctl suppress {}: at least one value is required\n\n", verb) << kSuppressUsage;
    return kExitUsage;
  }
  std::vector<std::string> members;
  for (size_t i = 2; i < pos.size(); ++i) {
    std::string error;
    std::string member = MemberFor(ctx, channel, pos[i], error);
    if (member.empty()) {
      *ctx.err << fmt::format("pvctl suppress {}: {}\n", verb, error);
      return kExitUsage;
    }
    members.push_back(member);
  }
  Redis redis(RedisUrl(ctx));
  std::vector<std::string> args = {add ? "SADD" : "SREM", dispatcher::SuppressionKey(channel)};
  args.insert(args.end(), members.begin(), members.end());
  Reply r = redis.Command(args);
  long long changed = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
  long long unchanged = static_cast<long long>(members.size()) - changed;
  if (ctx.json) {
    std::string out =
        fmt::format("{{\"channel\":\"{}\",\"{}\":{},\"{}\":{},\"members\":[", ChannelName(channel),
                    add ? "added" : "removed", changed, add ? "already_present" : "not_present", unchanged);
    for (size_t i = 0; i < members.size(); ++i) out += (i ? "," : "") + MemberJson(members[i]);
    *ctx.out << out << "]}\n";
  } else if (add) {
    *ctx.out << fmt::format("{}: suppressed {} new, {} already suppressed.\n", ChannelName(channel), changed,
                            unchanged);
  } else {
    *ctx.out << fmt::format("{}: removed {}, {} were not suppressed.\n", ChannelName(channel), changed,
                            unchanged);
  }
  return kExitOk;
}

int List(Context& ctx, const std::vector<Channel>& channels) {
  Redis redis(RedisUrl(ctx));
  std::string json = "[";
  for (size_t c = 0; c < channels.size(); ++c) {
    auto members = redis.Members(dispatcher::SuppressionKey(channels[c]));
    if (ctx.json) {
      json += fmt::format("{}{{\"channel\":\"{}\",\"key\":\"{}\",\"members\":[", c ? "," : "",
                          ChannelName(channels[c]), dispatcher::SuppressionKey(channels[c]));
      for (size_t i = 0; i < members.size(); ++i) json += (i ? "," : "") + MemberJson(members[i]);
      json += "]}";
      continue;
    }
    for (const auto& m : members) {
      if (m.rfind("user:", 0) == 0) {
        *ctx.out << fmt::format("{:<6} user     {}\n", ChannelName(channels[c]), m.substr(5));
      } else {
        *ctx.out << fmt::format("{:<6} address  {}\n", ChannelName(channels[c]),
                                m.rfind("address:", 0) == 0 ? m.substr(8) : m);
      }
    }
  }
  if (ctx.json) *ctx.out << json << "]\n";
  return kExitOk;
}

}  // namespace

int SuppressCommand(Context& ctx) {
  if (ctx.args.Has("--help") || ctx.args.Has("-h")) {
    *ctx.out << kSuppressUsage;
    return kExitOk;
  }
  const auto& pos = ctx.args.positional;
  std::string sub = pos.size() > 1 ? pos[1] : "";
  if (sub != "add" && sub != "remove" && sub != "list") {
    *ctx.err << (sub.empty() ? "pvctl suppress: a subcommand is required\n\n"
                             : fmt::format("pvctl suppress: unknown subcommand '{}'\n\n", sub))
             << kSuppressUsage;
    return kExitUsage;
  }
  std::vector<Channel> channels;
  if (ctx.args.Has("--channel")) {
    Channel c{};
    if (!ParseChannel(ctx.args.Get("--channel"), c)) {
      *ctx.err << fmt::format("pvctl suppress: --channel '{}': expected email, text or push\n\n",
                              ctx.args.Get("--channel"))
               << kSuppressUsage;
      return kExitUsage;
    }
    channels.push_back(c);
  } else if (sub == "list") {
    channels = {Channel::kEmail, Channel::kSms, Channel::kPush};
  } else {
    *ctx.err << fmt::format("pvctl suppress {}: --channel email|text|push is required\n\n", sub)
             << kSuppressUsage;
    return kExitUsage;
  }
  if (sub == "list") {
    if (pos.size() > 2) {
      *ctx.err << fmt::format("pvctl suppress list: unexpected argument '{}'\n\n", pos[2]) << kSuppressUsage;
      return kExitUsage;
    }
    return List(ctx, channels);
  }
  return Change(ctx, channels[0], sub == "add");
}

}  // namespace pv::pvctl
