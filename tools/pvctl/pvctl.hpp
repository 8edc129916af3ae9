// pvctl: the operator's tool. Each command group lives in its own file (keys.cpp, ...) and
// registers here; main.cpp only calls Run. Exit codes scripts can rely on:
//   0 success, 1 operation failed (e.g. broker unreachable), 2 usage error, 3 not found.
#pragma once

#include <functional>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "pv/config.hpp"

namespace pv::pvctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;

// Parsed command line: positional words and --name value / --flag options.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> options;  // "--project" -> "demo"; flags map to "true"

  bool Has(const std::string& name) const { return options.count(name) != 0; }
  std::string Get(const std::string& name, const std::string& def = "") const {
    auto it = options.find(name);
    return it == options.end() ? def : it->second;
  }
};

struct Context {
  Args args;
  Config config;
  bool json = false;
  std::ostream* out;
  std::ostream* err;
};

// Flags that take no value (everything else after "--x" takes the next word).
bool IsFlag(const std::string& name);
Args ParseArgs(const std::vector<std::string>& words);

// Runs a whole command line (without the program name). Returns the exit code.
int Run(const std::vector<std::string>& words, std::ostream& out, std::ostream& err);

// Command groups.
int KeysCommand(Context& ctx);      // keys.cpp
int TopicsCommand(Context& ctx);    // topics.cpp
int ReplayCommand(Context& ctx);    // replay.cpp
int TailCommand(Context& ctx);      // tail.cpp
int SuppressCommand(Context& ctx);  // suppress.cpp

}  // namespace pv::pvctl
