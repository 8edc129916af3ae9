// Campaign records (pv.campaigns) and the merge of a replica's files with the topic: a record decodes
// to the campaign it was made of, every bad record is refused with a reason, and the newest version
// of a campaign wins in both directions (topic over an older file, file over an older record).
#include "pv/campaign_records.hpp"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/time.h>

#include <filesystem>

#include "pv/json.hpp"
#include "test_util.hpp"

namespace pv {
namespace {

namespace fs = std::filesystem;
using ::pv::testing::TempDir;
using ::pv::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

fs::path DemoDir() {
  return fs::weakly_canonical(fs::path(__FILE__).parent_path() / ".." / ".." / "catalog" / "demo");
}

// Sets a file's modification time to `ms` (Unix milliseconds).
void SetModified(const std::string& path, std::int64_t ms) {
  timeval times[2];
  times[0].tv_sec = times[1].tv_sec = ms / 1000;
  times[0].tv_usec = times[1].tv_usec = (ms % 1000) * 1000;
  ASSERT_EQ(::utimes(path.c_str(), times), 0) << path;
}

// One campaign from YAML text, loaded as a file would be.
Campaign Load(const std::string& yaml) {
  TempDir dir;
  WriteFile(dir / "c.yaml", yaml);
  auto catalog = Catalog::LoadDirectory(dir.path().string());
  EXPECT_EQ(catalog->size(), 1U);
  return catalog->campaigns().begin()->second;
}

constexpr const char* kEmail = R"(id: "e1"
project: demo
name: Order shipped
channel: email
provider: log
fallback_provider: smtp
enabled: false
default_locale: es
timezone: Europe/Madrid
send_window: {start: "22:00", end: "24:00", days: [fri, sun]}
templates:
  es: {from: "a@b.co", subject: "Hola {{user.first_name}}", html: "<p>\"x\" &amp; \u00e9\n</p>"}
  en: {from: "a@b.co", reply_to: "r@b.co", subject: "Hi", text: "t"}
)";

constexpr const char* kPush = R"(id: p-1
project: other
channel: push
provider: fcm
templates:
  en: {title: "T", body: "B", badge: "{{event.n}}", sound: default, data: {screen: cart, id: "{{event.id}}"}}
)";

std::string Record(const Campaign& c, std::int64_t version = 1000) {
  return CampaignRecord(c, version, "host:/path/c.yaml");
}

// ---- the record format ----

TEST(CampaignRecord, EveryDemoCampaignDecodesToWhatItWasMadeOf) {
  auto demo = Catalog::LoadDirectory(DemoDir().string());
  ASSERT_EQ(demo->size(), 3U);
  for (const auto& [id, c] : demo->campaigns()) {
    std::string value = CampaignRecord(c, 1767000000123, "ops-1:/srv/catalog/x.yaml");
    Campaign back;
    std::string error;
    ASSERT_TRUE(ParseCampaignRecord(value, "pv.campaigns", back, error)) << id << ": " << error;
    EXPECT_THAT(CampaignDifferences(c, back), IsEmpty()) << value;
    EXPECT_EQ(back.updated_at_ms, 1767000000123);
    EXPECT_TRUE(back.from_topic);
    EXPECT_EQ(back.applied_from, "ops-1:/srv/catalog/x.yaml");
    EXPECT_EQ(back.source_file, "pv.campaigns:" + id);
    // The template files are inlined: the record names no file.
    EXPECT_EQ(value.find("_file"), std::string::npos) << value;
  }
}

TEST(CampaignRecord, EveryFieldSurvivesTheRoundTrip) {
  for (const char* yaml : {kEmail, kPush}) {
    Campaign c = Load(yaml);
    Campaign back;
    std::string error;
    ASSERT_TRUE(ParseCampaignRecord(Record(c), "t", back, error)) << error;
    EXPECT_THAT(CampaignDifferences(c, back), IsEmpty()) << Record(c);
    EXPECT_EQ(back.fallback_provider, c.fallback_provider);
    ASSERT_EQ(back.send_window.has_value(), c.send_window.has_value());
    if (c.send_window) {
      EXPECT_EQ(back.send_window->end_minute, 24 * 60);
      EXPECT_EQ(back.send_window->days, (1 << 4) | (1 << 6));
    }
    // The locales' order is kept: the first is the last resort of locale choice.
    ASSERT_EQ(back.templates.size(), c.templates.size());
    EXPECT_EQ(back.templates[0].first, c.templates[0].first);
  }
}

TEST(CampaignRecord, RefusesEveryBadRecordWithAReason) {
  Campaign c = Load(kPush);
  std::string good = Record(c);
  auto refused = [](const std::string& value) {
    Campaign out;
    std::string error;
    EXPECT_FALSE(ParseCampaignRecord(value, "pv.campaigns", out, error)) << value;
    EXPECT_FALSE(error.empty());
    return error;
  };
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string v = good;
    size_t at = v.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return v.replace(at, from.size(), to);
  };
  EXPECT_THAT(refused("not json"), HasSubstr("not a campaign record"));
  EXPECT_THAT(refused("[1,2]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(refused(replace("\"v\":1,", "")), HasSubstr("schema version"));
  EXPECT_THAT(refused(replace("\"v\":1,", "\"v\":2,")), HasSubstr("schema version 2"));
  EXPECT_THAT(refused(replace("\"id\":\"p-1\",\"updated", "\"id\":\"a b\",\"updated")),
              HasSubstr("id must be"));
  EXPECT_THAT(refused(replace("\"updated_at_ms\":1000", "\"updated_at_ms\":-1")), HasSubstr("updated_at_ms"));
  EXPECT_THAT(refused(R"({"v":1,"id":"x","updated_at_ms":1,"campaign":[]})"),
              HasSubstr("campaign must be an object"));
  // The campaign itself obeys the catalog's rules.
  EXPECT_THAT(refused(replace("\"channel\":\"push\"", "\"channel\":\"fax\"")), HasSubstr("channel"));
  EXPECT_THAT(refused(replace("\"body\":\"B\",", "")),
              HasSubstr("pv.campaigns:p-1: templates.en.body: is required"));
  EXPECT_THAT(refused(replace("\"provider\":\"fcm\"", "\"provider\":\"fcm\",\"colour\":\"red\"")),
              HasSubstr("colour: unknown field"));
  EXPECT_THAT(refused(replace("\"campaign\":{\"id\":\"p-1\"", "\"campaign\":{\"id\":\"p-2\"")),
              HasSubstr("differs from the record's id"));
  // A record never makes a replica read a file.
  EXPECT_THAT(refused(replace("\"body\":\"B\"", "\"body_file\":\"/etc/passwd\"")),
              HasSubstr("carries its templates inline"));
  // Limits: size, members (locales, data entries), nesting.
  EXPECT_THAT(refused(std::string(kMaxCampaignRecordBytes + 1, ' ')), HasSubstr("bytes"));
  std::string many = "{";
  for (size_t i = 0; i <= kMaxCampaignRecordMembers; ++i)
    many += fmt::format("{}\"k{}\":\"v\"", i ? "," : "", i);
  EXPECT_THAT(refused(replace("\"data\":{", "\"data\":" + many + ",")), HasSubstr("members"));
  EXPECT_THAT(
      refused(replace("\"sound\":\"default\"", "\"sound\":" + std::string(20, '[') + std::string(20, ']'))),
      HasSubstr("nested deeper"));
  EXPECT_THAT(refused(std::string(1 << 20, '[')), HasSubstr("nested deeper"));
}

TEST(CampaignRecord, StatesFromRecordsAndTombstones) {
  Campaign c = Load(kPush);
  std::string value = Record(c, 5000);
  TopicCampaign state;
  std::string error;
  ASSERT_TRUE(ParseCampaignState({"p-1", value, std::nullopt, 1}, "t", state, error)) << error;
  EXPECT_EQ(state.id, "p-1");
  EXPECT_EQ(state.updated_at_ms, 5000);
  ASSERT_NE(state.campaign, nullptr);
  // Filed under another key: compaction would keep it after the campaign's own removal.
  EXPECT_FALSE(ParseCampaignState({"p-2", value, std::nullopt, 1}, "t", state, error));
  EXPECT_THAT(error, HasSubstr("does not match"));
  EXPECT_FALSE(ParseCampaignState({"", std::nullopt, "1", 1}, "t", state, error));
  EXPECT_FALSE(ParseCampaignState({std::string(65, 'x'), std::nullopt, "1", 1}, "t", state, error));

  ASSERT_TRUE(ParseCampaignState({"p-1", std::nullopt, "7000", 1}, "t", state, error)) << error;
  EXPECT_EQ(state.campaign, nullptr);
  EXPECT_EQ(state.updated_at_ms, 7000);
  // A tombstone from elsewhere (no header) is versioned by the record's timestamp.
  ASSERT_TRUE(ParseCampaignState({"p-1", std::nullopt, std::nullopt, 8000}, "t", state, error));
  EXPECT_EQ(state.updated_at_ms, 8000);
  EXPECT_FALSE(ParseCampaignState({"p-1", std::nullopt, "-5", 1}, "t", state, error));
  EXPECT_THAT(error, HasSubstr("pv-updated-at"));
}

TEST(CampaignRecord, NewestStateWinsOnTheTopicAndATieNeverRevives) {
  auto campaign = std::make_shared<Campaign>(Load(kPush));
  TopicCampaign live{"p-1", 100, campaign};
  TopicCampaign removed{"p-1", 100, nullptr};
  TopicCampaign newer{"p-1", 101, campaign};
  EXPECT_TRUE(TopicCampaignSupersedes(newer, removed));
  EXPECT_FALSE(TopicCampaignSupersedes(removed, newer));
  EXPECT_TRUE(TopicCampaignSupersedes(removed, live));   // a tie: the removal
  EXPECT_FALSE(TopicCampaignSupersedes(live, removed));  // ... and a campaign does not come back on a tie
  EXPECT_TRUE(TopicCampaignSupersedes(live, live));      // the later record of equal standing
  EXPECT_EQ(NextCampaignVersion(0, 50), 50);
  EXPECT_EQ(NextCampaignVersion(100, 50), 101);  // a clock behind still writes a newer version
}

// ---- the merge of catalog_dir with the topic ----

TEST(CatalogMerge, TheNewerVersionWinsWhicheverSourceHoldsIt) {
  TempDir dir;
  WriteFile(dir / "p.yaml", kPush);
  WriteFile(dir / "e.yaml", kEmail);
  SetModified(dir / "p.yaml", 10'000);
  SetModified(dir / "e.yaml", 10'000);
  auto files = Catalog::LoadDirectory(dir.path().string());
  ASSERT_EQ(files->Find("p-1")->updated_at_ms, 10'000);

  auto edited = std::make_shared<Campaign>(*files->Find("p-1"));
  edited->provider = "apns";
  edited->from_topic = true;
  auto topic_only = std::make_shared<Campaign>(*files->Find("p-1"));
  topic_only->id = "t-1";

  // An edit applied after the file was written wins; a campaign only on the topic is served.
  auto merged = Catalog::Merge(*files, {{"p-1", 20'000, edited}, {"t-1", 5, topic_only}});
  EXPECT_EQ(merged->Find("p-1")->provider, "apns");
  EXPECT_TRUE(merged->Find("p-1")->from_topic);
  ASSERT_NE(merged->Find("t-1"), nullptr);
  EXPECT_NE(merged->Find("e1"), nullptr);  // only in the files
  EXPECT_EQ(merged->directory(), files->directory());

  // A file written after the record wins over it.
  merged = Catalog::Merge(*files, {{"p-1", 9'999, edited}});
  EXPECT_EQ(merged->Find("p-1")->provider, "fcm");
  // A tie goes to the topic.
  merged = Catalog::Merge(*files, {{"p-1", 10'000, edited}});
  EXPECT_EQ(merged->Find("p-1")->provider, "apns");

  // A removal hides an older file; a file newer than the removal is served again.
  merged = Catalog::Merge(*files, {{"p-1", 10'001, nullptr}, {"e1", 9'000, nullptr}, {"gone", 1, nullptr}});
  EXPECT_EQ(merged->Find("p-1"), nullptr);
  EXPECT_NE(merged->Find("e1"), nullptr);
  EXPECT_EQ(merged->size(), 1U);
}

// A file campaign's version is the newest of its YAML file and the template files it reads, so an
// edit of a template alone counts as an edit of the campaign.
TEST(CatalogMerge, AFilesVersionCountsItsTemplateFiles) {
  TempDir dir;
  WriteFile(dir / "c.yaml",
            "id: c\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.co, subject: s, html_file: t/en.html}\n");
  WriteFile(dir / "t/en.html", "<p>hi</p>");
  SetModified(dir / "c.yaml", 1'000'000);
  SetModified(dir / "t/en.html", 2'000'500);
  EXPECT_EQ(Catalog::LoadDirectory(dir.path().string())->Find("c")->updated_at_ms, 2'000'500);
  SetModified(dir / "c.yaml", 3'000'000);
  EXPECT_EQ(Catalog::LoadDirectory(dir.path().string())->Find("c")->updated_at_ms, 3'000'000);
}

TEST(CatalogLoadPath, OneFileOrADirectory) {
  TempDir dir;
  WriteFile(dir / "a/p.yaml", kPush);
  WriteFile(dir / "e.yaml", kEmail);
  EXPECT_EQ(Catalog::LoadPath(dir.path().string())->size(), 2U);
  auto one = Catalog::LoadPath(dir / "a/p.yaml");
  ASSERT_EQ(one->size(), 1U);
  EXPECT_NE(one->Find("p-1"), nullptr);
  EXPECT_THROW(Catalog::LoadPath(dir / "missing.yaml"), CatalogError);
}

TEST(CampaignDifferences, NamesEachFieldThatDiffers) {
  Campaign a = Load(kEmail);
  Campaign b = a;
  EXPECT_THAT(CampaignDifferences(a, b), IsEmpty());
  b.source_file = "elsewhere";  // not served: not a difference
  b.updated_at_ms = 99;
  EXPECT_THAT(CampaignDifferences(a, b), IsEmpty());
  b.provider = "sendgrid";
  b.send_window->days = 1;
  b.templates[0].second.fields["subject"] = "changed";
  b.templates[1].second.fields.erase("reply_to");
  EXPECT_THAT(CampaignDifferences(a, b),
              ElementsAre("provider", "send_window", "templates.es.subject", "templates.en.reply_to"));
  Campaign c = a;
  c.templates.emplace_back("fr", Template{});
  EXPECT_THAT(CampaignDifferences(a, c), ElementsAre("templates.fr"));
  Campaign d = a;
  std::swap(d.templates[0], d.templates[1]);
  EXPECT_THAT(CampaignDifferences(a, d), ElementsAre("templates"));
}

}  // namespace
}  // namespace pv
