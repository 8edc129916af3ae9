// The campaign catalog: one YAML file per campaign under a directory (any depth), template bodies
// inline or in files beside it. Ingest reads it to authorise and validate triggers; the dispatcher
// reads it to render and route. Loading validates everything and reports every problem with the
// file and field it is in; a catalog that fails to load is never half-used.
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
#include <unordered_map>
#include <vector>

#include "pv/topics.hpp"

namespace pv {

class CatalogError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct SendWindow {
  int start_minute = 0;      // minutes after local midnight, inclusive
  int end_minute = 0;        // exclusive; end < start means the window spans midnight
  std::uint8_t days = 0x7f;  // bit 0 = Monday ... bit 6 = Sunday: days on which the window opens
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
  std::string source_file;
};

class Catalog {
 public:
  // Loads every *.yaml / *.yml file below `dir`. Throws CatalogError listing every problem found.
  static std::shared_ptr<const Catalog> LoadDirectory(const std::string& dir);

  const Campaign* Find(std::string_view id) const;
  size_t size() const { return campaigns_.size(); }
  const std::unordered_map<std::string, Campaign>& campaigns() const { return campaigns_; }
  const std::string& directory() const { return directory_; }

 private:
  std::string directory_;
  std::unordered_map<std::string, Campaign> campaigns_;
};

}  // namespace pv
