#include "pv/command_line.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <ostream>

#include "pv/strings.hpp"

namespace pv::cli {
namespace {

bool IsOptionWord(std::string_view word) {
  return word.size() > 1 && word[0] == '-';
}

// Every option name the command accepts: its own and, through fallthrough, its parents'.
std::vector<std::string> OptionNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* option : a->get_options()) {
      if (option->get_group().empty()) continue;  // hidden
      for (const auto& n : option->get_lnames()) names.push_back("--" + n);
      for (const auto& n : option->get_snames()) names.push_back("-" + n);
    }
    if (!a->get_fallthrough()) break;
  }
  return names;
}

std::vector<std::string> CommandNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App* s) { return !s->get_name().empty(); })) {
    names.push_back(sub->get_name());
  }
  return names;
}

// "a, b or c"
std::string OneOf(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += i == 0 ? "" : i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string>& known) {
  std::string near = Nearest(word, known);
  return near.empty() ? "" : fmt::format(" (did you mean '{}'?)", near);
}

char Fold(char c) {
  return c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Edit distance (insertions, deletions, substitutions), two rows.
size_t Distance(std::string_view a, std::string_view b) {
  std::vector<size_t> previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitute = previous[j - 1] + (Fold(a[i - 1]) == Fold(b[j - 1]) ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitute});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

}  // namespace

const CLI::App& Selected(const CLI::App& root) {
  const CLI::App* app = &root;
  // Bounded by the depth of the command tree the program declared.
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  return *app;
}

std::string CommandPath(const CLI::App& app) {
  std::vector<const CLI::App*> chain;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) chain.push_back(a);
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    if (!path.empty()) path += ' ';
    path += (*it)->get_name();
  }
  return path;
}

std::string Nearest(std::string_view word, const std::vector<std::string>& known) {
  std::string best;
  size_t best_distance = SIZE_MAX;
  for (const auto& name : known) {
    size_t d = Distance(word, name);
    // At most two edits, and fewer than half the name's letters: "-x" is no typo of "-h".
    size_t allowed = std::min<size_t>(2, name.empty() ? 0 : (name.size() - 1) / 2);
    if (d <= allowed && d < best_distance) {
      best = name;
      best_distance = d;
    }
  }
  return best;
}

std::string ErrorMessage(const CLI::App& root, const CLI::ParseError& error) {
  const CLI::App& at = Selected(root);
  const std::string path = CommandPath(at);
  const std::vector<std::string> extras = root.remaining(true);
  std::vector<std::string> problems;
  const std::vector<std::string> commands = CommandNames(at);
  const bool needs_command = !commands.empty() && at.get_subcommands().empty();
  auto word = std::find_if(extras.begin(), extras.end(), [](const auto& w) { return !IsOptionWord(w); });
  if (needs_command && word != extras.end()) {
    // A mistyped command: the options after it are its own, not worth naming.
    problems.push_back(fmt::format("unknown command '{}'{}; the commands are {}", *word,
                                   DidYouMean(*word, commands), OneOf(commands)));
  } else {
    for (const auto& w : extras) {
      if (!IsOptionWord(w)) continue;
      std::string name = w.substr(0, w.find('='));
      problems.push_back(fmt::format("unknown option '{}'{}", name, DidYouMean(name, OptionNames(at))));
    }
    if (problems.empty() && word != extras.end())
      problems.push_back(fmt::format("unexpected argument '{}'", *word));
  }
  if (problems.empty()) {
    std::string what = error.what();
    // CLI11: "--from: 1 required TEXT missing" (the option was last, or before another option).
    auto colon = what.find(": ");
    if (dynamic_cast<const CLI::RequiredError*>(&error) != nullptr && needs_command) {
      problems.push_back(fmt::format("a command is required: {}", OneOf(commands)));
    } else if (dynamic_cast<const CLI::ArgumentMismatch*>(&error) != nullptr && colon != std::string::npos &&
               what.find(" required ") != std::string::npos && what.size() > 8 &&
               what.compare(what.size() - 8, 8, " missing") == 0) {
      problems.push_back(fmt::format("{} needs a value", what.substr(0, colon)));
    } else {
      problems.push_back(std::move(what));
    }
  }
  std::string line = path + ": ";
  for (size_t i = 0; i < problems.size(); ++i) line += (i == 0 ? "" : ", ") + problems[i];
  return line + fmt::format("; run '{} --help'", path);
}

std::optional<int> Parse(CLI::App& app, const std::vector<std::string>& args, std::ostream& out,
                         std::ostream& err) {
  // CLI11 takes the words last first.
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    out << app.help();  // the selected subcommand's
    return kExitHelp;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitHelp;
  } catch (const CLI::ParseError& e) {
    err << ErrorMessage(app, e) << "\n";
    return kExitUsage;
  }
  return std::nullopt;
}

CLI::Validator IntegerIn(std::int64_t min, std::int64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        std::int64_t value = 0;
        if (!ParseNumber(text, value) || value < min || value > max) {
          return max == INT64_MAX ? fmt::format("'{}' is not an integer >= {}", text, min)
                                  : fmt::format("'{}' is not an integer in {}..{}", text, min, max);
        }
        return "";
      },
      "");  // the option's description says the range where it matters
}

CLI::Validator SecondsUpTo(double max) {
  return CLI::Validator(
      [max](std::string& text) -> std::string {
        double value = 0;
        if (!ParseNumber(text, value) || !std::isfinite(value) || value <= 0 || value > max) {
          return fmt::format("'{}' is not a number of seconds in (0, {}]", text, max);
        }
        return "";
      },
      "");
}

CLI::Validator NotEmpty() {
  return CLI::Validator(
      [](std::string& text) -> std::string { return text.empty() ? "must not be empty" : ""; }, "");
}

}  // namespace pv::cli
