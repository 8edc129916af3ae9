// pvctl: the operator's tool. One CLI11 App (pvctl.cpp) with the global options; each command group
// lives in its own file (keys.cpp, ...) and adds its subcommands to the App (Add*Commands below);
// main.cpp only calls Run. Exit codes scripts can rely on:
//   0 success, 1 operation failed (e.g. broker unreachable), 2 usage error, 3 not found.
#pragma once

#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pv/config.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace pv::pvctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;

// What every command gets: the global options (given before or after the command's name), the
// deployment config (loaded once the whole line parsed, before the command runs) and the streams.
// A command's own options live in a struct its Add*Commands function creates and its runner captures.
struct Context {
  std::string config_path;      // --config PATH, else $PV_CONFIG
  std::string brokers;          // --brokers: overrides kafka.brokers
  std::string redis_url;        // --redis-url: overrides the suppression store's URL (status: redis.url)
  std::string keys_file;        // --keys-file: overrides keys_file
  double timeout_seconds = 10;  // --timeout: one broker round trip (kafka_client.hpp RequestTimeout)
  bool json = false;            // --json
  Config config;
  std::istream* in = nullptr;  // `suppress add -` reads values here
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  std::string command;       // the command being run, for messages: "keys create"
  std::function<int()> run;  // set by OnRun for the command the line names
};

// Makes `run` what the subcommand `command` does: Run calls it once the whole command line parsed
// and the config loaded; its return value is pvctl's exit code (an exception: message, exit 1).
void OnRun(CLI::App* command, Context& ctx, std::function<int()> run);

// A usage error a command finds itself (a rule across options, say): prints
// "pvctl <command>: <why>; run 'pvctl <command> --help'" on ctx.err and returns kExitUsage.
int UsageError(Context& ctx, std::string_view why);

// A failure the command reports itself: prints "pvctl <command>: <why>" on ctx.err, returns `code`.
int Fail(Context& ctx, std::string_view why, int code = kExitFailed);

// A text option that refuses "" (`--name=`), its value shown as `type` in the help (PATH, ID...).
CLI::Option* AddText(CLI::App* command, const std::string& name, std::string& value,
                     const std::string& description, const std::string& type);

// A JSON text (a record's value) indented two spaces a level; nullopt when it is not JSON.
std::optional<std::string> PrettyJson(std::string_view text);

// "[f(a),f(b),...]": the arrays of --json output.
template <typename Items, typename F>
std::string JsonArray(const Items& items, F&& f) {
  std::string out = "[";
  for (const auto& item : items) out += (out.size() > 1 ? "," : "") + f(item);
  return out + "]";
}

// Runs a whole command line (without the program name). Returns the exit code. The first form reads
// standard input (std::cin) where a command reads it.
int Run(const std::vector<std::string>& words, std::ostream& out, std::ostream& err);
int Run(const std::vector<std::string>& words, std::istream& in, std::ostream& out, std::ostream& err);

// Command groups: each adds its subcommands, their options and help to pvctl's App.
void AddKeysCommands(CLI::App& app, Context& ctx);       // keys.cpp
void AddCampaignsCommands(CLI::App& app, Context& ctx);  // campaigns.cpp
void AddTopicsCommands(CLI::App& app, Context& ctx);     // topics.cpp
void AddReplayCommand(CLI::App& app, Context& ctx);      // replay.cpp
void AddTailCommand(CLI::App& app, Context& ctx);        // tail.cpp
void AddSuppressCommands(CLI::App& app, Context& ctx);   // suppress.cpp
void AddStatusCommand(CLI::App& app, Context& ctx);      // status.cpp

}  // namespace pv::pvctl
