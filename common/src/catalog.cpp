#include "pv/catalog.hpp"

#include <fmt/format.h>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <set>

#include "catalog_parse.hpp"
#include "pv/files.hpp"
#include "pv/validate.hpp"

namespace pv {
namespace fs = std::filesystem;

namespace catalog_internal {

void Problems::Add(const std::string& where, const std::string& field, const std::string& message) {
  list.push_back(fmt::format("{}: {}: {}", where, field, message));
}

std::int64_t ModifiedMs(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

}  // namespace catalog_internal

bool IsCampaignId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_';
  });
}

namespace {

using catalog_internal::Problems;

std::optional<int> ParseClock(const std::string& s) {
  // "HH:MM", 00:00 to 24:00
  if (s.size() != 5 || s[2] != ':') return std::nullopt;
  for (size_t i : {0U, 1U, 3U, 4U}) {
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  }
  int h = (s[0] - '0') * 10 + (s[1] - '0');
  int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 24 || m > 59 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

std::optional<int> ParseDay(std::string day) {
  std::transform(day.begin(), day.end(), day.begin(), [](unsigned char c) { return std::tolower(c); });
  // The name or an abbreviation of it ("mon", "tues", "thurs"). Not the other way round: a name
  // that merely starts with a day ("mon-fri", "monkey") is not that day.
  static const char* kDays[] = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"};
  for (int i = 0; i < 7; ++i) {
    if (day.size() >= 3 && std::string_view(kDays[i]).substr(0, day.size()) == day) return i;
  }
  return std::nullopt;
}

const std::set<std::string>& AllowedFields(Channel channel) {
  static const std::set<std::string> kFields[] = {{"from", "reply_to", "subject", "html", "text"},  // email
                                                  {"body"},                                         // sms
                                                  {"title", "body", "sound", "badge", "data"}};     // push
  return kFields[static_cast<int>(channel)];
}

void ParseTemplate(const std::string& file, const fs::path* files_dir, const std::string& locale,
                   const YAML::Node& node, Channel channel, Template& out, Problems& problems,
                   std::int64_t* newest_file_ms) {
  std::string where = fmt::format("templates.{}", locale);
  const auto& allowed = AllowedFields(channel);
  if (!node.IsMap()) {
    problems.Add(file, where, "must be a mapping of template fields");
    return;
  }
  for (const auto& item : node) {
    std::string key = item.first.as<std::string>();
    std::string field = key;
    bool from_file = false;
    if (key.size() > 5 && key.substr(key.size() - 5) == "_file") {
      field = key.substr(0, key.size() - 5);
      from_file = true;
    }
    if (allowed.count(field) == 0) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      problems.Add(file, fmt::format("{}.{}", where, key),
                   fmt::format("unknown field for a {} campaign (expected {})", ChannelName(channel), names));
      continue;
    }
    if (field == "data") {
      if (from_file || !item.second.IsMap()) {
        problems.Add(file, fmt::format("{}.data", where), "must be a mapping of string values");
        continue;
      }
      for (const auto& d : item.second) {
        if (!d.second.IsScalar()) {
          problems.Add(file, fmt::format("{}.data.{}", where, d.first.as<std::string>()), "must be a string");
          continue;
        }
        out.data[d.first.as<std::string>()] = d.second.as<std::string>();
      }
      continue;
    }
    if (!item.second.IsScalar()) {
      problems.Add(file, fmt::format("{}.{}", where, key), "must be a string");
      continue;
    }
    if (from_file && files_dir == nullptr) {
      problems.Add(
          file, fmt::format("{}.{}", where, key),
          fmt::format("a campaign record carries its templates inline ({}), never a file name", field));
    } else if (from_file) {
      fs::path path = *files_dir / item.second.as<std::string>();
      try {
        std::optional<std::string> text = ReadFile(path.string());
        if (!text) throw std::runtime_error("cannot read " + path.string());
        out.fields[field] = std::move(*text);
        if (newest_file_ms != nullptr)
          *newest_file_ms = std::max(*newest_file_ms, catalog_internal::ModifiedMs(path));
      } catch (const std::exception&) {
        problems.Add(file, fmt::format("{}.{}", where, key),
                     fmt::format("cannot read template file {}", path.string()));
      }
    } else {
      out.fields[field] = item.second.as<std::string>();
    }
  }
  auto require = [&](const char* field) {
    if (out.fields.count(field) == 0 || out.fields[field].empty()) {
      problems.Add(file, fmt::format("{}.{}", where, field), "is required");
    }
  };
  if (channel != Channel::kEmail) return require("body");
  require("from");
  require("subject");
  if (out.fields.count("html") == 0 && out.fields.count("text") == 0) {
    problems.Add(file, where, "needs html or text (or both)");
  }
}

// send_window: {start: "08:00", end: "21:00", days: [mon, tue]}.
void ParseSendWindow(const YAML::Node& w, const std::string& file, Campaign& c, Problems& problems) {
  if (!w.IsMap()) {
    problems.Add(file, "send_window",
                 "must be a mapping such as {start: \"08:00\", end: \"21:00\", days: [mon, tue]}");
    return;
  }
  auto minute = [&](const char* key) {
    YAML::Node n = w[key];
    int m = n && n.IsScalar() ? ParseClock(n.as<std::string>()).value_or(-1) : -1;
    if (m < 0) problems.Add(file, fmt::format("send_window.{}", key), "must be a local time HH:MM");
    return m;
  };
  SendWindow window;
  int start = minute("start");
  int end = minute("end");
  if (start >= 0 && end >= 0) {
    window.start_minute = start;
    window.end_minute = end;
    if (start == end) problems.Add(file, "send_window", "start and end must differ");
  }
  if (YAML::Node days = w["days"]; days && !days.IsNull()) {
    window.days = 0;
    if (!days.IsSequence()) {
      problems.Add(file, "send_window.days", "must be a list such as [mon, tue]");
    } else {
      for (const auto& d : days) {
        if (!d.IsScalar()) {
          problems.Add(file, "send_window.days", "must be a list of day names such as [mon, tue]");
        } else if (auto day = ParseDay(d.as<std::string>())) {
          window.days = static_cast<std::uint8_t>(window.days | (1U << *day));
        } else {
          problems.Add(file, "send_window.days", fmt::format("'{}' is not a day", d.as<std::string>()));
        }
      }
    }
  }
  c.send_window = window;
}

}  // namespace

void catalog_internal::ParseCampaign(const YAML::Node& root, const std::string& file,
                                     const fs::path* files_dir, Campaign& c, Problems& problems,
                                     std::int64_t* newest_file_ms) {
  if (!root.IsMap()) {
    problems.Add(file, "(file)", "must be a mapping");
    return;
  }
  static const std::set<std::string> kKnown = {
      "id",      "project", "name",           "channel",  "provider",    "fallback_provider",
      "enabled", "deleted", "default_locale", "timezone", "send_window", "templates"};
  for (const auto& item : root) {
    auto key = item.first.as<std::string>();
    if (kKnown.count(key) == 0) problems.Add(file, key, "unknown field");
  }
  auto str = [&](const char* key, bool required) -> std::string {
    YAML::Node n = root[key];
    if (!n || n.IsNull()) {
      if (required) problems.Add(file, key, "is required");
      return {};
    }
    if (!n.IsScalar()) {
      problems.Add(file, key, "must be a string");
      return {};
    }
    return n.as<std::string>();
  };
  auto boolean = [&](const char* key, bool def) {
    YAML::Node n = root[key];
    if (!n || n.IsNull()) return def;
    try {
      return n.as<bool>();
    } catch (const YAML::Exception&) {
      problems.Add(file, key, "must be true or false");
      return def;
    }
  };
  c.id = str("id", true);
  if (!c.id.empty() && !IsCampaignId(c.id)) {
    problems.Add(file, "id", "must be 1-64 letters, digits, '-' or '_'");
  }
  c.project = str("project", true);
  if (!c.project.empty() && !validate::IsProjectName(c.project)) {
    problems.Add(file, "project",
                 fmt::format("'{}' is not a project name: {}", c.project, validate::kProjectNameRule));
  }
  c.name = str("name", false);
  std::string channel = str("channel", true);
  // Without a known channel the templates' fields cannot be checked (they depend on it).
  bool channel_known = !channel.empty() && ParseChannel(channel, c.channel);
  if (!channel.empty() && !channel_known) {
    problems.Add(file, "channel", fmt::format("'{}' is not one of email, text, push", channel));
  }
  c.provider = str("provider", true);
  c.fallback_provider = str("fallback_provider", false);
  c.enabled = boolean("enabled", true);
  c.deleted = boolean("deleted", false);
  c.default_locale = str("default_locale", false);
  if (!c.default_locale.empty() && !validate::IsLanguageTag(c.default_locale)) {
    problems.Add(file, "default_locale", fmt::format("'{}' is not a language tag", c.default_locale));
  }
  std::string tz = str("timezone", false);
  if (!tz.empty()) {
    if (!validate::IsTimeZone(tz)) {
      problems.Add(file, "timezone", fmt::format("'{}' is not a known IANA time zone", tz));
    }
    c.timezone = tz;
  }
  if (YAML::Node w = root["send_window"]; w && !w.IsNull()) ParseSendWindow(w, file, c, problems);
  YAML::Node templates = root["templates"];
  if (!templates || !templates.IsMap() || templates.size() == 0) {
    problems.Add(file, "templates", "at least one locale's template is required");
    return;
  }
  for (const auto& item : templates) {
    std::string locale = item.first.as<std::string>();
    if (!validate::IsLanguageTag(locale)) {
      problems.Add(file, "templates." + locale, "is not a language tag");
      continue;
    }
    Template t;
    if (channel_known)
      ParseTemplate(file, files_dir, locale, item.second, c.channel, t, problems, newest_file_ms);
    c.templates.emplace_back(locale, std::move(t));
  }
  if (!c.default_locale.empty()) {
    bool found = std::any_of(c.templates.begin(), c.templates.end(),
                             [&](const auto& t) { return t.first == c.default_locale; });
    if (!found) problems.Add(file, "default_locale", "has no template");
  }
}

namespace {

// Loads the given files into `catalog`; throws CatalogError (headed by `label`) listing every problem.
void LoadFiles(const std::string& label, const std::vector<fs::path>& files,
               std::unordered_map<std::string, Campaign>& campaigns) {
  Problems problems;
  for (const auto& file : files) {
    Campaign c;
    size_t before = problems.list.size();
    std::int64_t version = catalog_internal::ModifiedMs(file);
    try {
      YAML::Node root = YAML::LoadFile(file.string());
      fs::path dir = file.parent_path();
      catalog_internal::ParseCampaign(root, file.string(), &dir, c, problems, &version);
    } catch (const YAML::Exception& e) {
      // A file that does not parse, or a value of an unexpected shape the checks do not name.
      problems.Add(file.string(), "(file)", e.what());
    }
    if (problems.list.size() != before || c.id.empty()) continue;
    c.source_file = file.string();
    c.updated_at_ms = std::max<std::int64_t>(version, 0);
    auto [it, inserted] = campaigns.emplace(c.id, c);
    if (!inserted) {
      problems.Add(file.string(), "id",
                   fmt::format("'{}' is also defined in {}", c.id, it->second.source_file));
    }
  }
  if (!problems.list.empty()) {
    std::string message = fmt::format("catalog {}: {} problem(s):", label, problems.list.size());
    for (const auto& p : problems.list) message += "\n  " + p;
    throw CatalogError(message);
  }
}

}  // namespace

bool TopicCampaignSupersedes(const TopicCampaign& candidate, const TopicCampaign& current) {
  if (candidate.updated_at_ms != current.updated_at_ms)
    return candidate.updated_at_ms > current.updated_at_ms;
  return candidate.campaign == nullptr || current.campaign != nullptr;
}

std::shared_ptr<const Catalog> Catalog::LoadDirectory(const std::string& dir) {
  auto catalog = std::make_shared<Catalog>();
  catalog->directory_ = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw CatalogError(fmt::format("catalog {}: not a directory", dir));
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    auto ext = it->path().extension().string();
    if (ext == ".yaml" || ext == ".yml") files.push_back(it->path());
  }
  if (ec) throw CatalogError(fmt::format("catalog {}: {}", dir, ec.message()));
  std::sort(files.begin(), files.end());
  LoadFiles(dir, files, catalog->campaigns_);
  return catalog;
}

std::shared_ptr<const Catalog> Catalog::LoadPath(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return LoadDirectory(path);
  if (!fs::is_regular_file(path, ec)) {
    throw CatalogError(fmt::format("catalog {}: neither a campaign file nor a directory", path));
  }
  auto catalog = std::make_shared<Catalog>();
  catalog->directory_ = fs::path(path).parent_path().string();
  LoadFiles(path, {fs::path(path)}, catalog->campaigns_);
  return catalog;
}

std::shared_ptr<const Catalog> Catalog::Of(std::string directory, std::vector<Campaign> campaigns) {
  auto catalog = std::make_shared<Catalog>();
  catalog->directory_ = std::move(directory);
  for (auto& c : campaigns) {
    std::string id = c.id;
    catalog->campaigns_.insert_or_assign(std::move(id), std::move(c));
  }
  return catalog;
}

std::shared_ptr<const Catalog> Catalog::Merge(const Catalog& files, const std::vector<TopicCampaign>& topic) {
  auto catalog = std::make_shared<Catalog>();
  catalog->directory_ = files.directory_;
  catalog->campaigns_ = files.campaigns_;
  for (const auto& state : topic) {
    auto it = catalog->campaigns_.find(state.id);
    // A tie goes to the topic: the record was written deliberately, for every replica.
    if (it != catalog->campaigns_.end() && it->second.updated_at_ms > state.updated_at_ms) continue;
    if (state.campaign == nullptr) {
      if (it != catalog->campaigns_.end()) catalog->campaigns_.erase(it);
    } else {
      catalog->campaigns_.insert_or_assign(state.id, *state.campaign);
    }
  }
  return catalog;
}

const Campaign* Catalog::Find(std::string_view id) const {
  auto it = campaigns_.find(std::string(id));
  return it == campaigns_.end() ? nullptr : &it->second;
}

}  // namespace pv
