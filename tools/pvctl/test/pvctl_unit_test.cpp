// pvctl's decisions without a broker: replay filters, the attempt reset, the saved-position group
// name, topic settings from the config, and command-line parsing and usage errors.
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "pv/json.hpp"
#include "pvctl.hpp"
#include "replay.hpp"
#include "tail.hpp"
#include "test/pvctl_runner.hpp"
#include "topics.hpp"

namespace pv::pvctl {
namespace {

ReplayRecord Dlq(std::string_view value, const char* code = "bad_request",
                 const char* failed_at = "2026-03-01T10:00:00.000Z") {
  ReplayRecord r;
  r.value = value;
  if (code != nullptr) r.error_code = code;
  if (failed_at != nullptr) r.failed_at = failed_at;
  r.timestamp_ms = 0;
  return r;
}

constexpr std::string_view kSend =
    R"({"v":1,"send_id":"s-1","campaign_id":"44","attempt":8,"to":{"email":"ana@example.com"},"content":{"subject":"Ol\u00e1 \"x\""}})";

TEST(ReplayFilter, EmptyMatchesEveryReadableRecord) {
  ReplayFilter f;
  EXPECT_EQ(Evaluate(f, Dlq(kSend)), ReplayVerdict::kMatch);
  EXPECT_EQ(Evaluate(f, Dlq("not json")), ReplayVerdict::kUnreadable);
  EXPECT_EQ(Evaluate(f, Dlq("[1,2]")), ReplayVerdict::kUnreadable);
}

TEST(ReplayFilter, CampaignAndErrorCode) {
  ReplayFilter f;
  f.campaigns = {"44", "45"};
  EXPECT_EQ(Evaluate(f, Dlq(kSend)), ReplayVerdict::kMatch);
  f.campaigns = {"45"};
  EXPECT_EQ(Evaluate(f, Dlq(kSend)), ReplayVerdict::kFiltered);
  // A numeric campaign_id compares by its text.
  f.campaigns = {"7"};
  EXPECT_EQ(Evaluate(f, Dlq(R"({"campaign_id":7})")), ReplayVerdict::kMatch);

  ReplayFilter e;
  e.error_codes = {"bad_request"};
  EXPECT_EQ(Evaluate(e, Dlq(kSend)), ReplayVerdict::kMatch);
  EXPECT_EQ(Evaluate(e, Dlq(kSend, "timeout")), ReplayVerdict::kFiltered);
  EXPECT_EQ(Evaluate(e, Dlq(kSend, nullptr)), ReplayVerdict::kFiltered);  // no header: not that code
}

TEST(ReplayFilter, TimeWindowIsSinceInclusiveUntilExclusive) {
  ReplayFilter f;
  f.since = ParseTimestamp("2026-03-01T10:00:00Z");
  f.until = ParseTimestamp("2026-03-01T11:00:00Z");
  EXPECT_EQ(Evaluate(f, Dlq(kSend, "x", "2026-03-01T10:00:00.000Z")), ReplayVerdict::kMatch);
  EXPECT_EQ(Evaluate(f, Dlq(kSend, "x", "2026-03-01T10:59:59.999Z")), ReplayVerdict::kMatch);
  EXPECT_EQ(Evaluate(f, Dlq(kSend, "x", "2026-03-01T11:00:00.000Z")), ReplayVerdict::kFiltered);
  EXPECT_EQ(Evaluate(f, Dlq(kSend, "x", "2026-03-01T09:59:59.999Z")), ReplayVerdict::kFiltered);
  // An offset is honoured: 12:30+02:00 is 10:30Z.
  EXPECT_EQ(Evaluate(f, Dlq(kSend, "x", "2026-03-01T12:30:00+02:00")), ReplayVerdict::kMatch);
  // No pv-failed-at: the record's timestamp decides.
  ReplayRecord r = Dlq(kSend, "x", nullptr);
  r.timestamp_ms = ToUnixMillis(*ParseTimestamp("2026-03-01T10:30:00Z"));
  EXPECT_EQ(Evaluate(f, r), ReplayVerdict::kMatch);
  r.timestamp_ms = ToUnixMillis(*ParseTimestamp("2026-03-02T10:30:00Z"));
  EXPECT_EQ(Evaluate(f, r), ReplayVerdict::kFiltered);
  r.timestamp_ms = -1;
  EXPECT_EQ(Evaluate(f, r), ReplayVerdict::kFiltered);
}

TEST(ReplayValue, AttemptResetToOneAndNothingElseChanges) {
  auto out = ResetAttempt(kSend);
  ASSERT_TRUE(out.has_value());
  rapidjson::Document before, after;
  before.Parse(kSend.data(), kSend.size());
  after.Parse(out->c_str());
  ASSERT_TRUE(after.IsObject());
  EXPECT_EQ(after["attempt"].GetInt(), 1);
  after["attempt"].SetInt(8);
  EXPECT_TRUE(before == after) << *out;
  // Member order is kept (a human reading the topic sees the same record).
  EXPECT_LT(out->find("\"send_id\""), out->find("\"attempt\""));
  EXPECT_LT(out->find("\"attempt\""), out->find("\"content\""));

  // A dead-lettered trigger has no attempt: it goes back byte for byte.
  constexpr std::string_view kTrigger = R"({"v":1, "trigger_id":"t-1","user":{"external_id":"u"}})";
  auto same = ResetAttempt(kTrigger);
  ASSERT_TRUE(same.has_value());
  EXPECT_EQ(*same, kTrigger);
  EXPECT_FALSE(ResetAttempt("nope").has_value());

  // Byte for byte but the attempt: spacing, escapes and numbers RapidJSON would print differently
  // (a re-serialised value moved 2.2250738585072011e-308 by an ULP, and wrote 1e3 as 1000.0).
  constexpr std::string_view kOdd =
      R"({ "v" : 1, "x":2.2250738585072011e-308, "y":1e3, "s":"\u00e9\/", "attempt" :  17 , "z":[{"attempt":5}]})";
  auto odd = ResetAttempt(kOdd);
  ASSERT_TRUE(odd.has_value());
  EXPECT_EQ(
      *odd,
      R"({ "v" : 1, "x":2.2250738585072011e-308, "y":1e3, "s":"\u00e9\/", "attempt" :  1 , "z":[{"attempt":5}]})");
  // The first top-level attempt is the one consumers read (FindMember), and the one rewritten.
  EXPECT_EQ(*ResetAttempt(R"({"z":{"attempt":9},"attempt":3,"attempt":4})"),
            R"({"z":{"attempt":9},"attempt":1,"attempt":4})");
  EXPECT_EQ(*ResetAttempt(R"({"att\u0065mpt":[1,{"a":2}]})"), R"({"att\u0065mpt":1})");
  EXPECT_FALSE(ResetAttempt("\"a string\"").has_value());
}

// record_decoders_fuzz: at full precision RapidJSON 1.1 read 0e-60 through clz(0) (undefined
// behaviour); the rewrite reads at default precision and leaves every number as written.
TEST(ReplayRewrite, NumbersOfASendSurviveTheRewrite) {
  auto out = ResetAttempt(R"({"v":1,"attempt":4,"badge":9007199254740993,"x":0e-60,"y":-7})");
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(*out, R"({"v":1,"attempt":1,"badge":9007199254740993,"x":0e-60,"y":-7})");
}

TEST(ReplayTarget, DerivedFromTheSourceTopic) {
  EXPECT_EQ(DefaultReplayTarget("pv.dlq.email"), "pv.send.email");
  EXPECT_EQ(DefaultReplayTarget("pv.dlq.sms"), "pv.send.sms");
  EXPECT_EQ(DefaultReplayTarget("pv.send.push"), "pv.send.push");
  EXPECT_EQ(DefaultReplayTarget("pv.events"), "");
  EXPECT_EQ(DefaultReplayTarget("pv.dlq."), "");
}

TEST(ReplayGroup, SameFilterSameGroupAndLimitIsNotPartOfIt) {
  ReplayFilter a;
  a.campaigns = {"45", "44"};
  a.since = ParseTimestamp("2026-03-01T12:00:00+02:00");
  ReplayFilter b;
  b.campaigns = {"44", "45"};
  b.since = ParseTimestamp("2026-03-01T10:00:00Z");
  EXPECT_EQ(ReplayGroup("pv.dlq.email", "pv.send.email", a), ReplayGroup("pv.dlq.email", "pv.send.email", b));
  EXPECT_EQ(ReplayGroup("pv.dlq.email", "pv.send.email", a).rfind("pvctl-replay-pv.dlq.email-", 0), 0U);
  b.error_codes = {"timeout"};
  EXPECT_NE(ReplayGroup("pv.dlq.email", "pv.send.email", a), ReplayGroup("pv.dlq.email", "pv.send.email", b));
  EXPECT_NE(ReplayGroup("pv.dlq.email", "pv.send.email", a), ReplayGroup("pv.dlq.email", "pv.other", a));
}

TEST(TopicSettings, DefaultsFollowTheCommonListAndTheDelayTiers) {
  Config config = Config::FromYaml("dispatcher:\n  delay_tiers: [\"1s\", \"1m\"]\n");
  auto topics = DesiredTopics(config);
  std::map<std::string, DesiredTopic> by_name;
  for (const auto& t : topics) by_name[t.name] = t;
  EXPECT_EQ(by_name.at("pv.triggers").partitions, 6);
  EXPECT_EQ(by_name.at("pv.send.email").partitions, 6);
  EXPECT_EQ(by_name.at("pv.dlq.email").partitions, 3);
  EXPECT_EQ(by_name.at("pv.keys").configs.at("cleanup.policy"), "compact");
  EXPECT_EQ(by_name.count("pv.delay.1s"), 1U);
  EXPECT_EQ(by_name.count("pv.delay.1m"), 1U);
  EXPECT_EQ(by_name.count("pv.delay.5s"), 0U);  // not a configured tier
}

TEST(TopicSettings, PartitionsAndConfigsFromTheConfig) {
  Config config = Config::FromYaml(
      "topics:\n"
      "  replication_factor: 2\n"
      "  pv.send.email:\n"
      "    partitions: 24\n"
      "    config:\n"
      "      retention.ms: \"86400000\"\n");
  std::map<std::string, DesiredTopic> by_name;
  for (const auto& t : DesiredTopics(config)) by_name[t.name] = t;
  EXPECT_EQ(by_name.at("pv.send.email").partitions, 24);
  EXPECT_EQ(by_name.at("pv.send.email").configs.at("retention.ms"), "86400000");
  EXPECT_EQ(by_name.at("pv.send.sms").partitions, 6);
  EXPECT_EQ(ReplicationFactor(config, 1), 2);
  EXPECT_EQ(ReplicationFactor(Config::FromYaml("{}"), 1), 1);
  EXPECT_EQ(ReplicationFactor(Config::FromYaml("{}"), 5), 3);
  EXPECT_THROW(DesiredTopics(Config::FromYaml("topics:\n  pv.events: {partitions: 0}\n")), ConfigError);
  EXPECT_THROW(DesiredTopics(Config::FromYaml("topics:\n  pv.events: {partitions: many}\n")), ConfigError);
}

// acks=all waits for the in-sync replicas only; with the broker default min.insync.replicas=1 that
// can be the leader alone. create asks for two (or as many replicas as there are), unless told.
TEST(TopicSettings, CreateSetsMinInsyncReplicasUnlessConfigured) {
  Config config = Config::FromYaml(
      "topics:\n"
      "  pv.send.email:\n"
      "    config: {min.insync.replicas: \"3\", retention.ms: \"86400000\"}\n");
  std::map<std::string, DesiredTopic> by_name;
  for (const auto& t : DesiredTopics(config)) by_name[t.name] = t;
  for (const auto& [name, topic] : by_name) {
    if (name == "pv.send.email") continue;
    EXPECT_EQ(CreateConfigs(topic, 3).at("min.insync.replicas"), "2") << name;
    EXPECT_EQ(CreateConfigs(topic, 2).at("min.insync.replicas"), "2") << name;
    EXPECT_EQ(CreateConfigs(topic, 1).at("min.insync.replicas"), "1") << name;  // one broker: all there is
  }
  const DesiredTopic& email = by_name.at("pv.send.email");
  EXPECT_EQ(CreateConfigs(email, 3).at("min.insync.replicas"), "3");  // the config wins
  EXPECT_EQ(CreateConfigs(email, 3).at("retention.ms"), "86400000");
  auto keys = CreateConfigs(by_name.at("pv.keys"), 3);
  EXPECT_EQ(keys.at("cleanup.policy"), "compact");  // the topic's own configs stay
  // A tombstone (pvctl keys delete) outlives every keys_file that may still list the key.
  EXPECT_EQ(keys.at("delete.retention.ms"), "3153600000000");
  EXPECT_EQ(keys.size(), 3U);
  // The same for pv.campaigns: a removal outlives every catalog_dir that may still hold the campaign.
  EXPECT_EQ(CreateConfigs(by_name.at("pv.campaigns"), 3), keys);
  EXPECT_EQ(by_name.at("pv.campaigns").partitions, 1);
}

TEST(TopicSettings, PipelineGroupsAsTheServicesNameThem) {
  auto groups = PipelineGroups(Config::FromYaml("worker:\n  sms:\n    group_id: texters\n"));
  std::map<std::string, std::vector<std::string>> by_group;
  for (const auto& g : groups) by_group[g.group] = g.topics;
  EXPECT_EQ(by_group.at("pv-dispatcher"), std::vector<std::string>{"pv.triggers"});
  EXPECT_EQ(by_group.at("pv-dispatcher-delay").size(), 5U);
  EXPECT_EQ(by_group.at("pv-email-worker"), std::vector<std::string>{"pv.send.email"});
  EXPECT_EQ(by_group.at("texters"), std::vector<std::string>{"pv.send.sms"});
  EXPECT_EQ(by_group.at("pv-push-worker"), std::vector<std::string>{"pv.send.push"});
}

int RunPvctl(const std::vector<std::string>& words, std::string& out, std::string& err) {
  pv::testing::PvctlResult r = pv::testing::RunPvctl(words);
  out = r.out;
  err = r.err;
  return r.rc;
}

TEST(CommandLine, EveryCommandHasHelpAndUsageErrorsExitTwo) {
  std::string out, err;
  for (const char* group : {"topics", "replay", "tail", "suppress", "campaigns"}) {
    EXPECT_EQ(RunPvctl({group, "--help"}, out, err), kExitOk) << group;
    EXPECT_NE(out.find("Usage"), std::string::npos) << group;
  }
  EXPECT_EQ(RunPvctl({"--help"}, out, err), kExitOk);
  for (const char* word :
       {"topics create", "replay --from", "tail TOPIC", "suppress add", "campaigns apply"}) {
    EXPECT_NE(out.find(word), std::string::npos) << word;
  }
  EXPECT_EQ(RunPvctl({"topics", "frobnicate"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"replay"}, out, err), kExitUsage);
  EXPECT_NE(err.find("--from"), std::string::npos);
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.events"}, out, err), kExitUsage);  // no default target
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--since", "yesterday"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--limit", "0"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--since", "2026-03-02T00:00:00Z", "--until",
                      "2026-03-01T00:00:00Z"},
                     out, err),
            kExitUsage);
  EXPECT_EQ(RunPvctl({"tail"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"tail", "pv.events", "--limit", "x"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"suppress", "add", "bob@example.com"}, out, err), kExitUsage);  // no --channel
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "fax", "x"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "email", "not-an-address"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "text", "555-1234"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "text", "--user", "u-1"}, out, err), kExitUsage);
  EXPECT_NE(err.find("--project"), std::string::npos);
}

// The issue's case: two typos once started a real, unfiltered replay. Unknown options are usage errors
// that name each one with the nearest known option, before anything connects anywhere
// (pvctl_test.cpp checks that nothing reaches the broker).
TEST(CommandLine, UnknownOptionsAreUsageErrorsThatNameTheNearestOption) {
  std::string out, err;
  EXPECT_EQ(
      RunPvctl({"replay", "--from", "pv.dlq.email", "--error_code", "bad_credentials", "--dryrun"}, out, err),
      kExitUsage);
  EXPECT_EQ(err,
            "pvctl replay: unknown option '--error_code' (did you mean '--error-code'?), unknown option "
            "'--dryrun' (did you mean '--dry-run'?); run 'pvctl replay --help'\n");
  EXPECT_TRUE(out.empty()) << out;
  EXPECT_EQ(RunPvctl({"keys", "create", "--project", "demo", "--name", "w", "--pubic"}, out, err),
            kExitUsage);
  EXPECT_NE(err.find("did you mean '--public'?"), std::string::npos) << err;
  // Global options are known after the command too; a typo of one is suggested.
  EXPECT_EQ(RunPvctl({"topics", "list", "--brokres", "x:1"}, out, err), kExitUsage);
  EXPECT_NE(err.find("unknown option '--brokres' (did you mean '--brokers'?)"), std::string::npos) << err;
  // An option of another command is unknown here.
  EXPECT_EQ(RunPvctl({"tail", "pv.events", "--dry-run"}, out, err), kExitUsage);
  EXPECT_NE(err.find("unknown option '--dry-run'"), std::string::npos) << err;
  EXPECT_NE(err.find("run 'pvctl tail --help'"), std::string::npos) << err;
}

TEST(CommandLine, UnknownCommandsMissingValuesAndBadValuesExitTwo) {
  ::unsetenv("PV_CONFIG");
  std::string out, err;
  EXPECT_EQ(RunPvctl({"replya", "--from", "pv.dlq.email"}, out, err), kExitUsage);
  EXPECT_EQ(err.rfind("pvctl: unknown command 'replya' (did you mean 'replay'?)", 0), 0U) << err;
  EXPECT_EQ(RunPvctl({"keys", "revokе"}, out, err), kExitUsage);  // a Cyrillic 'е'
  EXPECT_EQ(err.rfind("pvctl keys: unknown command", 0), 0U) << err;
  EXPECT_EQ(RunPvctl({"suppress"}, out, err), kExitUsage);
  EXPECT_EQ(err, "pvctl suppress: a command is required: add, remove or list; run 'pvctl suppress --help'\n");
  EXPECT_EQ(RunPvctl({"--json"}, out, err), kExitUsage);
  EXPECT_NE(err.find("a command is required: keys, campaigns, topics, replay, tail, suppress or status"),
            std::string::npos)
      << err;

  EXPECT_EQ(RunPvctl({"replay", "--from"}, out, err), kExitUsage);
  EXPECT_EQ(err, "pvctl replay: --from needs a value; run 'pvctl replay --help'\n");
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--limit"}, out, err), kExitUsage);
  EXPECT_EQ(err, "pvctl replay: --limit needs a value; run 'pvctl replay --help'\n");
  EXPECT_EQ(RunPvctl({"keys", "revoke"}, out, err), kExitUsage);
  EXPECT_EQ(err, "pvctl keys revoke: KEY_ID is required; run 'pvctl keys revoke --help'\n");
  EXPECT_EQ(RunPvctl({"keys", "revoke", "key_1", "key_2"}, out, err), kExitUsage);
  EXPECT_EQ(err, "pvctl keys revoke: unexpected argument 'key_2'; run 'pvctl keys revoke --help'\n");
  EXPECT_EQ(RunPvctl({"tail", "pv.events", "--limit", "-1"}, out, err), kExitUsage);
  EXPECT_NE(err.find("--limit: '-1' is not an integer >= 0"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--limit", "ten"}, out, err), kExitUsage);
  EXPECT_NE(err.find("--limit: 'ten' is not an integer >= 1"), std::string::npos) << err;
  // A bad --timeout was a failure (exit 1) once the command ran; now it is refused first.
  EXPECT_EQ(RunPvctl({"topics", "list", "--timeout", "0"}, out, err), kExitUsage);
  EXPECT_NE(err.find("--timeout: '0' is not a number of seconds in (0, 3600]"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"--timeout", "soon", "topics", "list"}, out, err), kExitUsage);
  EXPECT_EQ(RunPvctl({"suppress", "list", "--channel", "fax"}, out, err), kExitUsage);
  EXPECT_NE(err.find("'fax': expected email, text or push"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "email", "--project", "demo", "a@b.co"}, out, err),
            kExitUsage);  // --project only means something with --user
  EXPECT_NE(err.find("--project requires --user"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"replay", "--from", "pv.dlq.email", "--campaign", ","}, out, err), kExitUsage);
  EXPECT_NE(err.find("--campaign: no campaign id in ','"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"keys", "create", "--project", "demo", "--name", ""}, out, err), kExitUsage);
  EXPECT_NE(err.find("--name: must not be empty"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"keys", "create", "--project", "demo", "--name="}, out, err), kExitUsage);
  EXPECT_NE(err.find("--name needs a value"), std::string::npos) << err;
}

// Each command's --help exits 0 and lists that command's options, each with its description.
TEST(CommandLine, EachCommandsHelpListsItsOptions) {
  struct Case {
    std::vector<std::string> words;
    std::vector<std::string> shown;
  };
  const std::vector<Case> cases = {
      {{"replay", "--help"},
       {"Usage: pvctl replay", "--from TOPIC", "the topic to replay", "--to TOPIC", "--campaign",
        "--error-code", "pv-error-code headers", "--since", "--until", "--limit N", "--dry-run",
        "publish and save nothing", "--restart", "--no-progress", "consumer\ngroup pvctl-replay"}},
      {{"keys", "create", "--help"},
       {"Usage: pvctl keys create", "--project P", "the project the key sends for", "--name N", "--public",
        "instead of a secret one"}},
      {{"keys", "list", "-h"}, {"Usage: pvctl keys list", "--project P", "only the keys of this project"}},
      {{"keys", "revoke", "--help"}, {"Usage: pvctl keys revoke", "KEY_ID", "the key's id"}},
      {{"keys", "delete", "--help"}, {"Usage: pvctl keys delete", "KEY_ID"}},
      {{"keys", "--help"}, {"Usage: pvctl keys", "create", "list", "revoke", "delete"}},
      {{"campaigns", "--help"}, {"Usage: pvctl campaigns", "apply", "list", "show", "diff", "delete"}},
      {{"campaigns", "apply", "--help"},
       {"Usage: pvctl campaigns apply", "PATH", "campaign files or directories", "--dry-run",
        "publish nothing"}},
      {{"campaigns", "diff", "--help"}, {"Usage: pvctl campaigns diff", "PATH", "--project P", "2 trouble"}},
      {{"campaigns", "delete", "--help"}, {"Usage: pvctl campaigns delete", "ID", "the campaign's id"}},
      {{"topics", "create", "--help"}, {"Usage: pvctl topics create", "--dry-run", "only say what would be"}},
      {{"topics", "list", "--help"}, {"Usage: pvctl topics list", "--all", "every topic of the cluster"}},
      {{"tail", "--help"},
       {"Usage: pvctl tail", "TOPIC", "--limit N", "--from-beginning", "--follow", "--key K",
        "only records with this key", "--send-id ID", "--trigger-id ID", "limit then counts matching"}},
      {{"suppress", "add", "--help"},
       {"Usage: pvctl suppress add", "--channel C", "--user", "--project P", "VALUE", "standard input"}},
      {{"suppress", "remove", "--help"}, {"Usage: pvctl suppress remove", "--channel C", "VALUE"}},
      {{"suppress", "list", "--help"}, {"Usage: pvctl suppress list", "--channel C", "only this channel"}},
      // --help after other options, and the global options before the command.
      {{"--json", "replay", "--from", "x", "--help"}, {"Usage: pvctl replay"}},
      {{"--help"},
       {"Usage: pvctl", "--config PATH", "--json", "--brokers", "--redis-url", "--keys-file",
        "--timeout SECONDS", "topics create", "replay --from", "tail TOPIC", "suppress add", "Exit codes"}},
  };
  for (const auto& c : cases) {
    std::string out, err;
    EXPECT_EQ(RunPvctl(c.words, out, err), kExitOk) << c.words[0] << " " << err;
    EXPECT_TRUE(err.empty()) << err;
    for (const auto& text : c.shown) EXPECT_NE(out.find(text), std::string::npos) << text << " in\n" << out;
  }
  // The help of one command does not list another's options.
  std::string out, err;
  RunPvctl({"tail", "--help"}, out, err);
  EXPECT_EQ(out.find("--dry-run"), std::string::npos);
  // No command at all: the whole help, as a usage error.
  EXPECT_EQ(RunPvctl({}, out, err), kExitUsage);
  EXPECT_NE(err.find("Usage: pvctl"), std::string::npos);
}

// `suppress add|remove -` reads values from standard input; beyond its limits nothing is written (the
// Redis URL here has no server: a write would fail with exit 1, not 2). Values do reach Redis:
// pvctl_test.cpp.
TEST(CommandLine, SuppressStdinLimitsAreUsageErrors) {
  ::unsetenv("PV_CONFIG");
  const std::string no_redis = "redis://127.0.0.1:1";
  auto add = [&](const std::string& input, std::string& err, const std::string& channel = "email") {
    pv::testing::PvctlResult r =
        pv::testing::RunPvctl({"--redis-url", no_redis, "suppress", "add", "--channel", channel, "-"}, input);
    err = r.err;
    return r.rc;
  };
  std::string err;
  std::string many;
  for (int i = 0; i <= 100000; ++i) many += "a" + std::to_string(i) + "@example.com\n";
  EXPECT_EQ(add(many, err), kExitUsage);
  EXPECT_NE(err.find("standard input: more than 100000 lines; nothing changed"), std::string::npos) << err;
  EXPECT_EQ(add(std::string(1025, 'a') + "\n", err), kExitUsage);
  EXPECT_NE(err.find("standard input: line 1 is longer than 1024 bytes"), std::string::npos) << err;
  EXPECT_EQ(add(std::string(5000000, 'a'), err), kExitUsage);  // no newline at all
  EXPECT_NE(err.find("longer than 1024 bytes"), std::string::npos) << err;
  EXPECT_EQ(add("ok@example.com\n\nnot-an-address\n", err), kExitUsage);
  EXPECT_NE(err.find("'not-an-address' is not an email address"), std::string::npos) << err;
  EXPECT_EQ(add("\n  \n\t\n", err), kExitUsage);
  EXPECT_NE(err.find("no values"), std::string::npos) << err;
  // Within the limits the values are read (blank lines skipped, blanks and CR trimmed): the write is
  // what fails here.
  EXPECT_EQ(add("  token-1\r\n\n" + std::string(1024, 'b'), err, "push"), kExitFailed);
  EXPECT_NE(err.find("redis"), std::string::npos) << err;
  pv::testing::PvctlResult twice = pv::testing::RunPvctl(
      {"--redis-url", no_redis, "suppress", "remove", "--channel", "email", "-", "-"}, "a@example.com\n");
  EXPECT_EQ(twice.rc, kExitUsage);
  EXPECT_NE(twice.err.find("'-' (standard input) can be given once"), std::string::npos) << twice.err;
}

TEST(TailFilter, KeySendIdAndTriggerIdFromHeadersOrTheValue) {
  TailRecord send;
  send.key = "user-1";
  send.headers = {{"pv-send-id", "s-1"}, {"pv-trigger-id", "t-1"}};
  send.value = R"({"send_id":"s-1","trigger_id":"t-1"})";
  TailRecord event;  // pv.events: ids in the value only
  event.key = "s-2";
  event.value = R"({"v":1,"send_id":"s-2","trigger_id":"t-1","status":"sent"})";
  TailRecord trigger;  // pv.triggers: the header, and the value
  trigger.key = "user-3";
  trigger.headers = {{"pv-trigger-id", "t-3"}};
  trigger.value = R"({"trigger_id":"t-3"})";
  TailRecord tombstone;  // null value, no headers
  tombstone.key = "key_1";
  TailRecord replayed;  // header only, a value that is not JSON
  replayed.headers = {{"pv-send-id", "s-4"}};
  replayed.value = "not json";

  EXPECT_TRUE(Matches({}, tombstone));
  EXPECT_TRUE(Matches({"user-1", "", ""}, send));
  EXPECT_FALSE(Matches({"user-1", "", ""}, event));
  EXPECT_FALSE(Matches({"user", "", ""}, send));  // the whole key
  EXPECT_TRUE(Matches({"", "s-2", ""}, event));
  EXPECT_TRUE(Matches({"", "s-1", ""}, send));
  EXPECT_FALSE(Matches({"", "s-1", ""}, event));
  EXPECT_TRUE(Matches({"", "s-4", ""}, replayed));
  EXPECT_FALSE(Matches({"", "s-4", ""}, tombstone));
  EXPECT_TRUE(Matches({"", "", "t-1"}, event));
  EXPECT_TRUE(Matches({"", "", "t-1"}, send));
  EXPECT_TRUE(Matches({"", "", "t-3"}, trigger));
  EXPECT_FALSE(Matches({"", "", "t-3"}, send));
  // Every filter given must match.
  EXPECT_TRUE(Matches({"user-1", "s-1", "t-1"}, send));
  EXPECT_FALSE(Matches({"user-1", "s-1", "t-3"}, send));
  EXPECT_FALSE(Matches({"s-2", "s-2", "t-9"}, event));
  // A value nested too deep or not an object matches no id.
  TailRecord deep;
  deep.value = std::string(5000, '[');
  EXPECT_FALSE(Matches({"", "s-1", ""}, deep));
}

// Projects are joined by ':' in suppression members ("user:<project>:<external_id>") and appear in keys
// and records: a name outside [a-z0-9_-]{1,64} is refused where an operator gives one.
TEST(CommandLine, ProjectNamesFollowTheRule) {
  // Where a command would get past the check, it must touch nothing real: a file of its own, no
  // brokers, a Redis port nothing listens on.
  ::unsetenv("PV_KAFKA_BROKERS");
  ::unsetenv("PV_CONFIG");
  std::string keys_file =
      (std::filesystem::temp_directory_path() / ("pvctl-unit-keys-" + std::to_string(::getpid()) + ".yaml"))
          .string();
  // A deployment whose ingests read only keys_file: create needs no broker there.
  std::string file_only_config = keys_file + ".config.yaml";
  { std::ofstream(file_only_config) << "ingest:\n  keys_topic: \"\"\n"; }
  std::string out, err;
  auto create = [&](const std::string& project) {
    return RunPvctl({"--config", file_only_config, "keys", "create", "--project", project, "--name", "web",
                     "--keys-file", keys_file},
                    out, err);
  };
  EXPECT_EQ(create("acme:eu"), kExitUsage);
  EXPECT_NE(err.find("--project 'acme:eu' is not a project name: 1 to 64 of a-z, 0-9, '_' and '-'"),
            std::string::npos)
      << err;
  EXPECT_EQ(create("Demo"), kExitUsage);
  EXPECT_EQ(create(std::string(65, 'a')), kExitUsage);
  EXPECT_EQ(create("demo_2-eu"), kExitOk) << err;  // the rule's whole alphabet
  std::filesystem::remove(keys_file);
  std::filesystem::remove(keys_file + ".lock");  // pvctl's lock beside the file
  std::filesystem::remove(file_only_config);
  const std::string no_redis = "redis://127.0.0.1:1";
  EXPECT_EQ(RunPvctl({"suppress", "add", "--channel", "email", "--redis-url", no_redis, "--user", "--project",
                      "a:b", "u-1"},
                     out, err),
            kExitUsage);
  EXPECT_NE(err.find("--project 'a:b' is not a project name"), std::string::npos) << err;
  EXPECT_EQ(
      RunPvctl({"suppress", "add", "--channel", "email", "--redis-url", no_redis, "user:A B:u-1"}, out, err),
      kExitUsage);
  EXPECT_NE(err.find("the project is not a project name"), std::string::npos) << err;
}

// With the keys topic in use (the default), a key change that cannot reach it is not a success: a
// revoke only in the file left the older active record on pv.keys in force on every other ingest.
TEST(KeysCommand, WithoutBrokersRevokeCreateDeleteAndListExitOneAndSayWhatToSet) {
  ::unsetenv("PV_KAFKA_BROKERS");
  ::unsetenv("PV_CONFIG");
  std::string base =
      (std::filesystem::temp_directory_path() / ("pvctl-unit-nobroker-" + std::to_string(::getpid())))
          .string();
  std::string keys_file = base + ".yaml";
  std::string file_only_config = base + ".config.yaml";
  { std::ofstream(file_only_config) << "ingest:\n  keys_topic: \"\"\n"; }
  std::string out, err;
  // A key in the file, created where the file is the whole truth.
  ASSERT_EQ(RunPvctl({"--config", file_only_config, "--json", "keys", "create", "--project", "demo", "--name",
                      "w", "--keys-file", keys_file},
                     out, err),
            kExitOk)
      << err;
  rapidjson::Document created;
  created.Parse(out.c_str());
  ASSERT_TRUE(created.IsObject()) << out;
  std::string id = created["id"].GetString();

  out.clear();
  EXPECT_EQ(RunPvctl({"keys", "revoke", id, "--keys-file", keys_file}, out, err), kExitFailed);
  EXPECT_NE(err.find("kafka.brokers is not set"), std::string::npos) << err;
  EXPECT_NE(err.find("NOT revoked on the topic"), std::string::npos) << err;
  EXPECT_EQ(out.find("Revoked"), std::string::npos) << out;
  // The file has the revoke all the same: ingests that read it refuse the key (it is newer than
  // whatever the topic holds).
  std::ostringstream stored;
  stored << std::ifstream(keys_file).rdbuf();
  EXPECT_NE(stored.str().find("revoked_at"), std::string::npos) << stored.str();

  EXPECT_EQ(RunPvctl({"keys", "revoke", "key_unknown", "--keys-file", keys_file}, out, err), kExitFailed);
  EXPECT_NE(err.find("kafka.brokers is not set"), std::string::npos) << err;
  EXPECT_EQ(
      RunPvctl({"keys", "create", "--project", "demo", "--name", "x", "--keys-file", keys_file}, out, err),
      kExitFailed);
  EXPECT_NE(err.find("nothing created"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"keys", "delete", id, "--keys-file", keys_file}, out, err), kExitFailed);
  EXPECT_NE(err.find("nothing deleted"), std::string::npos) << err;
  EXPECT_EQ(RunPvctl({"keys", "list", "--keys-file", keys_file}, out, err), kExitFailed);
  EXPECT_NE(err.find("kafka.brokers is not set"), std::string::npos) << err;
  // --local-only, which once made a file-only revoke exit 0, is refused.
  EXPECT_EQ(RunPvctl({"keys", "revoke", id, "--local-only", "--keys-file", keys_file}, out, err), kExitUsage);
  EXPECT_NE(err.find("keys_topic"), std::string::npos) << err;

  // Where ingests read only the file, the file is the whole truth: revoke and delete succeed.
  EXPECT_EQ(
      RunPvctl({"--config", file_only_config, "keys", "revoke", id, "--keys-file", keys_file}, out, err),
      kExitOk)
      << err;
  EXPECT_EQ(
      RunPvctl({"--config", file_only_config, "keys", "delete", id, "--keys-file", keys_file}, out, err),
      kExitOk)
      << err;
  EXPECT_EQ(
      RunPvctl({"--config", file_only_config, "--json", "keys", "list", "--keys-file", keys_file}, out, err),
      kExitOk);
  EXPECT_EQ(out, "[]\n");
  std::filesystem::remove(keys_file);
  std::filesystem::remove(keys_file + ".lock");
  std::filesystem::remove(file_only_config);
}

TEST(CommandLine, NoBrokersConfiguredIsAFailureThatSaysWhatToSet) {
  std::string out, err;
  ::unsetenv("PV_KAFKA_BROKERS");
  ::unsetenv("PV_CONFIG");
  EXPECT_EQ(RunPvctl({"topics", "list"}, out, err), kExitFailed);
  EXPECT_NE(err.find("kafka.brokers"), std::string::npos) << err;
}

}  // namespace
}  // namespace pv::pvctl
