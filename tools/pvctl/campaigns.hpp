// pvctl campaigns: apply, list, show, diff, delete. Campaigns are distributed like keys: each one,
// its templates inlined, is a record of the compacted topic campaigns_topic (pv.campaigns) that every
// ingest and dispatcher follows and merges with its catalog_dir (the newer version of a campaign
// wins; campaign_records.hpp, docs/operations.md "Campaigns").
//
// Each command is a function of already-parsed options (AddCampaignsCommands declares them on
// pvctl's CLI11 App), so that tests can drive the commands without a command line. Exit codes as
// pvctl.hpp says, except `diff`, which answers like diff(1): 0 the same, 1 different, 2 trouble.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "pv/catalog.hpp"
#include "pv/config.hpp"
#include "pv/kafka.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {

// What every campaigns command needs.
struct CampaignsOptions {
  std::string topic = "pv.campaigns";        // campaigns_topic; empty: replicas read catalog_dir only
  std::optional<kafka::Settings> kafka;      // none: kafka.brokers is not set
  std::string catalog_dir;                   // this machine's catalog_dir (list, show, delete look at it)
  std::chrono::milliseconds timeout{10000};  // one broker round trip, and reading the topic
  bool json = false;
};

// campaigns_topic, catalog_dir and kafka.* from the deployment config (no command line involved).
CampaignsOptions CampaignsOptionsFromConfig(const Config& config);

struct CampaignsApplyOptions {
  std::vector<std::string> paths;  // campaign files or catalog directories
  bool dry_run = false;            // validate and say what would change; publish nothing
};

struct CampaignsFilter {
  std::string project;  // empty: every project
};

// Validates every campaign under `paths` (the catalog's rules, every template compiled, providers
// defined in the config for the campaign's channel, the record within the replicas' limits and the
// producer's message.max.bytes) and publishes each one that differs from the topic's version, with
// a version newer than it. Nothing is published unless everything is valid. 0 only once the broker
// acknowledged every record.
int CampaignsApply(Context& ctx, const CampaignsOptions& options, const CampaignsApplyOptions& apply);
// The campaigns a replica with this config's catalog_dir serves (catalog_dir merged with the topic):
// id, project, channel, status, version time, source.
int CampaignsList(Context& ctx, const CampaignsOptions& options, const CampaignsFilter& filter);
// The topic's record of one campaign. 3 when the topic has none (or only its removal).
int CampaignsShow(Context& ctx, const CampaignsOptions& options, const std::string& id);
// Which campaigns differ between `path` (a directory or a file) and the topic: added, changed (with
// the fields), removed (on the topic, not under `path`). 0 the same, 1 different, 2 trouble.
int CampaignsDiff(Context& ctx, const CampaignsOptions& options, const std::string& path,
                  const CampaignsFilter& filter);
// Publishes the campaign's removal (a tombstone), newer than every version of it known here.
int CampaignsDelete(Context& ctx, const CampaignsOptions& options, const std::string& id);

// The problems of a campaign's provider and fallback_provider under the deployment config: each must
// be defined under `providers:` (or be `log`, which every worker has) with a type that serves the
// campaign's channel, else every send of the campaign would fail at the worker.
std::vector<std::string> ProviderProblems(const Config& config, const Campaign& campaign);

}  // namespace pv::pvctl
