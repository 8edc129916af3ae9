// pvctl topics: create the pipeline's topics with the configured partition counts (Kafka Admin API),
// and list topics with their partitions, records and the pipeline's consumer-group lag.
//
// Partition counts decide how far each consumer type scales: one partition feeds at most one member
// of a group (docs/operations.md "Scaling"). `create` never changes an existing topic; it reports a
// topic whose partition count differs from the config so the operator can decide.
#include "topics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

#include "kafka_client.hpp"
#include "pv/command_line.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/json.hpp"
#include "pv/topics.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kTopicsFooter =
    R"(Partition counts: topics.<name>.partitions (default: 6 for pv.triggers, pv.events and pv.send.*,
3 for pv.dlq.* and pv.delay.*, 1 for the compacted pv.keys and pv.campaigns, whose tombstones are
kept 100 years: delete.retention.ms); replication: topics.replication_factor
(default min(3, brokers)); min.insync.replicas: min(2, replication factor), so acks=all means two
brokers have the record; extra topic configs (which win): topics.<name>.config.<key>. Delay topics
follow dispatcher.delay_tiers. Existing topics are never changed (create is safe to run again).

`list` shows the pipeline's topics (--all: every topic) and the lag of the groups pv-dispatcher,
pv-dispatcher-delay and pv-<email|sms|push>-worker (names from the config): the records between each
partition's committed offset and its end.

Global options (before or after the command): --config, --json, --brokers, --timeout.
Exit codes: 0 ok, 1 failed (broker unreachable, a topic not created), 2 usage.)";

constexpr const char* kDevBrokerHint =
    "the dev broker (pv-dev-broker, librdkafka's mock cluster) cannot create topics through Kafka: create "
    "topics there with `pv-dev-broker --topic NAME:PARTITIONS` at start or `curl -X POST "
    "\"http://$(cat CONTROL_FILE)/topics?name=NAME&partitions=N\"` on its control endpoint "
    "(tools/dev-broker/README.md); it creates the pipeline's default topics itself";

// The topic's own YAML node when the file names it as one key ("pv.send.email:").
YAML::Node FlatTopicNode(const Config& config, const std::string& topic) {
  YAML::Node topics = config.Node("topics");
  if (!topics || !topics.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node node = topics[topic];
  return node && node.IsMap() ? node : YAML::Node(YAML::NodeType::Undefined);
}

struct CreateOutcome {
  std::string name;
  int partitions = 0;          // as it exists (or as created)
  int wanted_partitions = 0;   // from the config
  int replication_factor = 0;  // as it exists (or as created)
  std::string status;          // created | exists | would-create | failed
  std::string error;
};

// Creates `topics` with one CreateTopics request. Returns "" on success of the request itself (per-topic
// errors go into `outcomes`), or why the whole request failed.
std::string CreateTopics(rd_kafka_t* rk, const std::vector<DesiredTopic>& topics, int replication_factor,
                         std::chrono::milliseconds timeout, std::map<std::string, CreateOutcome>& outcomes) {
  char err[512];
  std::vector<rd_kafka_NewTopic_t*> news;
  auto destroy = [&] { rd_kafka_NewTopic_destroy_array(news.data(), news.size()); };
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, replication_factor, err, sizeof(err));
    if (nt == nullptr) {
      destroy();
      return fmt::format("topic {}: {}", t.name, err);
    }
    news.push_back(nt);
    for (const auto& [key, value] : CreateConfigs(t, replication_factor)) {
      if (rd_kafka_NewTopic_set_config(nt, key.c_str(), value.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        destroy();
        return fmt::format("topic {}: bad config {}={}", t.name, key, value);
      }
    }
  }
  rd_kafka_AdminOptions_t* options = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(options, static_cast<int>(timeout.count()), err, sizeof(err));
  rd_kafka_AdminOptions_set_operation_timeout(options, static_cast<int>(timeout.count()), err, sizeof(err));
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk);
  rd_kafka_CreateTopics(rk, news.data(), news.size(), options, queue);
  rd_kafka_event_t* event = rd_kafka_queue_poll(queue, static_cast<int>(timeout.count()) + 2000);
  std::string failure;
  if (event == nullptr) {
    failure = fmt::format("no answer to CreateTopics within {} ms", timeout.count());
  } else if (rd_kafka_event_error(event) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    failure = fmt::format("CreateTopics failed: {} ({})", rd_kafka_event_error_string(event),
                          rd_kafka_err2name(rd_kafka_event_error(event)));
  } else if (const rd_kafka_CreateTopics_result_t* result = rd_kafka_event_CreateTopics_result(event)) {
    size_t count = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &count);
    for (size_t i = 0; i < count; ++i) {
      CreateOutcome& o = outcomes[rd_kafka_topic_result_name(results[i])];
      rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
      if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        o.status = "created";
      } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        o.status = "exists";  // created by someone else in the meantime
      } else {
        o.status = "failed";
        const char* text = rd_kafka_topic_result_error_string(results[i]);
        o.error = fmt::format("{} ({})", text != nullptr ? text : rd_kafka_err2str(e), rd_kafka_err2name(e));
      }
    }
  } else {
    failure = "CreateTopics: unexpected event";
  }
  if (event != nullptr) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_AdminOptions_destroy(options);
  destroy();
  return failure;
}

// librdkafka's mock cluster (pv-dev-broker) names itself "mockCluster<hex>".
bool IsDevBroker(rd_kafka_t* rk, std::chrono::milliseconds timeout) {
  char* id = rd_kafka_clusterid(rk, static_cast<int>(timeout.count()));
  bool mock = id != nullptr && std::string_view(id).rfind("mockCluster", 0) == 0;
  if (id != nullptr) rd_kafka_mem_free(rk, id);
  return mock;
}

// The outcome for each topic and the totals: a table, or one JSON object. Returns how many failed.
int PrintCreated(Context& ctx, const std::vector<DesiredTopic>& desired,
                 std::map<std::string, CreateOutcome>& outcomes, const std::string& failure, int brokers) {
  int created = 0, existing = 0, failed = 0;
  for (const auto& t : desired) {
    const CreateOutcome& o = outcomes[t.name];
    created += o.status == "created";
    existing += o.status == "exists";
    failed += o.status == "failed";
  }

  if (ctx.json) {
    std::string out =
        "{\"topics\":" + JsonArray(desired, [&](const DesiredTopic& t) {
          const CreateOutcome& o = outcomes[t.name];
          std::string topic = fmt::format(
              "{{\"name\":{},\"status\":\"{}\",\"partitions\":{},\"wanted_partitions\":{},\"replication_"
              "factor\":{}",
              JsonString(o.name), o.status, o.partitions, o.wanted_partitions, o.replication_factor);
          AppendOptionalField(topic, "error", o.error);
          return topic + "}";
        });
    out += fmt::format(",\"created\":{},\"existing\":{},\"failed\":{},\"brokers\":{}", created, existing,
                       failed, brokers);
    AppendOptionalField(out, "error", failure);
    *ctx.out << out << "}\n";
  } else {
    *ctx.out << fmt::format("{:<18} {:>10} {:>11}  {}\n", "TOPIC", "PARTITIONS", "REPLICATION", "STATUS");
    for (const auto& t : desired) {
      const CreateOutcome& o = outcomes[t.name];
      std::string status = o.status;
      if (o.status == "exists" && o.partitions != o.wanted_partitions) {
        status +=
            fmt::format(" (config says {} partitions; existing topics are not changed)", o.wanted_partitions);
      }
      if (o.status == "failed" && failure.empty()) status += ": " + o.error;
      *ctx.out << fmt::format("{:<18} {:>10} {:>11}  {}\n", o.name, o.partitions, o.replication_factor,
                              status);
    }
    *ctx.out << fmt::format("{} created, {} already existed, {} failed ({} broker{}).\n", created, existing,
                            failed, brokers, brokers == 1 ? "" : "s");
  }
  return failed;
}

// What an existing topic is like.
void SetExisting(CreateOutcome& o, const TopicInfo& info) {
  o.partitions = static_cast<int>(info.partitions.size());
  o.replication_factor = info.partitions.empty() ? 0 : info.partitions[0].replicas;
}

int Create(Context& ctx, bool dry_run) {
  auto settings = KafkaSettings(ctx);
  auto timeout = RequestTimeout(ctx);
  std::vector<DesiredTopic> desired = DesiredTopics(ctx.config);
  Client admin(RD_KAFKA_PRODUCER, settings, "pvctl-topics");
  ClusterInfo cluster = Describe(admin.get(), timeout);
  int rf = ReplicationFactor(ctx.config, cluster.brokers);

  std::map<std::string, CreateOutcome> outcomes;
  std::vector<DesiredTopic> missing;
  for (const auto& t : desired) {
    CreateOutcome& o = outcomes[t.name];
    o.name = t.name;
    o.wanted_partitions = t.partitions;
    auto it = cluster.topics.find(t.name);
    if (it != cluster.topics.end() && it->second.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      o.status = "exists";
      SetExisting(o, it->second);
    } else {
      o.status = dry_run ? "would-create" : "failed";
      o.partitions = t.partitions;
      o.replication_factor = rf;
      missing.push_back(t);
    }
  }

  std::string failure;
  bool dev_broker = IsDevBroker(admin.get(), timeout);
  if (!missing.empty() && !dry_run) {
    // The mock cluster reports a controller that does not exist: CreateTopics would only wait for it
    // until the timeout. Say what to do instead, at once.
    failure = dev_broker ? "this is the dev broker, which has no CreateTopics/Admin API"
                         : CreateTopics(admin.get(), missing, rf, timeout, outcomes);
    for (const auto& t : missing) {
      CreateOutcome& o = outcomes[t.name];
      if (!failure.empty()) o.error = failure;
      if (o.status == "exists") {  // lost a race: show what is there
        ClusterInfo again = Describe(admin.get(), timeout);
        if (auto it = again.topics.find(t.name); it != again.topics.end()) SetExisting(o, it->second);
      }
    }
  }

  int failed = PrintCreated(ctx, desired, outcomes, failure, cluster.brokers);
  if (!failure.empty()) {
    Fail(ctx, failure);
    return Fail(ctx, dev_broker
                         ? std::string(kDevBrokerHint) + "."
                         : "check that the brokers are Apache Kafka (or another broker with the Admin API) "
                           "and that a controller is elected; nothing was changed for the failed topics.");
  }
  return failed == 0 ? kExitOk : kExitFailed;
}

struct GroupLag {
  std::string group;
  std::string topic;
  int partitions = 0;
  int committed_partitions = 0;  // partitions with a committed offset
  std::int64_t lag = 0;
  std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> detail;  // partition -> (committed, end)
};

// The lag of each pipeline group on each of its topics in `marks` (topic -> partition -> watermarks).
std::vector<GroupLag> Lags(const Config& config, const kafka::Settings& settings,
                           std::map<std::string, std::map<std::int32_t, Watermarks>>& marks,
                           std::chrono::milliseconds timeout) {
  std::vector<GroupLag> lags;
  for (const auto& g : PipelineGroups(config)) {
    std::vector<TopicPartition> tps;
    for (const auto& topic : g.topics) {
      if (marks.count(topic) == 0) continue;
      for (const auto& [p, w] : marks[topic]) tps.push_back({topic, p});
    }
    if (tps.empty()) continue;
    Client consumer(RD_KAFKA_CONSUMER, settings, "pvctl",
                    {{"group.id", g.group}, {"enable.auto.commit", "false"}});
    std::map<TopicPartition, std::int64_t> committed;
    try {
      committed = CommittedOffsets(consumer.get(), tps, timeout);
    } catch (const kafka::KafkaError& e) {
      throw kafka::KafkaError(fmt::format("group {}: {}", g.group, e.what()));
    }
    for (const auto& topic : g.topics) {
      if (marks.count(topic) == 0) continue;
      GroupLag lag;
      lag.group = g.group;
      lag.topic = topic;
      for (const auto& [p, w] : marks[topic]) {
        ++lag.partitions;
        std::int64_t c = committed[{topic, p}];
        // Without a commit the group starts at the earliest record (auto.offset.reset=earliest).
        std::int64_t from = c >= 0 ? std::max(c, w.low) : w.low;
        if (c >= 0) ++lag.committed_partitions;
        lag.lag += std::max<std::int64_t>(0, w.high - from);
        lag.detail[p] = {c, w.high};
      }
      lags.push_back(std::move(lag));
    }
  }
  return lags;
}

int List(Context& ctx, bool all) {
  auto settings = KafkaSettings(ctx);
  auto timeout = RequestTimeout(ctx);
  Client client(RD_KAFKA_CONSUMER, settings, "pvctl-topics");
  ClusterInfo cluster = Describe(client.get(), timeout);

  std::map<std::string, std::map<std::int32_t, Watermarks>> marks;
  std::vector<const TopicInfo*> shown;
  for (const auto& [name, info] : cluster.topics) {
    if (info.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (!all && (name.rfind("pv.", 0) != 0 || name.rfind("__", 0) == 0)) continue;
    std::vector<std::int32_t> ids;
    for (const auto& p : info.partitions) ids.push_back(p.id);
    marks[name] = QueryWatermarks(client.get(), name, ids, timeout);
    shown.push_back(&info);
  }

  std::vector<GroupLag> lags = Lags(ctx.config, settings, marks, timeout);

  if (ctx.json) {
    auto topic = [&](const TopicInfo* t) {
      std::int64_t records = 0;
      for (const auto& [p, w] : marks[t->name]) records += w.high - w.low;
      return fmt::format(
          "{{\"name\":{},\"partition_count\":{},\"replication_factor\":{},\"records\":{},\"partitions\":{}}}",
          JsonString(t->name), t->partitions.size(), t->partitions.empty() ? 0 : t->partitions[0].replicas,
          records, JsonArray(t->partitions, [&](const PartitionInfo& p) {
            const Watermarks& w = marks[t->name][p.id];
            return fmt::format(
                "{{\"partition\":{},\"leader\":{},\"replicas\":{},\"in_sync\":{},\"low\":{},\"high\":{}}}",
                p.id, p.leader, p.replicas, p.in_sync, w.low, w.high);
          }));
    };
    auto group = [](const GroupLag& l) {
      return fmt::format(
          "{{\"group\":{},\"topic\":{},\"lag\":{},\"committed_partitions\":{},\"partitions\":{}}}",
          JsonString(l.group), JsonString(l.topic), l.lag, l.committed_partitions,
          JsonArray(l.detail, [](const auto& d) {
            return fmt::format("{{\"partition\":{},\"committed\":{},\"end\":{}}}", d.first,
                               d.second.first >= 0 ? std::to_string(d.second.first) : "null",
                               d.second.second);
          }));
    };
    *ctx.out << fmt::format("{{\"brokers\":{},\"topics\":{},\"groups\":{}}}\n", cluster.brokers,
                            JsonArray(shown, topic), JsonArray(lags, group));
    return kExitOk;
  }

  *ctx.out << fmt::format("{:<18} {:>10} {:>11} {:>10}\n", "TOPIC", "PARTITIONS", "REPLICATION", "RECORDS");
  for (const TopicInfo* t : shown) {
    std::int64_t records = 0;
    for (const auto& [p, w] : marks[t->name]) records += w.high - w.low;
    *ctx.out << fmt::format("{:<18} {:>10} {:>11} {:>10}\n", t->name, t->partitions.size(),
                            t->partitions.empty() ? 0 : t->partitions[0].replicas, records);
  }
  *ctx.out << fmt::format("\n{:<22} {:<18} {:>10} {:>10}  {}\n", "GROUP", "TOPIC", "PARTITIONS", "LAG",
                          "COMMITTED");
  for (const auto& l : lags) {
    std::string committed = l.committed_partitions == 0 ? "none (not started?)"
                            : l.committed_partitions == l.partitions
                                ? "all partitions"
                                : fmt::format("{} of {} partitions", l.committed_partitions, l.partitions);
    *ctx.out << fmt::format("{:<22} {:<18} {:>10} {:>10}  {}\n", l.group, l.topic, l.partitions, l.lag,
                            committed);
  }
  *ctx.out << fmt::format("({} broker{}; records = end minus start offset over partitions)\n",
                          cluster.brokers, cluster.brokers == 1 ? "" : "s");
  return kExitOk;
}

}  // namespace

std::vector<DesiredTopic> DesiredTopics(const Config& config) {
  std::vector<std::string> tiers = config.GetList("dispatcher.delay_tiers", topics::DefaultDelayTiers());
  std::vector<ladder::Tier> parsed;
  try {
    parsed = ladder::ParseTiers(tiers);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("dispatcher.delay_tiers: {}", e.what()));
  }
  std::vector<DesiredTopic> out;
  int delay_partitions = 3;
  for (const auto& spec : topics::DefaultTopics()) {
    if (spec.name.rfind("pv.delay.", 0) == 0) {
      delay_partitions = spec.partitions;  // the topics: from the configured tiers below
    } else {
      out.push_back({spec.name, spec.partitions, spec.compacted, {}});
    }
  }
  for (const auto& tier : parsed) out.push_back({tier.topic, delay_partitions, false, {}});

  for (auto& t : out) {
    YAML::Node flat = FlatTopicNode(config, t.name);
    int def = t.partitions;
    if (flat && flat["partitions"]) {
      try {
        def = flat["partitions"].as<int>();
      } catch (const YAML::Exception&) {
        throw ConfigError(fmt::format("topics.{}.partitions: not a number", t.name));
      }
    }
    if (def < 1) throw ConfigError(fmt::format("topics.{}.partitions: must be at least 1", t.name));
    t.partitions = static_cast<int>(config.GetInt("topics." + t.name + ".partitions", def, 1, 100000));
    if (t.compacted) {
      t.configs["cleanup.policy"] = "compact";
      // pv.keys: a tombstone (pvctl keys delete) must outlive every keys_file that may still list the
      // key, or the file's older state would come back once compaction dropped it (Kafka's default
      // keeps tombstones one day). 100 years: "forever" without overflowing the broker's
      // now + delete.retention.ms. pv.campaigns likewise: a removal (pvctl campaigns delete) must
      // outlive every catalog_dir with an older file of the campaign.
      t.configs["delete.retention.ms"] = "3153600000000";
    }
    YAML::Node extra = flat ? flat["config"] : YAML::Node(YAML::NodeType::Undefined);
    if (extra && extra.IsMap()) {
      for (const auto& entry : extra) {
        if (!entry.second.IsScalar()) {
          throw ConfigError(
              fmt::format("topics.{}.config.{}: must be a scalar", t.name, entry.first.as<std::string>()));
        }
        t.configs[entry.first.as<std::string>()] = entry.second.as<std::string>();
      }
    } else if (extra) {
      throw ConfigError(fmt::format("topics.{}.config: must be a mapping of topic configs", t.name));
    }
  }
  return out;
}

int ReplicationFactor(const Config& config, int brokers) {
  int rf = static_cast<int>(config.GetInt("topics.replication_factor", 0, 0, 32));
  return rf > 0 ? rf : std::max(1, std::min(3, brokers));
}

std::map<std::string, std::string> CreateConfigs(const DesiredTopic& topic, int replication_factor) {
  std::map<std::string, std::string> configs = topic.configs;
  if (configs.count("min.insync.replicas") == 0) {
    configs["min.insync.replicas"] = std::to_string(std::max(1, std::min(2, replication_factor)));
  }
  return configs;
}

std::vector<ConsumerGroup> PipelineGroups(const Config& config) {
  std::vector<ConsumerGroup> out;
  out.push_back({config.GetString("dispatcher.group_id", "pv-dispatcher"), {std::string(topics::kTriggers)}});
  ConsumerGroup delay{config.GetString("dispatcher.delay.group_id", "pv-dispatcher-delay"), {}};
  for (const auto& t : DesiredTopics(config)) {
    if (t.name.rfind("pv.delay.", 0) == 0) delay.topics.push_back(t.name);
  }
  out.push_back(std::move(delay));
  for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush}) {
    std::string suffix(ChannelTopicSuffix(c));
    std::string group = config.GetString("worker." + suffix + ".group_id",
                                         config.GetString("workers.group_id", "pv-" + suffix + "-worker"));
    out.push_back({group, {topics::Send(c)}});
  }
  return out;
}

void AddTopicsCommands(CLI::App& app, Context& ctx) {
  CLI::App* topics = app.add_subcommand("topics", "the pipeline's topics: create, list");
  topics->footer(kTopicsFooter);  // its subcommands inherit it
  topics->require_subcommand(1);

  auto dry_run = std::make_shared<bool>(false);
  CLI::App* create = topics->add_subcommand(
      "create", "create every pipeline topic that does not exist yet (partitions from the config)");
  create->add_flag("--dry-run", *dry_run, "only say what would be created");
  OnRun(create, ctx, [&ctx, dry_run] { return Create(ctx, *dry_run); });

  auto all = std::make_shared<bool>(false);
  CLI::App* list =
      topics->add_subcommand("list", "topics, partitions, records, and the pipeline's consumer-group lag");
  list->add_flag("--all", *all, "every topic of the cluster, not only the pipeline's (pv.*)");
  OnRun(list, ctx, [&ctx, all] { return List(ctx, *all); });
}

}  // namespace pv::pvctl
