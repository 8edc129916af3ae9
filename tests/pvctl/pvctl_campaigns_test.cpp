// pvctl campaigns against the dev broker, in-process through pv::pvctl::Run (the binary's code):
// apply, list, show, diff and delete with their exit codes and JSON; and every refusal of apply
// (a template that does not compile, a provider the config lacks, a record too large for the
// producer, no brokers) publishes nothing at all.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <filesystem>
#include <sstream>

#include "campaigns.hpp"
#include "pv/json.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/topic_reader.hpp"
#include "pvctl.hpp"
#include "test/pvctl_runner.hpp"

namespace pv::pvctl {
namespace {

using namespace std::chrono_literals;
using pv::testing::ParseJson;
using pv::testing::ReadFile;
using pv::testing::TempDir;
using pv::testing::TopicReader;
using pv::testing::WriteFile;

using Result = pv::testing::PvctlResult;

std::vector<std::string> Strings(const rapidjson::Value& list) {
  std::vector<std::string> out;
  for (const auto& v : list.GetArray()) out.emplace_back(v.GetString());
  return out;
}

constexpr const char* kText = R"(id: "t1"
project: demo
channel: text
provider: log
templates:
  en: {body: "Code {{event.code}}"}
)";

class PvctlCampaigns : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteConfig("providers:\n  log: {type: log}\n  sg: {type: sendgrid}\n");
    std::filesystem::copy(std::filesystem::path(PV_SOURCE_DIR) / "catalog" / "demo", dir_.File("catalog"),
                          std::filesystem::copy_options::recursive);
  }

  void WriteConfig(const std::string& extra) {
    WriteFile(
        config_,
        fmt::format("kafka:\n  brokers: \"{}\"\n  properties:\n    log_level: \"3\"\ncatalog_dir: {}\n{}",
                    broker_.bootstrap(), dir_.File("no-local-catalog"), extra));
  }

  Result Pvctl(std::vector<std::string> words) {
    words.insert(words.begin(), {"--config", config_});
    return pv::testing::RunPvctl(words);
  }

  // Every record on pv.campaigns (reads for a second when `expected` is 0, to show there is none).
  std::vector<pv::testing::Record> TopicRecords(size_t expected) {
    TopicReader reader(broker_.bootstrap(), {"pv.campaigns"});
    if (expected == 0) return reader.ReadFor(1500ms);
    return reader.ReadUntil([&](const auto& r) { return r.size() >= expected; }, 15s);
  }

  pv::testing::DevBroker broker_;
  TempDir dir_{"pv-pvctl-campaigns"};
  std::string config_ = dir_.File("config.yaml");
};

TEST_F(PvctlCampaigns, ApplyListShowDiffDelete) {
  std::string catalog = dir_.File("catalog");
  Result diff = Pvctl({"--json", "campaigns", "diff", catalog});
  EXPECT_EQ(diff.rc, 1) << diff.err;
  EXPECT_EQ(Strings(ParseJson(diff.out)["added"]), (std::vector<std::string>{"44", "45", "46"})) << diff.out;

  Result dry = Pvctl({"campaigns", "apply", catalog, "--dry-run"});
  ASSERT_EQ(dry.rc, kExitOk) << dry.err;
  EXPECT_NE(dry.out.find("nothing published"), std::string::npos) << dry.out;
  EXPECT_TRUE(TopicRecords(0).empty());

  Result apply = Pvctl({"--json", "campaigns", "apply", catalog});
  ASSERT_EQ(apply.rc, kExitOk) << apply.err;
  EXPECT_EQ(ParseJson(apply.out)["published"].GetInt(), 3) << apply.out;
  Result again = Pvctl({"--json", "campaigns", "apply", catalog});
  ASSERT_EQ(again.rc, kExitOk) << again.err;
  EXPECT_EQ(ParseJson(again.out)["published"].GetInt(), 0) << "an unchanged campaign is not published again";
  EXPECT_EQ(ParseJson(again.out)["unchanged"].GetInt(), 3);
  EXPECT_EQ(TopicRecords(3).size(), 3U);
  Result same = Pvctl({"campaigns", "diff", catalog});
  EXPECT_EQ(same.rc, 0) << same.out << same.err;
  EXPECT_NE(same.out.find("no differences"), std::string::npos);

  Result list = Pvctl({"--json", "campaigns", "list"});
  ASSERT_EQ(list.rc, kExitOk) << list.err;
  auto rows = ParseJson(list.out);
  ASSERT_EQ(rows.Size(), 3U) << list.out;
  EXPECT_EQ(std::string(rows[0]["id"].GetString()), "44");
  EXPECT_EQ(std::string(rows[0]["source"].GetString()), "topic");
  EXPECT_NE(std::string(rows[0]["applied_from"].GetString()).find("44-order-shipped.yaml"),
            std::string::npos);
  Result text = Pvctl({"campaigns", "list", "--project", "nobody"});
  ASSERT_EQ(text.rc, kExitOk);
  EXPECT_EQ(text.out.find("demo"), std::string::npos) << text.out;

  // show: the record, its template files inlined.
  Result show = Pvctl({"--json", "campaigns", "show", "44"});
  ASSERT_EQ(show.rc, kExitOk) << show.err;
  auto record = ParseJson(show.out);
  EXPECT_EQ(record["v"].GetInt(), 1);
  EXPECT_EQ(std::string(record["campaign"]["templates"]["en"]["html"].GetString()),
            ReadFile(catalog + "/templates/44.en.html"));
  std::int64_t first_version = record["updated_at_ms"].GetInt64();
  EXPECT_EQ(Pvctl({"campaigns", "show", "99"}).rc, kExitNotFound);

  // An edit: diff names the field, apply publishes that campaign alone, with a newer version.
  std::string file = catalog + "/45-verification-code.yaml";
  std::string yaml = ReadFile(file);
  yaml.replace(yaml.find("is your Demo verification code"), 7, "is now your");
  WriteFile(file, yaml);
  Result changed = Pvctl({"--json", "campaigns", "diff", catalog});
  EXPECT_EQ(changed.rc, 1);
  auto d = ParseJson(changed.out);
  ASSERT_EQ(d["changed"].Size(), 1U) << changed.out;
  EXPECT_EQ(std::string(d["changed"][0]["id"].GetString()), "45");
  EXPECT_EQ(Strings(d["changed"][0]["fields"]), (std::vector<std::string>{"templates.en.body"}));
  Result edit = Pvctl({"campaigns", "apply", catalog});
  ASSERT_EQ(edit.rc, kExitOk) << edit.err;
  EXPECT_NE(edit.out.find("45           changed: templates.en.body"), std::string::npos) << edit.out;
  EXPECT_GT(ParseJson(Pvctl({"--json", "campaigns", "show", "45"}).out)["updated_at_ms"].GetInt64(),
            first_version);

  // A campaign gone from the directory: diff says it is on the topic only; delete removes it.
  std::filesystem::remove(catalog + "/46-cart-reminder.yaml");
  Result gone = Pvctl({"--json", "campaigns", "diff", catalog});
  EXPECT_EQ(gone.rc, 1);
  EXPECT_EQ(Strings(ParseJson(gone.out)["removed"]), (std::vector<std::string>{"46"})) << gone.out;
  Result del = Pvctl({"--json", "campaigns", "delete", "46"});
  ASSERT_EQ(del.rc, kExitOk) << del.err;
  auto records = TopicRecords(5);
  ASSERT_EQ(records.size(), 5U);
  EXPECT_EQ(records.back().key, "46");
  EXPECT_TRUE(records.back().tombstone);
  EXPECT_EQ(records.back().headers.at("pv-updated-at"),
            std::to_string(ParseJson(del.out)["updated_at_ms"].GetInt64()));
  EXPECT_EQ(Pvctl({"campaigns", "diff", catalog}).rc, 0);
  EXPECT_EQ(ParseJson(Pvctl({"--json", "campaigns", "list"}).out).Size(), 2U);
  Result shown = Pvctl({"campaigns", "show", "46"});
  EXPECT_EQ(shown.rc, kExitNotFound);
  EXPECT_NE(shown.err.find("was removed"), std::string::npos) << shown.err;
  Result twice = Pvctl({"campaigns", "delete", "46"});
  EXPECT_EQ(twice.rc, kExitOk);
  EXPECT_NE(twice.out.find("already removed"), std::string::npos) << twice.out;
  EXPECT_EQ(TopicRecords(5).size(), 5U);
  EXPECT_EQ(Pvctl({"campaigns", "delete", "99"}).rc, kExitNotFound);
}

TEST_F(PvctlCampaigns, ACampaignTooLargeForOneRecordIsRefusedAndNothingPublished) {
  WriteFile(dir_.File("big/t1.yaml"), kText);
  WriteFile(dir_.File("big/big.yaml"),
            "id: big\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.co, subject: s, html_file: big.html}\n");
  WriteFile(dir_.File("big/big.html"), std::string(1'100'000, 'x'));
  Result r = Pvctl({"campaigns", "apply", dir_.File("big")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("nothing published"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("campaign big is 1100"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("more than the 1000000 bytes"), std::string::npos) << r.err;
  EXPECT_TRUE(TopicRecords(0).empty());
}

TEST_F(PvctlCampaigns, AnInvalidTemplateOrProviderIsRefusedAndNothingPublished) {
  WriteFile(dir_.File("bad/t1.yaml"), kText);
  WriteFile(dir_.File("bad/open.yaml"),
            "id: open\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.co, subject: \"{{#user.vip}} never closed\", text: t}\n");
  Result r = Pvctl({"campaigns", "apply", dir_.File("bad")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("open.yaml: templates.en.subject"), std::string::npos) << r.err;

  std::filesystem::remove(dir_.File("bad/open.yaml"));
  // A provider the config does not define, and one whose type does not serve the channel.
  WriteFile(dir_.File("bad/prov.yaml"),
            "id: prov\nproject: demo\nchannel: text\nprovider: twilio\nfallback_provider: sg\n"
            "templates:\n  en: {body: b}\n");
  r = Pvctl({"campaigns", "apply", dir_.File("bad")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("provider: provider 'twilio' is not defined under providers:"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("fallback_provider: provider 'sg' is of type sendgrid, which does not send text"),
            std::string::npos)
      << r.err;
  // Structural problems of a file are refused the same way.
  std::filesystem::remove(dir_.File("bad/prov.yaml"));
  WriteFile(dir_.File("bad/win.yaml"),
            "id: win\nproject: demo\nchannel: text\nprovider: log\nsend_window: {start: \"25:00\", end: "
            "\"08:00\"}\n"
            "templates:\n  en: {body: b}\n");
  r = Pvctl({"campaigns", "apply", dir_.File("bad")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("send_window.start"), std::string::npos) << r.err;
  EXPECT_TRUE(TopicRecords(0).empty());
}

TEST_F(PvctlCampaigns, WithoutBrokersOrTopicNothingIsPublishedAndUsageErrorsSaySo) {
  WriteFile(dir_.File("one/t1.yaml"), kText);
  WriteFile(config_, "providers:\n  log: {type: log}\n");
  Result r = Pvctl({"campaigns", "apply", dir_.File("one")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("kafka.brokers is not set"), std::string::npos) << r.err;
  EXPECT_EQ(Pvctl({"campaigns", "diff", dir_.File("one")}).rc, 2);
  WriteConfig("campaigns_topic: \"\"\n");
  r = Pvctl({"campaigns", "apply", dir_.File("one")});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("campaigns_topic is empty"), std::string::npos) << r.err;
  WriteConfig("");
  EXPECT_EQ(Pvctl({"campaigns", "show"}).rc, kExitUsage);
  EXPECT_EQ(Pvctl({"campaigns", "delete", "not an id"}).rc, kExitUsage);
  EXPECT_EQ(Pvctl({"campaigns", "apply"}).rc, kExitUsage);
  EXPECT_EQ(Pvctl({"campaigns", "frobnicate"}).rc, kExitUsage);
  EXPECT_EQ(Pvctl({"campaigns", "diff", dir_.File("missing")}).rc, 2);
  Result help = Pvctl({"campaigns", "--help"});
  EXPECT_EQ(help.rc, kExitOk);
  EXPECT_NE(help.out.find("Campaigns are distributed like keys"), std::string::npos) << help.out;
  // The broker down: the topic cannot be read, so no version can be chosen; nothing is published.
  ASSERT_EQ(broker_.Control("/brokers/all/down"), 200);
  r = Pvctl({"campaigns", "apply", dir_.File("one"), "--timeout", "2"});
  EXPECT_EQ(r.rc, kExitFailed);
  EXPECT_NE(r.err.find("nothing published: cannot read pv.campaigns"), std::string::npos) << r.err;
  ASSERT_EQ(broker_.Control("/brokers/all/up"), 200);
  EXPECT_TRUE(TopicRecords(0).empty());
}

TEST(ProviderProblems, DefinedAndServingTheChannel) {
  Config config = Config::FromYaml("providers:\n  sg: {type: sendgrid}\n  tw: {type: twilio}\n  fcm: {}\n");
  Campaign c;
  c.channel = Channel::kEmail;
  c.provider = "sg";
  c.fallback_provider = "log";  // every worker has it
  EXPECT_TRUE(ProviderProblems(config, c).empty());
  c.provider = "tw";
  c.fallback_provider = "nope";
  auto problems = ProviderProblems(config, c);
  ASSERT_EQ(problems.size(), 2U);
  EXPECT_NE(problems[0].find("type twilio, which does not send email"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("'nope' is not defined"), std::string::npos) << problems[1];
  c.channel = Channel::kPush;
  c.provider = "fcm";  // the type defaults to the name
  c.fallback_provider.clear();
  EXPECT_TRUE(ProviderProblems(config, c).empty());
}

}  // namespace
}  // namespace pv::pvctl
