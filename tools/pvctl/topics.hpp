// pvctl topics: what the pipeline's topics should look like (from the config) and the consumer groups
// whose lag `topics list` shows. Separate from topics.cpp so the unit tests read the same rules.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pv/config.hpp"

namespace pv::pvctl {

struct DesiredTopic {
  std::string name;
  int partitions = 1;
  bool compacted = false;
  std::map<std::string, std::string> configs;  // topic configs (cleanup.policy, retention.ms, ...)
};

// pv::topics::DefaultTopics() with the delay tiers of dispatcher.delay_tiers, each topic's partition
// count from topics.<name>.partitions and its configs from topics.<name>.config.<key>. Topic names
// contain dots, so the YAML may name them as one key:
//
//   topics:
//     replication_factor: 3
//     pv.send.email: {partitions: 24, config: {retention.ms: "604800000"}}
//
// (env: PV_TOPICS_PV_SEND_EMAIL_PARTITIONS=24). Throws ConfigError on a bad count or tier.
std::vector<DesiredTopic> DesiredTopics(const Config& config);

// topics.replication_factor; 0 (the default) means min(3, brokers in the cluster).
int ReplicationFactor(const Config& config, int brokers);

// The configs `create` sets on a new topic: the topic's own, plus min.insync.replicas =
// min(2, replication_factor) unless the topic's config names it. The producers use acks=all, which
// waits only for the replicas in sync: with the broker default of 1 that can be the leader alone, so
// an acknowledged record would be lost with that one broker. 2 (of 3) keeps a record on two brokers
// and still lets one broker be down; a cluster of fewer replicas cannot ask for more than it has.
std::map<std::string, std::string> CreateConfigs(const DesiredTopic& topic, int replication_factor);

struct ConsumerGroup {
  std::string group;
  std::vector<std::string> topics;
};

// The pipeline's consumer groups with the topics each consumes, named as the services name them
// (dispatcher.group_id, dispatcher.delay.group_id, worker.<channel>.group_id / workers.group_id).
std::vector<ConsumerGroup> PipelineGroups(const Config& config);

}  // namespace pv::pvctl
