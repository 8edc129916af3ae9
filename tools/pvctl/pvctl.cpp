// pvctl's command line: one CLI11 App with the global options, and a subcommand per command.
//
// Adding a command (or a group of them, as `keys create|list|...`):
//  1. In its own file, say campaigns.cpp, write `void AddCampaignsCommands(CLI::App& app, Context& ctx)`
//     that adds the subcommand(s) with `app.add_subcommand(name, one-line description)`, a footer with
//     the longer explanation (set on a group first: its subcommands inherit it), and every option with a
//     description (`add_option`, AddText, `add_flag`; checks such as pv::cli::IntegerIn make a bad value a
//     usage error before anything runs). A group calls `require_subcommand(1)` on itself.
//  2. Keep the command's options in a struct created there (std::make_shared) and captured by its runner,
//     and register the runner with `OnRun(subcommand, ctx, [&ctx, options] { return Do(ctx, *options); })`.
//     The runner runs after the whole line parsed and ctx.config loaded; it returns the exit code
//     (kExitOk, Fail(ctx, why[, code]), or UsageError(ctx, why) for a rule CLI11 cannot check).
//  3. Declare the function in pvctl.hpp and call it in BuildApp below.
// Unknown options and commands, missing values and failed checks are then usage errors (exit 2, one
// line naming the problem and the command's --help), `pvctl <command> --help` lists the options, and
// the global options work before or after the command's name (fallthrough, inherited by every
// subcommand).
#include "pvctl.hpp"

#include <fmt/format.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <iostream>
#include <ostream>

#include "pv/command_line.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kDescription = "pvctl: the operator's tool for the pv pipeline.";

constexpr const char* kFooter = R"(At a glance:
  keys create --project P --name N [--public]   create an API key; prints it once (only its hash is kept)
  keys list [--project P]                         list keys (name, project, scope, created, last four)
  keys revoke KEY_ID                              revoke a key; ingest refuses it within seconds
  keys delete KEY_ID                              delete a key (a tombstone on pv.keys); ingest forgets it
  campaigns apply PATH... [--dry-run]             validate campaign files and publish them to pv.campaigns
  campaigns list|show ID|diff PATH|delete ID      what replicas serve; a record; differences; remove one
  topics create [--dry-run]                       create the pipeline's topics (partitions from the config)
  topics list [--all]                             topics, partitions, records, consumer-group lag
  replay --from TOPIC [--to TOPIC] [filters]      re-publish dead letters once the cause is fixed
  tail TOPIC [--follow] [--key K] [--send-id ID]  print records with partition, offset, key, headers
  suppress add|remove|list --channel C VALUE...   suppressed addresses and users (Redis; '-': stdin)
  status TRIGGER_ID|SEND_ID                       a trigger's sends and every status so far (Redis)

`pvctl COMMAND --help` lists a command's options. The options above work before or after the command.
Exit codes: 0 ok, 1 failed, 2 usage error, 3 not found.)";

void BuildApp(CLI::App& app, Context& ctx) {
  app.description(kDescription);
  app.footer(kFooter);
  app.fallthrough();  // before the subcommands: they inherit it, so global options work after them
  app.require_subcommand(1);
  app.add_option("--config", ctx.config_path,
                 "deployment config; keys_file, kafka.brokers... come from it (default: $PV_CONFIG)")
      ->type_name("PATH")
      ->envname("PV_CONFIG");
  app.add_flag("--json", ctx.json, "machine-readable output");
  AddText(&app, "--brokers", ctx.brokers, "override kafka.brokers (keys, campaigns, topics, replay, tail)",
          "HOST:PORT[,...]");
  AddText(&app, "--redis-url", ctx.redis_url,
          "override suppression.redis_url (else redis.url) for suppress, status.redis_url (else redis.url) for status", "URL");
  AddText(&app, "--keys-file", ctx.keys_file, "override keys_file for the keys commands", "PATH");
  app.add_option("--timeout", ctx.timeout_seconds, "one broker round trip, at most 3600 (default 10)")
      ->type_name("SECONDS")
      ->check(cli::SecondsUpTo(3600));
  AddKeysCommands(app, ctx);
  AddCampaignsCommands(app, ctx);
  AddTopicsCommands(app, ctx);
  AddReplayCommand(app, ctx);
  AddTailCommand(app, ctx);
  AddSuppressCommands(app, ctx);
  AddStatusCommand(app, ctx);
}

}  // namespace

void OnRun(CLI::App* command, Context& ctx, std::function<int()> run) {
  std::string path = cli::CommandPath(*command);
  path = path.substr(path.find(' ') + 1);  // without "pvctl "
  command->callback([&ctx, run = std::move(run), path = std::move(path)] {
    ctx.command = path;
    ctx.run = run;
  });
}

CLI::Option* AddText(CLI::App* command, const std::string& name, std::string& value,
                     const std::string& description, const std::string& type) {
  return command->add_option(name, value, description)->type_name(type)->check(cli::NotEmpty());
}

std::optional<std::string> PrettyJson(std::string_view text) {
  rapidjson::Document doc;
  ParseRecord(doc, text);
  if (doc.HasParseError()) return std::nullopt;
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  doc.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

int Fail(Context& ctx, std::string_view why, int code) {
  *ctx.err << fmt::format("pvctl {}: {}\n", ctx.command, why);
  return code;
}

int UsageError(Context& ctx, std::string_view why) {
  *ctx.err << fmt::format("pvctl {}: {}; run 'pvctl {} --help'\n", ctx.command, why, ctx.command);
  return kExitUsage;
}

int Run(const std::vector<std::string>& words, std::ostream& out, std::ostream& err) {
  return Run(words, std::cin, out, err);
}

int Run(const std::vector<std::string>& words, std::istream& in, std::ostream& out, std::ostream& err) {
  log::SetService("pvctl");
  log::SetLevel(log::Level::kWarn);
  Context ctx;
  ctx.in = &in;
  ctx.out = &out;
  ctx.err = &err;
  CLI::App app(kDescription, "pvctl");
  BuildApp(app, ctx);
  if (words.empty()) {
    err << app.help();
    return kExitUsage;
  }
  if (auto code = cli::Parse(app, words, out, err)) return *code;
  if (!ctx.run) {  // require_subcommand(1) at every level makes this unreachable
    err << "pvctl: no command; run 'pvctl --help'\n";
    return kExitUsage;
  }
  try {
    ctx.config = Config::Load(ctx.config_path);
    return ctx.run();
  } catch (const std::exception& e) {
    err << "pvctl: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace pv::pvctl
