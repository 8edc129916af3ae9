#include "pv/campaign_records.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "catalog_parse.hpp"
#include "pv/json.hpp"
#include "pv/strings.hpp"

namespace pv {
namespace {

constexpr const char* kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

std::string Clock(int minutes) {
  return fmt::format("{:02}:{:02}", minutes / 60, minutes % 60);
}

// A JSON value as the YAML tree a campaign file would give. Nesting is already bounded by the parse
// (kMaxCampaignRecordDepth), so the recursion is too; every object and list is bounded here.
bool ToYaml(const rapidjson::Value& v, YAML::Node& out, std::string& error) {
  if (v.IsObject()) {
    if (v.MemberCount() > kMaxCampaignRecordMembers) {
      error = fmt::format("an object with {} members (at most {}: locales, data entries)", v.MemberCount(),
                          kMaxCampaignRecordMembers);
      return false;
    }
    out = YAML::Node(YAML::NodeType::Map);
    for (const auto& m : v.GetObject()) {
      YAML::Node child;
      if (!ToYaml(m.value, child, error)) return false;
      out[std::string(m.name.GetString(), m.name.GetStringLength())] = child;
    }
  } else if (v.IsArray()) {
    if (v.Size() > kMaxCampaignRecordMembers) {
      error = fmt::format("a list of {} items (at most {})", v.Size(), kMaxCampaignRecordMembers);
      return false;
    }
    out = YAML::Node(YAML::NodeType::Sequence);
    for (const auto& item : v.GetArray()) {
      YAML::Node child;
      if (!ToYaml(item, child, error)) return false;
      out.push_back(child);
    }
  } else if (v.IsString()) {
    out = YAML::Node(std::string(v.GetString(), v.GetStringLength()));
  } else if (v.IsBool()) {
    out = YAML::Node(v.GetBool() ? "true" : "false");
  } else if (v.IsInt64()) {
    out = YAML::Node(std::to_string(v.GetInt64()));
  } else if (v.IsUint64()) {
    out = YAML::Node(std::to_string(v.GetUint64()));
  } else if (v.IsNumber()) {
    out = YAML::Node(fmt::format("{}", v.GetDouble()));
  } else {
    out = YAML::Node(YAML::NodeType::Null);
  }
  return true;
}

}  // namespace

std::string CampaignRecord(const Campaign& c, std::int64_t updated_at_ms, std::string_view applied_from) {
  std::string out = fmt::format("{{\"v\":{},\"id\":", kCampaignRecordVersion);
  AppendJsonString(out, c.id);
  out += fmt::format(",\"updated_at_ms\":{},\"applied_from\":", updated_at_ms);
  AppendJsonString(out, applied_from);
  out += ",\"campaign\":{\"id\":";
  AppendJsonString(out, c.id);
  out += ",\"project\":";
  AppendJsonString(out, c.project);
  out += ",\"name\":";
  AppendJsonString(out, c.name);
  out += fmt::format(",\"channel\":\"{}\",\"provider\":", ChannelName(c.channel));
  AppendJsonString(out, c.provider);
  if (!c.fallback_provider.empty()) {
    out += ",\"fallback_provider\":";
    AppendJsonString(out, c.fallback_provider);
  }
  out += fmt::format(",\"enabled\":{},\"deleted\":{}", c.enabled, c.deleted);
  if (!c.default_locale.empty()) {
    out += ",\"default_locale\":";
    AppendJsonString(out, c.default_locale);
  }
  out += ",\"timezone\":";
  AppendJsonString(out, c.timezone);
  if (c.send_window) {
    out += fmt::format(R"(,"send_window":{{"start":"{}","end":"{}","days":[)",
                       Clock(c.send_window->start_minute), Clock(c.send_window->end_minute));
    bool first = true;
    for (int day = 0; day < 7; ++day) {
      if ((c.send_window->days & (1U << day)) == 0) continue;
      out += fmt::format("{}\"{}\"", first ? "" : ",", kDayNames[day]);
      first = false;
    }
    out += "]}";
  }
  out += ",\"templates\":{";
  for (size_t i = 0; i < c.templates.size(); ++i) {
    const auto& [locale, t] = c.templates[i];
    if (i > 0) out += ',';
    AppendJsonString(out, locale);
    out += ':';
    std::string fields;
    AppendJsonObject(fields, t.fields);
    if (!t.data.empty()) {
      fields.pop_back();
      fields += fields.size() > 1 ? ",\"data\":" : "\"data\":";
      AppendJsonObject(fields, t.data);
      fields += '}';
    }
    out += fields;
  }
  return out + "}}}";
}

bool ParseCampaignRecord(std::string_view value, std::string_view topic, Campaign& out, std::string& error) {
  auto fail = [&error](std::string why) {
    error = std::move(why);
    return false;
  };
  if (value.size() > kMaxCampaignRecordBytes) {
    return fail(fmt::format("{} bytes, more than the {} a campaign record may have", value.size(),
                            kMaxCampaignRecordBytes));
  }
  rapidjson::Document doc;
  if (std::string parse_error = ParseLimited(doc, value, kMaxCampaignRecordDepth); !parse_error.empty()) {
    return fail("not a campaign record: " + parse_error);
  }
  if (!doc.IsObject()) return fail("not a campaign record: not a JSON object");
  const rapidjson::Value* version = FindMember(doc, "v");
  if (version == nullptr || !version->IsInt()) return fail("not a campaign record: no schema version \"v\"");
  if (version->GetInt() != kCampaignRecordVersion) {
    return fail(fmt::format("schema version {}; this binary reads version {} (a newer pvctl wrote it?)",
                            version->GetInt(), kCampaignRecordVersion));
  }
  std::string id(FindString(doc, "id").value_or(""));
  if (!IsCampaignId(id)) return fail("id must be 1-64 letters, digits, '-' or '_'");
  const rapidjson::Value* updated = FindMember(doc, "updated_at_ms");
  if (updated == nullptr || !updated->IsInt64() || updated->GetInt64() < 0) {
    return fail("updated_at_ms must be a number of milliseconds");
  }
  const rapidjson::Value* campaign = FindMember(doc, "campaign");
  if (campaign == nullptr || !campaign->IsObject()) return fail("campaign must be an object");
  YAML::Node root;
  if (!ToYaml(*campaign, root, error)) return false;
  std::string where = fmt::format("{}:{}", topic, id);
  catalog_internal::Problems problems;
  Campaign c;
  try {
    catalog_internal::ParseCampaign(root, where, nullptr, c, problems, nullptr);
  } catch (const YAML::Exception& e) {
    problems.Add(where, "(record)", e.what());
  }
  if (problems.list.empty() && c.id != id) {
    problems.Add(where, "campaign.id", fmt::format("'{}' differs from the record's id", c.id));
  }
  if (!problems.list.empty()) {
    error.clear();
    for (const auto& p : problems.list) error += (error.empty() ? "" : "; ") + p;
    return false;
  }
  c.source_file = std::move(where);
  c.updated_at_ms = updated->GetInt64();
  c.from_topic = true;
  c.applied_from = std::string(FindString(doc, "applied_from").value_or(""));
  out = std::move(c);
  return true;
}

bool ParseCampaignState(const CampaignRecordView& record, std::string_view topic, TopicCampaign& out,
                        std::string& error) {
  if (!IsCampaignId(record.record_key)) {
    error = "the record key is not a campaign id (1-64 letters, digits, '-' or '_')";
    return false;
  }
  out = TopicCampaign{};
  out.id = std::string(record.record_key);
  if (!record.value) return TombstoneVersion(record, kCampaignUpdatedAtHeader, out.updated_at_ms, error);
  auto campaign = std::make_shared<Campaign>();
  if (!ParseCampaignRecord(*record.value, topic, *campaign, error)) return false;
  if (campaign->id != record.record_key) {
    // Compaction keeps the last record per record key: a record filed under another key would
    // outlive the campaign's own removal.
    error =
        fmt::format("record key {} does not match the id {} in its value", record.record_key, campaign->id);
    return false;
  }
  out.updated_at_ms = campaign->updated_at_ms;
  out.campaign = std::move(campaign);
  return true;
}

bool ParseCampaignMessage(const rd_kafka_message_s* message, std::string_view topic, TopicCampaign& out,
                          std::string& error) {
  return ParseStateMessage(message, kCampaignUpdatedAtHeader, [&](const CampaignRecordView& view) {
    return ParseCampaignState(view, topic, out, error);
  });
}

std::vector<std::string> CampaignDifferences(const Campaign& a, const Campaign& b) {
  std::vector<std::string> out;
  auto check = [&](bool same, const char* field) {
    if (!same) out.emplace_back(field);
  };
  check(a.id == b.id, "id");
  check(a.project == b.project, "project");
  check(a.name == b.name, "name");
  check(a.channel == b.channel, "channel");
  check(a.provider == b.provider, "provider");
  check(a.fallback_provider == b.fallback_provider, "fallback_provider");
  check(a.enabled == b.enabled, "enabled");
  check(a.deleted == b.deleted, "deleted");
  check(a.default_locale == b.default_locale, "default_locale");
  check(a.timezone == b.timezone, "timezone");
  check(a.send_window == b.send_window, "send_window");
  auto find = [](const Campaign& c, const std::string& locale) -> const Template* {
    for (const auto& [l, t] : c.templates) {
      if (l == locale) return &t;
    }
    return nullptr;
  };
  auto compare_maps = [&](const std::map<std::string, std::string>& x,
                          const std::map<std::string, std::string>& y, const std::string& prefix) {
    std::set<std::string> names;
    for (const auto& [n, v] : x) names.insert(n);
    for (const auto& [n, v] : y) names.insert(n);
    for (const auto& n : names) {
      auto ix = x.find(n);
      auto iy = y.find(n);
      if (ix == x.end() || iy == y.end() || ix->second != iy->second) out.push_back(prefix + n);
    }
  };
  std::vector<std::string> locales;
  for (const auto& [l, t] : a.templates) locales.push_back(l);
  for (const auto& [l, t] : b.templates) {
    if (find(a, l) == nullptr) locales.push_back(l);
  }
  bool each_the_same = true;
  for (const auto& locale : locales) {
    const Template* ta = find(a, locale);
    const Template* tb = find(b, locale);
    size_t before = out.size();
    if (ta == nullptr || tb == nullptr) {
      out.push_back("templates." + locale);
    } else {
      compare_maps(ta->fields, tb->fields, "templates." + locale + ".");
      compare_maps(ta->data, tb->data, "templates." + locale + ".data.");
    }
    each_the_same = each_the_same && out.size() == before;
  }
  // The first locale is the last resort of locale choice, so the order is part of what is served.
  if (each_the_same) {
    bool same_order = a.templates.size() == b.templates.size() &&
                      std::equal(a.templates.begin(), a.templates.end(), b.templates.begin(),
                                 [](const auto& x, const auto& y) { return x.first == y.first; });
    check(same_order, "templates");
  }
  return out;
}

}  // namespace pv
