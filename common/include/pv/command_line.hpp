// Command lines of every pv binary (pvctl, the services, the dev broker, the fill tools), on CLI11
// (Debian's libcli11-dev). CLI11 declares the options and parses; this adds what all of them share:
// one line per usage error that names the problem, suggests the nearest known name and points at
// the right --help, and the exit codes 0 (help) and 2 (usage error).
//
//   CLI::App app("What it does.", "pv-thing");
//   app.add_option("--count", count, "how many")->check(pv::cli::IntegerIn(1, 1000));
//   if (auto code = pv::cli::Parse(app, args, std::cout, std::cerr)) return *code;
//
// Tests: common/test/command_line_test.cpp.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pv::cli {

inline constexpr int kExitHelp = 0;
inline constexpr int kExitUsage = 2;

// Parses `args` (without the program name). nullopt: go on. Otherwise the exit code, once printed:
// kExitHelp after the --help of the command the line selected (`pvctl replay --help`: replay's) on
// `out`; kExitUsage after ErrorMessage on `err`.
std::optional<int> Parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out,
                         std::ostream& err);

// One line for a failed parse, e.g. "pvctl replay: unknown option '--dryrun' (did you mean
// '--dry-run'?); run 'pvctl replay --help'": an unknown command where one is expected, else every
// unknown option (an unknown option's value is then an unexpected argument too, and not worth
// naming), else an unexpected argument, a missing command, an option without its value, or CLI11's
// own message.
std::string ErrorMessage(const CLI::App& root, const CLI::ParseError& error);

// The deepest subcommand the parsed line selected; `root` when none.
const CLI::App& Selected(const CLI::App& root);

// "pvctl keys create": the names from the root down to `app`.
std::string CommandPath(const CLI::App& app);

// The name in `known` nearest to `word` (a mistyped option or command), "" when none is near: at most
// two edits apart, '_' and '-' and letter case not counted.
std::string Nearest(std::string_view word, const std::vector<std::string>& known);

// Validators whose messages say the rule: "--limit: 'x' is not an integer in 1..1000".
CLI::Validator IntegerIn(std::int64_t min, std::int64_t max);
// A number of seconds in (0, max] (fractions allowed).
CLI::Validator SecondsUpTo(double max);
// Refuses "" (`--name=`).
CLI::Validator NotEmpty();

}  // namespace pv::cli
