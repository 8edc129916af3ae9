// pvctl suppress: the users and addresses a channel must not reach, in the Redis sets the dispatcher
// checks before producing a send. The key layout is the dispatcher's own (SuppressionKey and the
// member helpers of pv/suppression_keys.hpp), so the two cannot drift apart:
//   pv:suppress:<email|text|push>  SET of  user:<project>:<external_id>  and  address:<address>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <istream>
#include <memory>
#include <ostream>
#include <vector>

#include "pv/command_line.hpp"
#include "pv/json.hpp"
#include "pv/redis_client.hpp"
#include "pv/suppression_keys.hpp"
#include "pv/validate.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kSuppressFooter =
    R"(A suppressed address (an email address, an E.164 phone number, a device token) gets no message of
that channel from any project; a suppressed user (--user: an external id of project P) gets none of
that channel from P. The dispatcher checks both before producing each send, and marks the send
`suppressed` in pv.events instead. Members may also be given raw: address:bob@example.com,
user:demo:u-123. Email addresses are stored in lower case.

VALUE '-' reads values from standard input, one per line (surrounding blanks trimmed, blank lines
ignored), at most 100000 lines of at most 1024 bytes each; every value is checked before anything
is written, so a bad one changes nothing. A value starting with '-' goes after '--'.

`list` shows each one's reason (manual, bounce, complaint, unsubscribe, stop, unregistered; unknown
for one added before reasons were kept) and since when; `add` records reason manual.

Redis: suppression.redis_url from the config, else redis.url (or --redis-url
redis://[:password@]host[:port][/db]): the dispatcher's suppression store.
Storage: SET pv:suppress:<channel>, members address:<address> and user:<project>:<external_id>;
HASH pv:suppress:<channel>:why, member -> {"reason","at","source"}.
Global options (before or after the command): --config, --json, --redis-url.
Exit codes: 0 ok, 1 Redis failed, 2 usage (a bad value included).)";

// The most lines `-` reads from standard input, and the longest line.
constexpr size_t kMaxStdinLines = 100000;
constexpr size_t kMaxStdinLineBytes = 1024;
// Members per SADD/SREM: a long list is sent in parts, so no single command blocks Redis for long.
constexpr size_t kMembersPerCommand = 1000;

// The command line of suppress add|remove|list (AddSuppressCommands).
struct SuppressOptions {
  std::string channel;  // "": list every channel
  bool user = false;    // --user: values are external ids of --project
  std::string project;
  std::vector<std::string> values;
};

// The suppression store, one command at a time; every failure (a bad URL included) throws with the
// store's address, and pvctl exits 1.
class Redis {
 public:
  explicit Redis(const std::string& url) : redis_(Options(url)) {}

  RedisReply Command(std::vector<std::string> args) {
    const RedisEndpoint& at = redis_.endpoint();
    auto replies = redis_.Pipeline({args});
    if (!replies)
      throw std::runtime_error(fmt::format("redis {}:{}: {}", at.host, at.port, redis_.last_error()));
    if (replies->front().IsError()) {
      throw std::runtime_error(
          fmt::format("redis {}:{}: {}: {}", at.host, at.port, args[0], replies->front().str));
    }
    return std::move(replies->front());
  }

  // Every member of a set, sorted (SSCAN: a large set does not block the server).
  std::vector<std::string> Members(const std::string& key) {
    std::vector<std::string> out;
    std::string cursor = "0";
    for (int rounds = 0; rounds < 1000000; ++rounds) {
      RedisReply r = Command({"SSCAN", key, cursor, "COUNT", "1000"});
      if (r.type != RedisReply::Type::kArray || r.elements.size() != 2)
        throw std::runtime_error("redis: unexpected SSCAN reply");
      cursor = r.elements[0].str;
      for (auto& item : r.elements[1].elements) out.push_back(std::move(item.str));
      if (cursor == "0") break;
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  // The recorded reason of each member (HMGET in slices of 1000), "unknown" where none is.
  std::vector<SuppressionWhy> Reasons(const std::string& key, const std::vector<std::string>& members) {
    std::vector<SuppressionWhy> out;
    out.reserve(members.size());
    for (size_t start = 0; start < members.size(); start += 1000) {
      std::vector<std::string> args = {"HMGET", key};
      size_t end = std::min(members.size(), start + 1000);
      args.insert(args.end(), members.begin() + static_cast<std::ptrdiff_t>(start),
                  members.begin() + static_cast<std::ptrdiff_t>(end));
      RedisReply r = Command(std::move(args));
      if (r.type != RedisReply::Type::kArray || r.elements.size() != end - start)
        throw std::runtime_error("redis: unexpected HMGET reply");
      for (const auto& e : r.elements) {
        out.push_back(ParseSuppressionWhy(e.type == RedisReply::Type::kString ? std::string_view(e.str)
                                                                              : std::string_view()));
      }
    }
    return out;
  }

 private:
  static RedisClient::Options Options(const std::string& url) {
    RedisUrl parsed;
    std::string error;
    if (!ParseRedisUrl(url, parsed, error)) throw std::runtime_error("suppression store URL: " + error);
    RedisClient::Options options;
    options.url = url;
    options.timeout = std::chrono::seconds(5);
    return options;
  }

  RedisClient redis_;
};

std::string RedisUrl(const Context& ctx) {
  return ctx.redis_url.empty() ? SuppressionRedisUrl(ctx.config, "redis://127.0.0.1:6379") : ctx.redis_url;
}

// The address of an address member (or of a raw value).
std::string AddressOf(const std::string& member) {
  return member.rfind("address:", 0) == 0 ? member.substr(8) : member;
}

// The set member for one command-line value; "" and `error` set when it is not valid for the channel.
std::string MemberFor(const SuppressOptions& options, Channel channel, const std::string& value,
                      std::string& error) {
  if (options.user) {
    const std::string& project = options.project;
    if (project.empty()) {
      error = "--user needs --project P (external ids are per project)";
      return "";
    }
    if (!validate::IsProjectName(project)) {
      error = fmt::format("--project '{}' is not a project name: {}", project, validate::kProjectNameRule);
      return "";
    }
    return SuppressedUserMember(project, value);
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
  std::string address = AddressOf(value);
  bool valid = channel == Channel::kEmail ? validate::IsEmail(address)
               : channel == Channel::kSms ? validate::IsE164(address)
                                          : !address.empty();  // push: a device token
  if (!valid) {
    error = fmt::format("'{}' is not {} (use --user --project P for external ids)", address,
                        channel == Channel::kEmail ? "an email address"
                        : channel == Channel::kSms ? "an E.164 phone number (+15551234567)"
                                                   : "a device token");
    return "";
  }
  return SuppressedAddressMember(channel, address);
}

std::string MemberJson(const std::string& member, const SuppressionWhy* why = nullptr) {
  std::string out;
  if (member.rfind("user:", 0) == 0) {
    std::string rest = member.substr(5);
    size_t colon = rest.find(':');
    out = fmt::format(R"({{"type":"user","project":{},"external_id":{})", JsonString(rest.substr(0, colon)),
                      JsonString(colon == std::string::npos ? "" : rest.substr(colon + 1)));
  } else {
    out = R"({"type":"address","value":)" + JsonString(AddressOf(member));
  }
  out += ",\"member\":" + JsonString(member);
  if (why != nullptr) {
    out += ",\"reason\":" + JsonString(why->reason);
    AppendOptionalField(out, "at", why->at);
    AppendOptionalField(out, "source", why->source);
  }
  return out + "}";
}

// The values of `-` (standard input): one per line, trimmed, blank lines skipped. "" and `error` set
// beyond the limits.
std::vector<std::string> ReadValues(std::istream& in, std::string& error) {
  std::vector<std::string> values;
  std::streambuf* buffer = in.rdbuf();
  std::string line;
  size_t lines = 0;
  bool more = buffer != nullptr;
  while (more) {
    line.clear();
    int c = 0;
    // One line, read a byte at a time so that an endless line stops at the limit.
    while ((c = buffer->sbumpc()) != std::char_traits<char>::eof() && c != '\n') {
      if (line.size() == kMaxStdinLineBytes) {
        error = fmt::format("standard input: line {} is longer than {} bytes", lines + 1, kMaxStdinLineBytes);
        return {};
      }
      line += static_cast<char>(c);
    }
    more = c != std::char_traits<char>::eof();
    if (!more && line.empty()) break;  // the end, after a final newline or of an empty input
    if (++lines > kMaxStdinLines) {
      error = fmt::format("standard input: more than {} lines", kMaxStdinLines);
      return {};
    }
    size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    size_t last = line.find_last_not_of(" \t\r");
    values.push_back(line.substr(first, last - first + 1));
  }
  return values;
}

int Change(Context& ctx, const SuppressOptions& options, Channel channel, bool add) {
  std::vector<std::string> values;
  bool read_stdin = false;
  for (const auto& value : options.values) {
    if (value != "-") {
      values.push_back(value);
      continue;
    }
    if (read_stdin) return UsageError(ctx, "'-' (standard input) can be given once");
    read_stdin = true;
    std::string error;
    std::vector<std::string> more = ReadValues(*ctx.in, error);
    if (!error.empty()) return UsageError(ctx, error + "; nothing changed");
    values.insert(values.end(), more.begin(), more.end());
  }
  if (values.empty()) return UsageError(ctx, "no values (standard input had none)");
  std::vector<std::string> members;
  for (const auto& value : values) {
    std::string error;
    std::string member = MemberFor(options, channel, value, error);
    if (member.empty()) return UsageError(ctx, error + "; nothing changed");
    members.push_back(member);
  }
  Redis redis(RedisUrl(ctx));
  long long changed = 0;
  if (add) {
    // Each with its reason and time (pv:suppress:<channel>:why, atomically with the set); an
    // existing reason stays.
    std::string why =
        SuppressionWhyJson("manual", FormatTimestamp(std::chrono::system_clock::now()), "pvctl");
    for (const auto& member : members) {
      RedisReply r = redis.Command(SuppressCommand(channel, member, why));
      changed += r.type == RedisReply::Type::kInteger ? r.integer : 0;
    }
  }
  for (size_t from = 0; !add && from < members.size(); from += kMembersPerCommand) {
    auto slice = [&](const char* command, std::string key) {
      std::vector<std::string> args = {command, std::move(key)};
      size_t to = std::min(members.size(), from + kMembersPerCommand);
      args.insert(args.end(), members.begin() + static_cast<std::ptrdiff_t>(from),
                  members.begin() + static_cast<std::ptrdiff_t>(to));
      return redis.Command(std::move(args));
    };
    RedisReply r = slice("SREM", SuppressionKey(channel));
    changed += r.type == RedisReply::Type::kInteger ? r.integer : 0;
    slice("HDEL", SuppressionWhyKey(channel));
  }
  long long unchanged = static_cast<long long>(members.size()) - changed;
  std::string_view name = ChannelName(channel);
  *ctx.out << (ctx.json ? fmt::format("{{\"channel\":\"{}\",\"{}\":{},\"{}\":{},\"members\":{}}}\n", name,
                                      add ? "added" : "removed", changed,
                                      add ? "already_present" : "not_present", unchanged,
                                      JsonArray(members, [](const std::string& m) { return MemberJson(m); }))
               : add
                   ? fmt::format("{}: suppressed {} new, {} already suppressed.\n", name, changed, unchanged)
                   : fmt::format("{}: removed {}, {} were not suppressed.\n", name, changed, unchanged));
  return kExitOk;
}

int List(Context& ctx, const std::vector<Channel>& channels) {
  Redis redis(RedisUrl(ctx));
  std::string json = "[";
  for (size_t c = 0; c < channels.size(); ++c) {
    auto members = redis.Members(SuppressionKey(channels[c]));
    std::vector<SuppressionWhy> why = redis.Reasons(SuppressionWhyKey(channels[c]), members);
    if (ctx.json) {
      json += fmt::format("{}{{\"channel\":\"{}\",\"key\":\"{}\",\"members\":[", c ? "," : "",
                          ChannelName(channels[c]), SuppressionKey(channels[c]));
      for (size_t i = 0; i < members.size(); ++i) json += (i ? "," : "") + MemberJson(members[i], &why[i]);
      json += "]}";
      continue;
    }
    for (size_t i = 0; i < members.size(); ++i) {
      bool user = members[i].rfind("user:", 0) == 0;
      *ctx.out << fmt::format("{:<6} {:<8} {:<40} {:<12} {}\n", ChannelName(channels[c]),
                              user ? "user" : "address", user ? members[i].substr(5) : AddressOf(members[i]),
                              why[i].reason, why[i].at.empty() ? "-" : why[i].at);
    }
  }
  if (ctx.json) *ctx.out << json << "]\n";
  return kExitOk;
}

}  // namespace

void AddSuppressCommands(CLI::App& app, Context& ctx) {
  CLI::App* suppress = app.add_subcommand(
      "suppress", "addresses and users a channel must not reach (Redis): add, remove, list");
  suppress->footer(kSuppressFooter);  // its subcommands inherit it
  suppress->require_subcommand(1);
  // --channel: the names ParseChannel takes.
  CLI::Validator channel_name(
      [](std::string& text) -> std::string {
        Channel c{};
        return ParseChannel(text, c) ? "" : fmt::format("'{}': expected email, text or push", text);
      },
      "email|text|push");

  for (bool add : {true, false}) {
    auto options = std::make_shared<SuppressOptions>();
    CLI::App* change = suppress->add_subcommand(
        add ? "add" : "remove", add ? "suppress addresses or users" : "stop suppressing addresses or users");
    change
        ->add_option(
            "--channel", options->channel,
            add ? "the channel they must not be reached on" : "the channel they may be reached on again")
        ->type_name("C")
        ->required()
        ->check(channel_name);
    CLI::Option* user =
        change->add_flag("--user", options->user, "the values are external ids of --project's users");
    change->add_option("--project", options->project, "the project of --user's external ids")
        ->type_name("P")
        ->needs(user);
    change
        ->add_option("VALUE", options->values,
                     "addresses (or external ids with --user, or raw members); '-': read them from "
                     "standard input, one per line")
        ->required();
    OnRun(change, ctx, [&ctx, options, add] {
      Channel channel{};
      ParseChannel(options->channel, channel);  // checked by the command line
      return Change(ctx, *options, channel, add);
    });
  }

  auto list_options = std::make_shared<SuppressOptions>();
  CLI::App* list = suppress->add_subcommand("list", "the suppressed addresses and users, per channel");
  list->add_option("--channel", list_options->channel, "only this channel (default: all)")
      ->type_name("C")
      ->check(channel_name);
  OnRun(list, ctx, [&ctx, list_options] {
    std::vector<Channel> channels = {Channel::kEmail, Channel::kSms, Channel::kPush};
    if (!list_options->channel.empty()) {
      channels.resize(1);
      ParseChannel(list_options->channel, channels[0]);  // checked by the command line
    }
    return List(ctx, channels);
  });
}

}  // namespace pv::pvctl
