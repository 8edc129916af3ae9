// The command-line helpers every binary shares (pv/command_line.hpp) and the services' common options
// (pv/service.hpp ParseArgs): usage errors are one line naming the problem, with the nearest name and
// the --help to run, exit 2; --help is the selected command's, exit 0.
#include "pv/command_line.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "pv/service.hpp"

namespace pv::cli {
namespace {

// A small tree shaped like pvctl's: global options that work after the command (fallthrough), a
// group with required subcommands, a positional.
struct Tool {
  CLI::App app{"A tool.", "tool"};
  std::string config, from;
  bool json = false, dry_run = false;
  std::int64_t limit = -1;
  std::string id;

  Tool() {
    app.fallthrough();
    app.require_subcommand(1);
    app.add_option("--config", config, "config file");
    app.add_flag("--json", json, "json");
    CLI::App* replay = app.add_subcommand("replay", "replay things");
    replay->add_option("--from", from, "source topic")->required();
    replay->add_flag("--dry-run", dry_run, "count only");
    replay->add_option("--limit", limit, "at most N")->check(IntegerIn(1, 1000));
    CLI::App* keys = app.add_subcommand("keys", "keys");
    keys->require_subcommand(1);
    keys->add_subcommand("create", "create one");
    keys->add_subcommand("revoke", "revoke one")->add_option("KEY_ID", id, "the key")->required();
  }

  int Run(const std::vector<std::string>& words) {
    out.str("");
    err.str("");
    return Parse(app, words, out, err).value_or(-1);
  }
  std::ostringstream out, err;
};

TEST(CommandLine, NearestNameIsAtMostTwoEditsAway) {
  std::vector<std::string> known = {"--dry-run", "--error-code", "--from", "--limit", "-h"};
  EXPECT_EQ(Nearest("--dryrun", known), "--dry-run");
  EXPECT_EQ(Nearest("--error_code", known), "--error-code");  // '_' for '-' costs nothing
  EXPECT_EQ(Nearest("--ERROR-CODE", known), "--error-code");
  EXPECT_EQ(Nearest("--form", known), "--from");
  EXPECT_EQ(Nearest("--bogus", known), "");
  EXPECT_EQ(Nearest("-x", known), "");  // one letter off a short option is no typo
  EXPECT_EQ(Nearest("creat", {"create", "list", "revoke", "delete"}), "create");
}

TEST(CommandLine, UnknownOptionsAreNamedWithTheNearestAndTheCommandsHelp) {
  Tool t;
  EXPECT_EQ(t.Run({"replay", "--from", "pv.dlq.email", "--error_code", "bad_credentials", "--dryrun"}),
            kExitUsage);
  EXPECT_EQ(
      t.err.str(),
      "tool replay: unknown option '--error_code', unknown option '--dryrun' (did you mean '--dry-run'?); "
      "run 'tool replay --help'\n");
  EXPECT_EQ(t.Run({"replay", "--from=x", "--limitt=3"}), kExitUsage);
  EXPECT_EQ(t.err.str(),
            "tool replay: unknown option '--limitt' (did you mean '--limit'?); run 'tool replay --help'\n");
  // Global options are suggested too: they work after the command.
  EXPECT_EQ(t.Run({"replay", "--from", "x", "--jsn"}), kExitUsage);
  EXPECT_NE(t.err.str().find("did you mean '--json'?"), std::string::npos) << t.err.str();
}

TEST(CommandLine, UnknownCommandsMissingCommandsAndExtraArguments) {
  Tool t;
  EXPECT_EQ(t.Run({"frobnicate"}), kExitUsage);
  EXPECT_EQ(t.err.str(),
            "tool: unknown command 'frobnicate'; the commands are replay or keys; run 'tool --help'\n");
  EXPECT_EQ(t.Run({"keys", "creat"}), kExitUsage);
  EXPECT_EQ(t.err.str(),
            "tool keys: unknown command 'creat' (did you mean 'create'?); the commands are create or revoke; "
            "run 'tool keys --help'\n");
  EXPECT_EQ(t.Run({"keys"}), kExitUsage);
  EXPECT_EQ(t.err.str(), "tool keys: a command is required: create or revoke; run 'tool keys --help'\n");
  EXPECT_EQ(t.Run({"keys", "revoke", "a", "b"}), kExitUsage);
  EXPECT_EQ(t.err.str(), "tool keys revoke: unexpected argument 'b'; run 'tool keys revoke --help'\n");
  EXPECT_EQ(t.Run({"keys", "revoke"}), kExitUsage);
  EXPECT_EQ(t.err.str(), "tool keys revoke: KEY_ID is required; run 'tool keys revoke --help'\n");
}

TEST(CommandLine, MissingValuesAndBadNumbers) {
  Tool t;
  EXPECT_EQ(t.Run({"replay", "--from"}), kExitUsage);
  EXPECT_EQ(t.err.str(), "tool replay: --from needs a value; run 'tool replay --help'\n");
  EXPECT_EQ(t.Run({"replay", "--from", "x", "--limit", "many"}), kExitUsage);
  EXPECT_EQ(t.err.str(),
            "tool replay: --limit: 'many' is not an integer in 1..1000; run 'tool replay --help'\n");
  EXPECT_EQ(t.Run({"replay", "--from", "x", "--limit", "0"}), kExitUsage);
  EXPECT_EQ(t.Run({"replay", "--from", "x", "--limit", "1001"}), kExitUsage);
  EXPECT_EQ(t.Run({"replay", "--limit", "5"}), kExitUsage);
  EXPECT_EQ(t.err.str(), "tool replay: --from is required; run 'tool replay --help'\n");
}

TEST(CommandLine, GlobalOptionsBeforeOrAfterTheCommand) {
  Tool t;
  EXPECT_EQ(t.Run({"--config", "a.yaml", "replay", "--from", "x", "--json", "--limit", "7"}), -1)
      << t.err.str();
  EXPECT_EQ(t.config, "a.yaml");
  EXPECT_TRUE(t.json);
  EXPECT_EQ(t.from, "x");
  EXPECT_EQ(t.limit, 7);
  Tool u;
  EXPECT_EQ(u.Run({"keys", "revoke", "key_1", "--config", "b.yaml"}), -1) << u.err.str();
  EXPECT_EQ(u.config, "b.yaml");
  EXPECT_EQ(u.id, "key_1");
}

TEST(CommandLine, HelpIsTheSelectedCommandsWithEveryOptionsDescription) {
  Tool t;
  EXPECT_EQ(t.Run({"replay", "--help"}), kExitHelp);
  EXPECT_NE(t.out.str().find("Usage: tool replay"), std::string::npos) << t.out.str();
  for (const char* text : {"--from", "source topic", "--dry-run", "count only", "--limit", "at most N"}) {
    EXPECT_NE(t.out.str().find(text), std::string::npos) << text;
  }
  EXPECT_TRUE(t.err.str().empty());
  EXPECT_EQ(t.Run({"keys", "revoke", "-h"}), kExitHelp);  // before the required KEY_ID is checked
  EXPECT_NE(t.out.str().find("Usage: tool keys revoke"), std::string::npos) << t.out.str();
  EXPECT_NE(t.out.str().find("KEY_ID"), std::string::npos);
  EXPECT_EQ(t.Run({"--help"}), kExitHelp);
  EXPECT_NE(t.out.str().find("replay things"), std::string::npos) << t.out.str();
}

TEST(CommandLine, Validators) {
  std::string s = "30";
  EXPECT_EQ(IntegerIn(1, 32)(s), "");
  s = "33";
  EXPECT_EQ(IntegerIn(1, 32)(s), "'33' is not an integer in 1..32");
  s = "1e3";
  EXPECT_NE(IntegerIn(0, INT64_MAX)(s), "");
  s = "-1";
  EXPECT_EQ(IntegerIn(0, INT64_MAX)(s), "'-1' is not an integer >= 0");
  for (const char* good : {"0.5", "10", "3600"}) {
    s = good;
    EXPECT_EQ(SecondsUpTo(3600)(s), "") << good;
  }
  for (const char* bad : {"0", "-1", "3600.5", "ten", "", "nan", "inf"}) {
    s = bad;
    EXPECT_NE(SecondsUpTo(3600)(s), "") << bad;
  }
  s = "";
  EXPECT_EQ(NotEmpty()(s), "must not be empty");
}

// The services' common options (ingest, dispatcher, workers): the same rules.
int ServiceArgs(std::vector<std::string> words, service::Args& args, std::string& out, std::string& err) {
  words.insert(words.begin(), "pv-thing");
  std::vector<char*> argv;
  argv.reserve(words.size());
  for (auto& w : words) argv.push_back(w.data());
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  auto code =
      service::ParseArgs(static_cast<int>(argv.size()), argv.data(), "pv-thing", "Does a thing.", args);
  out = ::testing::internal::GetCapturedStdout();
  err = ::testing::internal::GetCapturedStderr();
  return code.value_or(-1);
}

TEST(ServiceArgs, CommonOptionsAndTheirErrors) {
  ::unsetenv("PV_CONFIG");
  std::string out, err;
  service::Args args;
  EXPECT_EQ(ServiceArgs({"--config", "c.yaml", "--port-file=p", "--print-config"}, args, out, err), -1)
      << err;
  EXPECT_EQ(args.config_path, "c.yaml");
  EXPECT_EQ(args.port_file, "p");
  EXPECT_TRUE(args.print_config);

  EXPECT_EQ(ServiceArgs({"--bogus"}, args, out, err), 2);
  EXPECT_EQ(err, "pv-thing: unknown option '--bogus'; run 'pv-thing --help'\n");
  EXPECT_EQ(ServiceArgs({"--port-fil", "x"}, args, out, err), 2);
  EXPECT_NE(err.find("did you mean '--port-file'?"), std::string::npos) << err;
  EXPECT_EQ(ServiceArgs({"--config"}, args, out, err), 2);
  EXPECT_EQ(err, "pv-thing: --config needs a value; run 'pv-thing --help'\n");
  EXPECT_EQ(ServiceArgs({"positional"}, args, out, err), 2);

  EXPECT_EQ(ServiceArgs({"--help"}, args, out, err), 0);
  EXPECT_NE(out.find("Usage: pv-thing"), std::string::npos) << out;
  EXPECT_NE(out.find("Does a thing."), std::string::npos) << out;
  EXPECT_NE(out.find("--port-file"), std::string::npos) << out;
  EXPECT_NE(out.find("PV_KAFKA_BROKERS"), std::string::npos) << out;
  EXPECT_EQ(ServiceArgs({"--version"}, args, out, err), 0);
  EXPECT_EQ(out.rfind("pv-thing ", 0), 0U) << out;

  ::setenv("PV_CONFIG", "from-env.yaml", 1);
  service::Args from_env;
  EXPECT_EQ(ServiceArgs({}, from_env, out, err), -1);
  EXPECT_EQ(from_env.config_path, "from-env.yaml");
  service::Args both;
  EXPECT_EQ(ServiceArgs({"--config", "flag.yaml"}, both, out, err), -1);
  EXPECT_EQ(both.config_path, "flag.yaml");  // the flag wins
  ::unsetenv("PV_CONFIG");
}

}  // namespace
}  // namespace pv::cli
