// The campaign catalog: one YAML file per campaign under a directory (any depth), template bodies
// inline or in files beside it. Ingest reads it to authorise and validate triggers; the dispatcher
// reads it to render and route. Loading validates everything and reports every problem with the
// file and field it is in; a catalog that fails to load is never half-used.
//
// Campaigns also travel on the compacted topic pv.campaigns (campaign_records.hpp), which
// `pvctl campaigns apply` writes and every ingest and dispatcher follows; a replica serves the
// newest version of each campaign id from its files and the topic together (Catalog::Merge).
//
//   id: "44"                      # the :campaignId of the trigger URL
//   project: demo                 # keys of this project may trigger it; 1-64 of [a-z0-9_-]
//   name: Order shipped
//   channel: email                # email | text | push
//   provider: log                 # a provider name from the deployment config
//   fallback_provider: smtp       # optional
//   enabled: true                 # false: triggers get 409
//   deleted: false                # true: triggers get 404
//   default_locale: en
//   timezone: America/Chicago     # for users who give none (default UTC)
//   send_window: {start: "08:00", end: "21:00", days: [mon, tue, wed, thu, fri]}   # optional
//   templates:
//     en: {from: ..., reply_to: ..., subject: ..., html_file: 44/en.html, text: ...}
//     es: {...}
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pv/topics.hpp"

namespace pv {

class CatalogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The campaign id rule (a campaign's `id`, the :campaignId of the trigger URL, the record key on the
// campaigns topic): 1-64 of [A-Za-z0-9_-].
bool IsCampaignId(std::string_view id);

struct SendWindow {
  int start_minute = 0;      // minutes after local midnight, inclusive
  int end_minute = 0;        // exclusive; end < start means the window spans midnight
  std::uint8_t days = 0x7f;  // bit 0 = Monday ... bit 6 = Sunday: days on which the window opens
  bool operator==(const SendWindow&) const = default;
};

// One locale's template. Which fields exist depends on the channel:
//   email: from, reply_to (optional), subject, html and/or text
//   text:  body
//   push:  title, body, sound (optional), badge (optional); `data` holds the push data map
struct Template {
  std::map<std::string, std::string> fields;
  std::map<std::string, std::string> data;  // push only

  const std::string* Field(const std::string& name) const {
    auto it = fields.find(name);
    return it == fields.end() ? nullptr : &it->second;
  }
};

struct Campaign {
  std::string id;
  std::string project;
  std::string name;
  Channel channel = Channel::kEmail;
  std::string provider;
  std::string fallback_provider;  // empty: none
  bool enabled = true;
  bool deleted = false;
  std::string default_locale;
  std::string timezone = "UTC";
  std::optional<SendWindow> send_window;
  // In file order: the first is the last resort of locale choice.
  std::vector<std::pair<std::string, Template>> templates;
  // Where it came from, for messages: the YAML file, or "<topic>:<id>" for a record of the
  // campaigns topic.
  std::string source_file;
  // The version that decides between a campaign's file and its record on the campaigns topic (the
  // newer wins, Catalog::Merge). A file's is the latest modification time, in Unix ms, of the YAML
  // file and of every template file it reads; a record's is its updated_at_ms.
  std::int64_t updated_at_ms = 0;
  bool from_topic = false;
  std::string applied_from;  // a record's "<host>:<path>" that pvctl applied it from (information only)
};

// The state of one campaign id on the campaigns topic: a campaign, or its removal (a tombstone).
struct TopicCampaign {
  std::string id;
  std::int64_t updated_at_ms = 0;
  std::shared_ptr<const Campaign> campaign;  // null: removed (`pvctl campaigns delete`)
};

// Within the topic: true when `candidate` replaces `current` (the same id). The later updated_at_ms
// wins; on a tie a removal beats a campaign (so a tie never brings a campaign back), and otherwise
// the candidate (the later record) wins. Tested in campaign_records_test.cpp.
bool TopicCampaignSupersedes(const TopicCampaign& candidate, const TopicCampaign& current);

class Catalog {
 public:
  // Loads every *.yaml / *.yml file below `dir`. Throws CatalogError listing every problem found.
  static std::shared_ptr<const Catalog> LoadDirectory(const std::string& dir);
  // The same for one campaign file, or for every file below `path` when it is a directory.
  static std::shared_ptr<const Catalog> LoadPath(const std::string& path);
  // A catalog of the given campaigns (ids must differ), e.g. one record's campaign to compile alone.
  static std::shared_ptr<const Catalog> Of(std::string directory, std::vector<Campaign> campaigns);
  // What a replica serves: per campaign id, the newer of the file's campaign and the topic's state
  // (updated_at_ms; a tie goes to the topic). A removal on the topic hides a file's campaign older
  // than it, and one newer than the removal comes back. Campaigns only in one source are kept as
  // they are. directory() is that of `files`.
  static std::shared_ptr<const Catalog> Merge(const Catalog& files, const std::vector<TopicCampaign>& topic);

  const Campaign* Find(std::string_view id) const;
  size_t size() const { return campaigns_.size(); }
  const std::unordered_map<std::string, Campaign>& campaigns() const { return campaigns_; }
  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  std::unordered_map<std::string, Campaign> campaigns_;
};

}  // namespace pv
