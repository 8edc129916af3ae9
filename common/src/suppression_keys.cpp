#include "pv/suppression_keys.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "pv/config.hpp"
#include "pv/json.hpp"

namespace pv {

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
  std::string member;
  member.reserve(6 + project.size() + external_id.size());
  member.append("user:").append(project).append(1, ':').append(external_id);
  return member;
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
  AppendOptionalField(out, "source", source);
  out += '}';
  return out;
}

SuppressionWhy ParseSuppressionWhy(std::string_view json) {
  SuppressionWhy why;
  rapidjson::Document doc;
  ParseRecord(doc, json);
  if (!doc.HasParseError() && doc.IsObject()) {
    why.reason = StringMember(doc, "reason");
    why.at = StringMember(doc, "at");
    why.source = StringMember(doc, "source");
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

}  // namespace pv
