// pvctl status: what became of a trigger, from the status store the dispatcher's status feeder fills
// from pv.events (pv/status_store.hpp), read as ingest's GET /api/client/triggers/:triggerId reads
// it. The operator's view: any project's trigger, found by its trigger id or by one of its send ids.
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <ostream>

#include "pv/command_line.hpp"
#include "pv/json.hpp"
#include "pv/redis_client.hpp"
#include "pv/status_store.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kStatusFooter =
    R"(ID is a trigger id (the X-Trigger-Id of the 204) or a send id (pv.events' send_id). Prints the
trigger's sends and every status so far with its time and details (provider, message id, due_at,
suppression reason, error, ...), oldest first; with --json the body ingest's
GET /api/client/triggers/:triggerId answers (docs/api.md "Trigger status").

A send's statuses are kept status.ttl_seconds (7 days) after its dispatcher's last event. They come
from pv.events through the dispatcher's status feeder (group pv-status), so the newest one may be a
moment late.

Redis: status.redis_url from the config, else redis.url (the marks Redis), or --redis-url.
Storage: HASH pv:status:s:<send_id> (a send's statuses, the id pv derives from the trigger's and the
channel); HASH pv:status:<trigger_id> and STRING pv:status:send:<send_id> -> trigger id (events
without a channel of pv's, and statuses written before 2026-12-06).
Global options (before or after the command): --config, --json, --redis-url, --timeout.
Exit codes: 0 found, 1 Redis failed, 2 usage (an ID that cannot be an id), 3 not found.)";

std::string RedisUrl(const Context& ctx) {
  if (!ctx.redis_url.empty()) return ctx.redis_url;
  std::string url = StatusOptions::FromConfig(ctx.config).redis_url;
  return url.empty() ? "redis://127.0.0.1:6379" : url;
}

// Commands in one round trip; throws with the store's error when Redis does not answer or refuses one.
std::vector<RedisReply> AskAll(RedisClient& redis, const std::vector<std::vector<std::string>>& commands) {
  auto replies = redis.Pipeline(commands);
  if (!replies) throw std::runtime_error(fmt::format("status store: {}", redis.last_error()));
  for (const RedisReply& r : *replies) {
    if (r.IsError()) throw std::runtime_error(fmt::format("status store: {}", r.str));
  }
  return std::move(*replies);
}

RedisReply Ask(RedisClient& redis, std::vector<std::string> command) {
  return std::move(AskAll(redis, {std::move(command)}).front());
}

void PrintText(std::ostream& out, const std::string& trigger_id, const TriggerStatus& status) {
  out << fmt::format("trigger {}  campaign {}  project {}\n", trigger_id, status.campaign_id,
                     status.project.empty() ? "-" : status.project);
  rapidjson::Document doc;
  doc.Parse(status.json.data(), status.json.size());
  for (const auto& send : doc["sends"].GetArray()) {
    out << fmt::format("send {} ({})\n", AsStringView(send["send_id"]), AsStringView(send["channel"]));
    for (const auto& s : send["statuses"].GetArray()) {
      std::string details;
      for (const auto& m : s.GetObject()) {
        std::string_view name(m.name.GetString(), m.name.GetStringLength());
        if (name == "status" || name == "at") continue;
        details += fmt::format(" {}={}", name,
                               m.value.IsString() ? std::string(AsStringView(m.value)) : ToJson(m.value));
      }
      out << fmt::format("  {}  {:<18}{}\n", AsStringView(s["at"]), AsStringView(s["status"]), details);
    }
  }
}

int Show(Context& ctx, const std::string& id) {
  if (!ValidStatusId(id)) {
    return UsageError(
        ctx, fmt::format("'{}' is not a trigger or send id (1 to 64 of A-Z a-z 0-9 - _)", id.substr(0, 80)));
  }
  RedisClient::Options options;
  options.url = RedisUrl(ctx);
  options.timeout = std::chrono::milliseconds(static_cast<long long>(ctx.timeout_seconds * 1000));
  RedisClient redis(options);
  // A trigger id: its hashes (its sends' on each channel, its own). Else a send id: the send's hash,
  // which names its trigger, then all of that trigger's hashes (its other sends too); else the
  // index of the sends of hashes written before 2026-12-06.
  auto of_trigger = [&](const std::string& trigger_id) {
    std::vector<std::vector<std::string>> reads;
    for (std::string& key : StatusKeysOfTrigger(trigger_id)) reads.push_back({"HGETALL", std::move(key)});
    return RenderTriggerStatus(trigger_id, AskAll(redis, reads));
  };
  TriggerStatus status = of_trigger(id);
  if (!status.found) {
    RedisReply send = Ask(redis, {"HGETALL", StatusKeyOfSend(id)});
    status = RenderTriggerStatus("", send);
    if (status.found && ValidStatusId(status.trigger_id)) status = of_trigger(status.trigger_id);
  }
  if (!status.found) {
    RedisReply send = Ask(redis, {"GET", StatusSendKey(id)});
    if (send.type == RedisReply::Type::kString && ValidStatusId(send.str)) status = of_trigger(send.str);
  }
  if (!status.found) {
    return Fail(ctx,
                fmt::format("no statuses for {} (not a trigger or send id pv has seen, or older than "
                            "status.ttl_seconds)",
                            id),
                kExitNotFound);
  }
  if (ctx.json) {
    *ctx.out << status.json << "\n";
  } else {
    PrintText(*ctx.out, status.trigger_id.empty() ? "-" : status.trigger_id, status);
  }
  return kExitOk;
}

}  // namespace

void AddStatusCommand(CLI::App& app, Context& ctx) {
  auto id = std::make_shared<std::string>();
  CLI::App* status =
      app.add_subcommand("status", "a trigger's sends and every status so far (by trigger or send id)");
  status->add_option("ID", *id, "a trigger id or a send id")->required();
  status->footer(kStatusFooter);
  OnRun(status, ctx, [&ctx, id] { return Show(ctx, *id); });
}

}  // namespace pv::pvctl
