// pvctl campaigns (campaigns.hpp): the campaigns topic from the operator's side. Reading the topic
// goes through ReadToEnd (kafka_client.hpp) as `pvctl keys` does; every change waits for the
// broker's acknowledgement before it is called done.
#include "campaigns.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>

#include "kafka_client.hpp"
#include "pv/campaign_records.hpp"
#include "pv/command_line.hpp"
#include "pv/dispatcher/renderer.hpp"
#include "pv/json.hpp"
#include "pv/produce_errors.hpp"
#include "pv/topics.hpp"
#include "pv/workers/providers/factory.hpp"

namespace pv::pvctl {
namespace {

namespace fs = std::filesystem;

constexpr int kDiffSame = 0;
constexpr int kDiffDifferent = 1;
constexpr int kDiffTrouble = 2;

constexpr const char* kCampaignsFooter =
    R"(Campaigns are distributed like keys: each one, with its template files inlined, is a record of the
compacted topic campaigns_topic (default pv.campaigns) that every ingest and dispatcher follows and
merges with its own catalog_dir; the newer version of a campaign wins (a file's version is its
modification time, a record's the time it was applied), so an applied edit reaches every replica
within seconds.

apply validates everything first (the catalog's rules, every template compiled, provider and
fallback_provider defined under providers: for the campaign's channel, send windows, the record
within message.max.bytes) and publishes nothing unless all is valid; it publishes only the campaigns
that differ from the topic, and exits 0 only once the broker acknowledged each one. It never removes a
campaign: diff lists those on the topic only, delete removes one.
Workflow: edit the files, `pvctl campaigns diff DIR`, `pvctl campaigns apply DIR` (docs/operations.md).
Global options (before or after the command): --config, --json, --brokers, --timeout.
Exit codes: 0 ok, 1 failed (invalid campaigns: nothing published; the topic could not be read or
written), 2 usage, 3 no such campaign; diff: 0 no differences, 1 differences, 2 trouble.)";

std::string VersionTime(std::int64_t ms) {
  return FormatTimestamp(FromUnixMillis(ms));
}

std::string JsonList(const std::vector<std::string>& items) {
  return JsonArray(items, [](const std::string& item) { return JsonString(item); });
}

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  return fmt::format("{}", fmt::join(items, separator));
}

std::string RemovedJson(const std::string& id, std::int64_t version) {
  return fmt::format(R"({{"id":{},"removed":true,"updated_at_ms":{}}})", JsonString(id), version) + "\n";
}

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) return "unknown-host";
  return host;
}

std::string Status(const Campaign& c) {
  if (c.deleted) return "deleted";
  return c.enabled ? "enabled" : "disabled";
}

// Whether the topic can be used; if not, says why on stderr after `head`.
bool TopicUsable(Context& ctx, const CampaignsOptions& o, std::string_view head) {
  if (o.topic.empty()) {
    *ctx.err << head
             << ": campaigns_topic is empty: this deployment's replicas read catalog_dir only (its "
                "default is pv.campaigns)\n";
  } else if (!o.kafka) {
    *ctx.err << head
             << ": kafka.brokers is not set (set it in the config or PV_KAFKA_BROKERS, or pass --brokers)\n";
  }
  return !o.topic.empty() && o.kafka;
}

// The newest state of every campaign id on the topic, and the newest record's value as read.
struct TopicView {
  std::map<std::string, TopicCampaign> states;
  std::map<std::string, std::string> values;  // empty for a removal
  std::vector<TopicCampaign> All() const {
    std::vector<TopicCampaign> out;
    for (const auto& [id, state] : states) out.push_back(state);
    return out;
  }
  const TopicCampaign* Find(const std::string& id) const {
    auto it = states.find(id);
    return it == states.end() ? nullptr : &it->second;
  }
  // The campaign the topic serves for `id` (not removed), or nullptr.
  const Campaign* Live(const std::string& id) const {
    const TopicCampaign* s = Find(id);
    return s == nullptr ? nullptr : s->campaign.get();
  }
};

// Throws KafkaError when the topic cannot be read.
TopicView ReadTopic(Context& ctx, const CampaignsOptions& o) {
  TopicView view;
  auto on_record = [&](const rd_kafka_message_t* m) {
    TopicCampaign state;
    std::string error;
    if (!ParseCampaignMessage(m, o.topic, state, error)) {
      *ctx.err << fmt::format("pvctl campaigns: note: {} offset {} ignored (replicas ignore it too): {}\n",
                              o.topic, m->offset, error);
      return;
    }
    auto it = view.states.find(state.id);
    if (it != view.states.end() && !TopicCampaignSupersedes(state, it->second)) return;
    view.values[state.id] = state.campaign ? std::string(kafka::Payload(m)) : std::string();
    view.states[state.id] = std::move(state);
  };
  try {
    ReadToEnd(*o.kafka, o.topic, "pvctl-campaigns", o.timeout, on_record);
  } catch (const kafka::KafkaError& e) {
    std::string message = e.what();
    if (message.find("does not exist") == std::string::npos) throw;
    throw kafka::KafkaError(
        message + " (create it with `pvctl topics create`; replicas serve their catalog_dir meanwhile)");
  }
  return view;
}

// ReadTopic into `topic`, or false after saying why on stderr: "<head>: <error>", or with `name_topic`
// "<head>: cannot read <topic>: <error>".
bool ReadTopicOrSay(Context& ctx, const CampaignsOptions& o, std::string_view head, bool name_topic,
                    TopicView& topic) {
  try {
    topic = ReadTopic(ctx, o);
    return true;
  } catch (const std::exception& e) {
    *ctx.err << (name_topic ? fmt::format("{}: cannot read {}: {}\n", head, o.topic, e.what())
                            : fmt::format("{}: {}\n", head, e.what()));
    return false;
  }
}

// This machine's catalog_dir; empty when it is not a directory. Throws CatalogError when it is broken.
std::shared_ptr<const Catalog> LocalCatalog(const CampaignsOptions& o) {
  std::error_code ec;
  if (o.catalog_dir.empty() || !fs::is_directory(o.catalog_dir, ec)) return Catalog::Of(o.catalog_dir, {});
  return Catalog::LoadDirectory(o.catalog_dir);
}

std::vector<const Campaign*> SortedById(const Catalog& catalog, const CampaignsFilter& filter) {
  std::vector<const Campaign*> out;
  for (const auto& [id, c] : catalog.campaigns()) {
    if (filter.project.empty() || c.project == filter.project) out.push_back(&c);
  }
  std::sort(out.begin(), out.end(), [](const Campaign* a, const Campaign* b) { return a->id < b->id; });
  return out;
}

// Publishes one record (or a tombstone: `value` nullopt, versioned by the header) and waits for the
// acknowledgement. Returns the error, empty on success.
std::string Publish(kafka::Producer& producer, const CampaignsOptions& o, const std::string& id,
                    const std::optional<std::string>& value, std::int64_t version,
                    std::shared_ptr<kafka::DeliveryGroup>& group) {
  group = std::make_shared<kafka::DeliveryGroup>(1);
  rd_kafka_resp_err_t err =
      ProduceState(producer, o.topic, id, value, kCampaignUpdatedAtHeader, version, group);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  group.reset();
  return rd_kafka_err2str(err);
}

std::string AwaitAck(const std::shared_ptr<kafka::DeliveryGroup>& group,
                     std::chrono::steady_clock::time_point deadline) {
  if (!group->Wait(deadline)) return "no acknowledgement from the broker in time";
  rd_kafka_resp_err_t err = group->first_error();
  return err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string() : rd_kafka_err2str(err);
}

kafka::ProducerOptions ProducerFor(const CampaignsOptions& o) {
  kafka::ProducerOptions options;
  options.client_id = "pvctl-campaigns";
  options.defaults = {{"message.timeout.ms", std::to_string(o.timeout.count())}};
  return options;
}

void PrintProblems(Context& ctx, const std::string& head, const std::vector<std::string>& problems) {
  *ctx.err << fmt::format("{}: {} problem(s):\n", head, problems.size());
  for (const auto& p : problems) {
    // A CatalogError already lists its own problems, one per line.
    std::string indented = p;
    for (size_t at = indented.find('\n'); at != std::string::npos; at = indented.find('\n', at + 3)) {
      indented.replace(at, 1, "\n  ");
    }
    *ctx.err << "  " << indented << "\n";
  }
}

// Every campaign under `paths`, sorted by id, checked by the catalog's rules (its files read); what is
// wrong goes to `problems`.
std::vector<Campaign> LoadCampaigns(const std::vector<std::string>& paths,
                                    std::vector<std::string>& problems) {
  std::vector<Campaign> campaigns;
  std::map<std::string, std::string> seen;  // id -> file
  for (const auto& path : paths) {
    try {
      auto catalog = Catalog::LoadPath(path);  // held: the loop reads into it
      for (const auto& [id, c] : catalog->campaigns()) {
        if (auto [it, inserted] = seen.emplace(id, c.source_file); !inserted) {
          problems.push_back(
              fmt::format("{}: id: '{}' is also defined in {}", c.source_file, id, it->second));
          continue;
        }
        campaigns.push_back(c);
      }
    } catch (const CatalogError& e) {
      problems.emplace_back(e.what());
    }
  }
  std::sort(campaigns.begin(), campaigns.end(),
            [](const Campaign& a, const Campaign& b) { return a.id < b.id; });
  return campaigns;
}

// One campaign of `campaigns apply`: its record, what changes on the topic, how publishing it went.
struct Planned {
  const Campaign* campaign = nullptr;
  std::string status;  // added | changed | unchanged
  std::vector<std::string> changes;
  std::int64_t version = 0;
  std::string value;
  std::string error;  // publishing failed
  std::shared_ptr<kafka::DeliveryGroup> group;
};

// The record of `c`, newer than the topic's version of it; one the producer or the replicas would
// refuse goes to `problems`.
Planned Plan(const Campaign& c, const TopicView& topic, const CampaignsOptions& o, std::int64_t now,
             const std::string& host, size_t max_bytes, std::vector<std::string>& problems) {
  Planned p;
  p.campaign = &c;
  const TopicCampaign* state = topic.Find(c.id);
  if (const Campaign* live = topic.Live(c.id); live != nullptr) {
    p.changes = CampaignDifferences(*live, c);
    p.status = p.changes.empty() ? "unchanged" : "changed";
  } else {
    p.status = "added";
  }
  p.version = NextCampaignVersion(state != nullptr ? state->updated_at_ms : 0, now);
  std::error_code ec;
  fs::path absolute = fs::absolute(c.source_file, ec);
  p.value = CampaignRecord(c, p.version, host + ":" + (ec ? c.source_file : absolute.string()));
  Campaign back;
  std::string error;
  if (size_t bytes = kafka::RecordBytes(c.id, p.value, {}); bytes > max_bytes) {
    problems.push_back(fmt::format(
        "{}: campaign {} is {} bytes as one record, more than the {} bytes the producer sends "
        "(message.max.bytes; raise kafka.producer_properties.message.max.bytes only together with the "
        "broker's and the topic's max.message.bytes) - make its templates smaller",
        c.source_file, c.id, bytes, max_bytes));
  } else if (!ParseCampaignRecord(p.value, o.topic, back, error)) {
    problems.push_back(
        fmt::format("{}: campaign {}: replicas would refuse its record: {}", c.source_file, c.id, error));
  }
  return p;
}

struct ApplyCounts {
  int published = 0, unchanged = 0, failed = 0;
};

// What apply did, or would do with --dry-run: a line per campaign and a summary, or one JSON object.
void PrintApplied(Context& ctx, const CampaignsOptions& o, bool dry_run, const std::vector<Planned>& plan,
                  const ApplyCounts& n) {
  if (o.json) {
    std::string campaigns = JsonArray(plan, [&](const Planned& p) {
      bool done = p.status != "unchanged" && p.error.empty() && !dry_run;
      std::string out =
          fmt::format(R"({{"id":{},"status":"{}","changes":{},"updated_at_ms":{},"published":{})",
                      JsonString(p.campaign->id), p.status, JsonList(p.changes), p.version, done);
      AppendOptionalField(out, "error", p.error);
      return out + "}";
    });
    *ctx.out << fmt::format(
                    R"({{"topic":{},"dry_run":{},"campaigns":{},"published":{},"unchanged":{},"failed":{}}})",
                    JsonString(o.topic), dry_run, campaigns, n.published, n.unchanged, n.failed)
             << "\n";
    return;
  }
  for (const auto& p : plan) {
    std::string what = p.status == "changed" ? "changed: " + Join(p.changes, ", ") : p.status;
    if (!p.error.empty()) what += " - NOT published: " + p.error;
    *ctx.out << fmt::format("{:<12} {}\n", p.campaign->id, what);
  }
  if (dry_run) {
    *ctx.out << fmt::format(
        "dry run: {} campaign(s) would be published to {}, {} unchanged; nothing published\n",
        plan.size() - static_cast<size_t>(n.unchanged), o.topic, n.unchanged);
  } else if (n.failed == 0 && n.published == 0) {
    *ctx.out << fmt::format("nothing to publish: {} campaign(s) the same as on {}\n", n.unchanged, o.topic);
  } else if (n.failed == 0) {
    *ctx.out << fmt::format(
        "published {} campaign(s) to {} ({} unchanged); every ingest and dispatcher serves them within "
        "seconds\n",
        n.published, o.topic, n.unchanged);
  }
}

}  // namespace

CampaignsOptions CampaignsOptionsFromConfig(const Config& config) {
  CampaignsOptions o;
  o.topic = config.GetString("campaigns_topic", std::string(topics::kCampaigns));
  o.catalog_dir = config.GetString("catalog_dir", "catalog");
  kafka::Settings settings = kafka::LoadSettings(config);
  if (!settings.brokers.empty()) o.kafka = std::move(settings);
  return o;
}

std::vector<std::string> ProviderProblems(const Config& config, const Campaign& campaign) {
  std::vector<std::string> defined;
  YAML::Node section = config.Node("providers");
  if (section && section.IsMap()) {
    for (const auto& entry : section) defined.push_back(entry.first.as<std::string>());
  }
  // Every worker has `log` unless the config defines a provider of that name (factory.hpp).
  if (std::find(defined.begin(), defined.end(), "log") == defined.end()) defined.emplace_back("log");
  std::vector<std::string> out;
  auto check = [&](const char* field, const std::string& name) {
    if (name.empty()) return;
    if (std::find(defined.begin(), defined.end(), name) == defined.end()) {
      out.push_back(
          fmt::format("{}: provider '{}' is not defined under providers: in the config (defined: {})", field,
                      name, Join(defined, ", ")));
      return;
    }
    std::string type = config.GetString("providers." + name + ".type", name);
    if (!workers::providers::TypeServes(type, campaign.channel)) {
      out.push_back(fmt::format(
          "{}: provider '{}' is of type {}, which does not send {} (log: every channel; smtp, sendgrid: "
          "email; twilio: text; fcm, apns: push)",
          field, name, type, ChannelName(campaign.channel)));
    }
  };
  check("provider", campaign.provider);
  check("fallback_provider", campaign.fallback_provider);
  return out;
}

int CampaignsApply(Context& ctx, const CampaignsOptions& o, const CampaignsApplyOptions& apply) {
  const std::string head = "pvctl campaigns apply: nothing published";
  if (!TopicUsable(ctx, o, head)) return kExitFailed;
  std::vector<std::string> problems;
  std::vector<Campaign> campaigns = LoadCampaigns(apply.paths, problems);
  if (problems.empty() && campaigns.empty()) {
    return Fail(ctx, fmt::format("no campaign files (*.yaml, *.yml) under {}; nothing published",
                                 Join(apply.paths, " ")));
  }
  // What the dispatcher will do with them: compile every template, send through their providers.
  if (problems.empty()) {
    try {
      dispatcher::CompiledCatalog::Compile(Catalog::Of(Join(apply.paths, " "), campaigns));
    } catch (const CatalogError& e) {
      problems.emplace_back(e.what());
    }
  }
  for (const auto& c : campaigns) {
    for (const auto& p : ProviderProblems(ctx.config, c))
      problems.push_back(fmt::format("{}: {}", c.source_file, p));
  }
  if (!problems.empty()) {
    PrintProblems(ctx, head, problems);
    return kExitFailed;
  }

  TopicView topic;
  if (!ReadTopicOrSay(ctx, o, head, true, topic)) return kExitFailed;
  kafka::Producer producer(*o.kafka, ProducerFor(o));
  const size_t max_bytes = producer.MaxMessageBytes();
  const std::string host = HostName();
  const std::int64_t now = NowUnixMillis();
  std::vector<Planned> plan;
  for (const auto& c : campaigns) plan.push_back(Plan(c, topic, o, now, host, max_bytes, problems));
  if (!problems.empty()) {
    PrintProblems(ctx, head, problems);
    return kExitFailed;
  }

  if (!apply.dry_run) {
    for (auto& p : plan) {
      if (p.status != "unchanged")
        p.error = Publish(producer, o, p.campaign->id, p.value, p.version, p.group);
    }
    auto deadline = std::chrono::steady_clock::now() + o.timeout + std::chrono::seconds(2);
    for (auto& p : plan) {
      if (p.group) p.error = AwaitAck(p.group, deadline);
    }
  }
  ApplyCounts n;
  for (const auto& p : plan) {
    if (p.status == "unchanged") {
      ++n.unchanged;
    } else if (!p.error.empty()) {
      ++n.failed;
    } else if (!apply.dry_run) {
      ++n.published;
    }
  }
  PrintApplied(ctx, o, apply.dry_run, plan, n);
  if (n.failed == 0) return kExitOk;
  return Fail(ctx,
              fmt::format("{} campaign(s) NOT published to {} (listed above; {} published); rerun when the "
                          "brokers are reachable",
                          n.failed, o.topic, n.published));
}

int CampaignsList(Context& ctx, const CampaignsOptions& o, const CampaignsFilter& filter) {
  if (!TopicUsable(ctx, o, "pvctl campaigns list")) return kExitFailed;
  TopicView topic;
  std::shared_ptr<const Catalog> files;
  try {
    topic = ReadTopic(ctx, o);
    files = LocalCatalog(o);
  } catch (const std::exception& e) {
    return Fail(ctx, e.what());  // the topic or the files alone could show what replicas do not serve
  }
  auto merged = Catalog::Merge(*files, topic.All());
  auto shown = SortedById(*merged, filter);
  if (o.json) {
    *ctx.out << JsonArray(shown, [&](const Campaign* c) {
      std::string out = fmt::format(
          R"({{"id":{},"project":{},"name":{},"channel":"{}","status":"{}","updated_at_ms":{},"updated_at":"{}","source":"{}","where":{})",
          JsonString(c->id), JsonString(c->project), JsonString(c->name), ChannelName(c->channel), Status(*c),
          c->updated_at_ms, VersionTime(c->updated_at_ms), c->from_topic ? "topic" : "file",
          JsonString(c->from_topic ? o.topic : c->source_file));
      if (c->from_topic) out += ",\"applied_from\":" + JsonString(c->applied_from);
      return out + "}";
    }) << "\n";
    return kExitOk;
  }
  *ctx.out << fmt::format("{:<12} {:<12} {:<6} {:<9} {:<25} {}\n", "ID", "PROJECT", "CHANNEL", "STATUS",
                          "VERSION", "SOURCE");
  for (const Campaign* c : shown) {
    *ctx.out << fmt::format("{:<12} {:<12} {:<6} {:<9} {:<25} {}\n", c->id, c->project,
                            ChannelName(c->channel), Status(*c), VersionTime(c->updated_at_ms),
                            c->from_topic
                                ? fmt::format("topic {} (applied from {})", o.topic, c->applied_from)
                                : "file " + c->source_file);
  }
  return kExitOk;
}

int CampaignsShow(Context& ctx, const CampaignsOptions& o, const std::string& id) {
  if (!TopicUsable(ctx, o, "pvctl campaigns show")) return kExitFailed;
  TopicView topic;
  if (!ReadTopicOrSay(ctx, o, "pvctl campaigns show", false, topic)) return kExitFailed;
  const TopicCampaign* state = topic.Find(id);
  if (state == nullptr || state->campaign == nullptr) {
    std::string where;
    try {
      if (const Campaign* file = LocalCatalog(o)->Find(id); file != nullptr)
        where = fmt::format(" (this machine's catalog_dir has it: {})", file->source_file);
    } catch (const std::exception&) {
    }
    return Fail(ctx,
                state == nullptr ? fmt::format("no campaign {} on {}{}", id, o.topic, where)
                                 : fmt::format("campaign {} was removed from {} at {}{}", id, o.topic,
                                               VersionTime(state->updated_at_ms), where),
                kExitNotFound);
  }
  const std::string& value = topic.values[id];  // a record replicas accept: JSON
  *ctx.out << (o.json ? value : PrettyJson(value).value_or(value)) << "\n";
  return kExitOk;
}

int CampaignsDiff(Context& ctx, const CampaignsOptions& o, const std::string& path,
                  const CampaignsFilter& filter) {
  if (!TopicUsable(ctx, o, "pvctl campaigns diff")) return kDiffTrouble;
  std::shared_ptr<const Catalog> local;
  TopicView topic;
  try {
    local = Catalog::LoadPath(path);
    topic = ReadTopic(ctx, o);
  } catch (const std::exception& e) {
    return Fail(ctx, e.what(), kDiffTrouble);
  }
  std::vector<std::string> added;
  std::vector<std::pair<std::string, std::vector<std::string>>> changed;
  std::vector<std::string> removed;
  int same = 0;
  for (const Campaign* c : SortedById(*local, filter)) {
    const Campaign* live = topic.Live(c->id);
    if (live == nullptr) {
      added.push_back(c->id);
    } else if (auto fields = CampaignDifferences(*live, *c); !fields.empty()) {
      changed.emplace_back(c->id, std::move(fields));
    } else {
      ++same;
    }
  }
  for (const auto& [id, state] : topic.states) {
    if (state.campaign == nullptr || local->Find(id) != nullptr) continue;
    if (!filter.project.empty() && state.campaign->project != filter.project) continue;
    removed.push_back(id);
  }
  bool differ = !added.empty() || !changed.empty() || !removed.empty();
  if (o.json) {
    std::string changes = JsonArray(changed, [](const auto& c) {
      return fmt::format(R"({{"id":{},"fields":{}}})", JsonString(c.first), JsonList(c.second));
    });
    *ctx.out << fmt::format(R"({{"topic":{},"path":{},"added":{},"changed":{},"removed":{},"same":{}}})",
                            JsonString(o.topic), JsonString(path), JsonList(added), changes,
                            JsonList(removed), same)
             << "\n";
    return differ ? kDiffDifferent : kDiffSame;
  }
  for (const auto& id : added)
    *ctx.out << fmt::format("+ {:<12} added: in {}, not on {}\n", id, path, o.topic);
  for (const auto& [id, fields] : changed)
    *ctx.out << fmt::format("~ {:<12} changed: {}\n", id, Join(fields, ", "));
  for (const auto& id : removed)
    *ctx.out << fmt::format(
        "- {:<12} only on {} (apply never removes a campaign; pvctl campaigns delete {})\n", id, o.topic, id);
  *ctx.out << (differ ? fmt::format("{} added, {} changed, {} only on {}; {} the same\n", added.size(),
                                    changed.size(), removed.size(), o.topic, same)
                      : fmt::format("no differences: {} campaign(s) the same as on {}\n", same, o.topic));
  return differ ? kDiffDifferent : kDiffSame;
}

int CampaignsDelete(Context& ctx, const CampaignsOptions& o, const std::string& id) {
  if (!TopicUsable(ctx, o, "pvctl campaigns delete: nothing removed")) return kExitFailed;
  TopicView topic;
  if (!ReadTopicOrSay(ctx, o, "pvctl campaigns delete: nothing removed", true, topic)) return kExitFailed;
  const Campaign* file = nullptr;
  std::shared_ptr<const Catalog> files;
  try {
    files = LocalCatalog(o);
    file = files->Find(id);
  } catch (const std::exception& e) {
    *ctx.err << "pvctl campaigns delete: note: this machine's catalog_dir was not read: " << e.what() << "\n";
  }
  const TopicCampaign* state = topic.Find(id);
  if (state == nullptr && file == nullptr) {
    return Fail(ctx, fmt::format("no campaign {} on {} (nor in catalog_dir {})", id, o.topic, o.catalog_dir),
                kExitNotFound);
  }
  if (state != nullptr && state->campaign == nullptr &&
      (file == nullptr || file->updated_at_ms <= state->updated_at_ms)) {
    *ctx.out << (o.json ? RemovedJson(id, state->updated_at_ms)
                        : fmt::format("Campaign {} was already removed from {} at {}.\n", id, o.topic,
                                      VersionTime(state->updated_at_ms)));
    return kExitOk;
  }
  std::int64_t previous = std::max<std::int64_t>(state != nullptr ? state->updated_at_ms : 0,
                                                 file != nullptr ? file->updated_at_ms : 0);
  std::int64_t version = NextCampaignVersion(previous, NowUnixMillis());
  kafka::Producer producer(*o.kafka, ProducerFor(o));
  std::shared_ptr<kafka::DeliveryGroup> group;
  std::string error = Publish(producer, o, id, std::nullopt, version, group);
  if (error.empty())
    error = AwaitAck(group, std::chrono::steady_clock::now() + o.timeout + std::chrono::seconds(2));
  if (!error.empty())
    return Fail(ctx,
                fmt::format("nothing removed: the tombstone was NOT published to {}: {}", o.topic, error));
  *ctx.out << (o.json ? RemovedJson(id, version)
                      : fmt::format(
                            "Removed campaign {} from {}: every ingest answers 404 for it within seconds.\n",
                            id, o.topic));
  if (file != nullptr) {
    *ctx.err << fmt::format(
        "pvctl campaigns delete: note: {} still has it; a replica whose copy of that file changes after now "
        "serves it again (remove the file, or set deleted: true in it)\n",
        file->source_file);
  }
  return kExitOk;
}

void AddCampaignsCommands(CLI::App& app, Context& ctx) {
  CLI::App* campaigns =
      app.add_subcommand("campaigns", "campaigns on pv.campaigns: apply, list, show, diff, delete");
  campaigns->footer(kCampaignsFooter);  // its subcommands inherit it
  campaigns->require_subcommand(1);
  // The options every subcommand shares come from the config and the global options, once parsed.
  auto options = [&ctx] {
    CampaignsOptions o = CampaignsOptionsFromConfig(ctx.config);
    if (!ctx.brokers.empty()) o.kafka = KafkaSettings(ctx);
    o.timeout = RequestTimeout(ctx);
    o.json = ctx.json;
    return o;
  };
  auto campaign_id = [](const std::string& id) {
    return IsCampaignId(id) ? std::string() : "not a campaign id (1-64 letters, digits, '-' or '_')";
  };

  auto apply_options = std::make_shared<CampaignsApplyOptions>();
  CLI::App* apply = campaigns->add_subcommand(
      "apply", "validate campaign files and publish each one that differs from pv.campaigns");
  apply->add_option("PATH", apply_options->paths, "campaign files or directories of them")
      ->required()
      ->check(cli::NotEmpty());
  apply->add_flag("--dry-run", apply_options->dry_run, "validate and say what would change; publish nothing");
  OnRun(apply, ctx,
        [&ctx, options, apply_options] { return CampaignsApply(ctx, options(), *apply_options); });

  auto list_filter = std::make_shared<CampaignsFilter>();
  CLI::App* list = campaigns->add_subcommand(
      "list", "what a replica serves: catalog_dir merged with pv.campaigns (id, project, version, source)");
  AddText(list, "--project", list_filter->project, "only the campaigns of this project", "P");
  OnRun(list, ctx, [&ctx, options, list_filter] { return CampaignsList(ctx, options(), *list_filter); });

  auto show_id = std::make_shared<std::string>();
  CLI::App* show = campaigns->add_subcommand("show", "the record of one campaign on pv.campaigns");
  show->add_option("ID", *show_id, "the campaign's id")->required()->check(campaign_id);
  OnRun(show, ctx, [&ctx, options, show_id] { return CampaignsShow(ctx, options(), *show_id); });

  auto diff_path = std::make_shared<std::string>();
  auto diff_filter = std::make_shared<CampaignsFilter>();
  CLI::App* diff = campaigns->add_subcommand(
      "diff", "which campaigns differ between PATH and pv.campaigns; exit 0 same, 1 different, 2 trouble");
  diff->add_option("PATH", *diff_path, "a directory of campaign files, or one file")
      ->required()
      ->check(cli::NotEmpty());
  AddText(diff, "--project", diff_filter->project, "compare only the campaigns of this project", "P");
  OnRun(diff, ctx, [&ctx, options, diff_path, diff_filter] {
    try {
      return CampaignsDiff(ctx, options(), *diff_path, *diff_filter);
    } catch (const std::exception& e) {
      return Fail(ctx, e.what(), kDiffTrouble);  // trouble is 2 for diff, as for diff(1)
    }
  });

  auto delete_id = std::make_shared<std::string>();
  CLI::App* del = campaigns->add_subcommand(
      "delete", "remove a campaign: a tombstone on pv.campaigns, every ingest answers 404 for it");
  del->add_option("ID", *delete_id, "the campaign's id")->required()->check(campaign_id);
  OnRun(del, ctx, [&ctx, options, delete_id] { return CampaignsDelete(ctx, options(), *delete_id); });
}

}  // namespace pv::pvctl
