// pvctl in-process for tests: pv::pvctl::Run (the binary's code) on a command line, with what it
// printed and its exit code. The unit tests (here) and the integration tests (tests/pvctl,
// tests/feedback) share it; include it as "test/pvctl_runner.hpp" (pv_pvctl's include directory).
#pragma once

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "pvctl.hpp"

namespace pv::testing {

struct PvctlResult {
  int rc = -1;
  std::string out;
  std::string err;
};

// Runs `words` (without the program name); `input`, when given, is its standard input (else std::cin).
inline PvctlResult RunPvctl(const std::vector<std::string>& words,
                            const std::optional<std::string>& input = std::nullopt) {
  std::ostringstream out, err;
  PvctlResult r;
  if (input) {
    std::istringstream in(*input);
    r.rc = pvctl::Run(words, in, out, err);
  } else {
    r.rc = pvctl::Run(words, out, err);
  }
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace pv::testing
