#include "pv/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "pv/files.hpp"

extern char** environ;  // NOLINT

namespace pv {
namespace {

YAML::Node FindNode(const YAML::Node& root, std::string_view key) {
  YAML::Node node = YAML::Clone(root);
  size_t start = 0;
  while (start <= key.size()) {
    size_t dot = key.find('.', start);
    std::string part(key.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (!node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node child = node[part];
    if (!child) return YAML::Node(YAML::NodeType::Undefined);
    node = child;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return node;
}

bool IsSecretKey(std::string_view key) {
  auto last = key.substr(key.rfind('.') == std::string_view::npos ? 0 : key.rfind('.') + 1);
  std::string lower(last);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (std::string_view word : {"secret", "password", "token", "key", "credentials"}) {
    if (lower.find(word) != std::string::npos && lower.find("file") == std::string::npos &&
        lower.find("dir") == std::string::npos) {
      return true;
    }
  }
  return false;
}

// "scheme://..." with a scheme of RFC 3986 3.1 (a letter, then letters, digits, '+', '-', '.').
bool StartsWithScheme(std::string_view value) {
  size_t sep = value.find("://");
  if (sep == std::string_view::npos || sep == 0 || !std::isalpha(static_cast<unsigned char>(value[0]))) {
    return false;
  }
  return std::all_of(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(sep),
                     [](unsigned char c) { return std::isalnum(c) || c == '+' || c == '-' || c == '.'; });
}

bool IsUrlKey(std::string_view key) {
  std::string lower(key.substr(key.rfind('.') == std::string_view::npos ? 0 : key.rfind('.') + 1));
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return lower.size() >= 3 && lower.compare(lower.size() - 3, 3, "url") == 0;
}

// The settings PV_<NAME>_FILE may give: those --print-config masks (secrets, and URLs, which carry
// Redis's password). Only these, so that PV_<NAME>_FILE can never be mistaken for the variable of a
// real setting named <name>_file (keys_file, key_file, ca_file, credentials_file are not secrets:
// IsSecretKey leaves out every name containing "file").
bool ReadsFromFile(std::string_view key) {
  return IsSecretKey(key) || IsUrlKey(key);
}

// The value of a secret from the file `path` named by the environment variable `variable`: the whole
// file but its trailing line breaks. Refused: unreadable, not a regular file, over kMaxSecretFileBytes,
// or holding a NUL byte (no setting can hold one).
std::string ReadSecretFile(std::string_view key, const std::string& variable, const std::string& path) {
  constexpr std::size_t kMaxSecretFileBytes = 64 * 1024;  // an FCM service-account JSON is ~2.5 KiB
  auto fail = [&](std::string_view why) {
    return ConfigError(fmt::format("setting {} ({}={}): {}", key, variable, path, why));
  };
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (ec) throw fail(fmt::format("cannot read: {}", ec.message()));
  if (!std::filesystem::is_regular_file(status)) throw fail("not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw fail(fmt::format("cannot read: {}", std::strerror(errno)));
  std::string value(kMaxSecretFileBytes + 1, '\0');
  in.read(value.data(), static_cast<std::streamsize>(value.size()));
  if (in.bad()) throw fail(fmt::format("cannot read: {}", std::strerror(errno)));
  value.resize(static_cast<std::size_t>(in.gcount()));
  if (value.size() > kMaxSecretFileBytes)
    throw fail(fmt::format("larger than {} bytes", kMaxSecretFileBytes));
  if (value.find('\0') != std::string::npos) throw fail("holds a NUL byte");
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  return value;
}

}  // namespace

std::string MaskUrlPassword(std::string_view url) {
  size_t sep = url.find("://");
  size_t start = sep == std::string_view::npos ? 0 : sep + 3;
  size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  std::string_view userinfo = url.substr(start, at - start);
  size_t colon = userinfo.find(':');
  std::string out(url.substr(0, start));
  if (colon != std::string_view::npos) out += userinfo.substr(0, colon + 1);
  out += "****";
  out += url.substr(at);
  return out;
}

Config Config::Load(const std::string& path) {
  Config config;
  config.path_ = path;
  if (path.empty()) {
    config.root_ = YAML::Node(YAML::NodeType::Map);
    return config;
  }
  std::optional<std::string> text = ReadFile(path);
  if (!text) throw ConfigError(fmt::format("config file {}: cannot open: {}", path, std::strerror(errno)));
  try {
    config.root_ = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("config file {}: {}", path, e.what()));
  }
  if (config.root_.IsNull()) config.root_ = YAML::Node(YAML::NodeType::Map);
  if (!config.root_.IsMap())
    throw ConfigError(fmt::format("config file {}: top level must be a mapping", path));
  return config;
}

Config Config::FromYaml(const std::string& yaml_text) {
  Config config;
  config.path_ = "<inline>";
  config.root_ = YAML::Load(yaml_text);
  if (config.root_.IsNull()) config.root_ = YAML::Node(YAML::NodeType::Map);
  return config;
}

std::string Config::EnvName(std::string_view key) {
  std::string name = "PV_";
  for (char c : key) {
    name += (c == '.' || c == '-') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return name;
}

bool Config::Lookup(std::string_view key, std::string& value, std::string& source) const {
  std::string env = EnvName(key);
  std::string file_env = env + "_FILE";
  if (const char* path = std::getenv(file_env.c_str()); path != nullptr) {
    if (!ReadsFromFile(key)) {
      throw ConfigError(
          fmt::format("{}: setting {} is not a secret: only the settings --print-config masks (secrets, "
                      "URLs) can be read "
                      "from a file; set {} instead",
                      file_env, key, env));
    }
    if (std::getenv(env.c_str()) != nullptr) {
      throw ConfigError(fmt::format("setting {}: both {} and {} are set; set one", key, env, file_env));
    }
    value = ReadSecretFile(key, file_env, path);
    source = fmt::format("env {}={}", file_env, path);
    return true;
  }
  if (const char* v = std::getenv(env.c_str()); v != nullptr) {
    value = v;
    source = "env " + env;
    return true;
  }
  YAML::Node node = FindNode(root_, key);
  if (node && node.IsScalar()) {
    value = node.Scalar();
    source = "file " + path_;
    return true;
  }
  if (node && !node.IsNull()) {
    throw ConfigError(fmt::format("{}: setting '{}' must be a single value", path_, key));
  }
  return false;
}

void Config::Record(std::string_view key, const std::string& value, const std::string& source) const {
  std::lock_guard lock(seen_mutex_);
  seen_[std::string(key)] = {value, source};
}

std::string Config::GetString(std::string_view key, std::string_view default_value) const {
  std::string value;
  std::string source;
  if (!Lookup(key, value, source)) {
    value = std::string(default_value);
    source = "default";
  }
  Record(key, value, source);
  return value;
}

std::int64_t Config::GetInt(std::string_view key, std::int64_t default_value, std::int64_t min,
                            std::int64_t max) const {
  std::string value;
  std::string source;
  if (!Lookup(key, value, source)) {
    Record(key, std::to_string(default_value), "default");
    return default_value;
  }
  errno = 0;
  char* end = nullptr;
  long long parsed = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || errno != 0 || end == nullptr || *end != '\0') {
    throw ConfigError(fmt::format("setting {} ({}): '{}' is not an integer", key, source, value));
  }
  if (parsed < min || parsed > max) {
    throw ConfigError(
        fmt::format("setting {} ({}): {} is out of range [{}, {}]", key, source, parsed, min, max));
  }
  Record(key, value, source);
  return parsed;
}

double Config::GetDouble(std::string_view key, double default_value) const {
  std::string value;
  std::string source;
  if (!Lookup(key, value, source)) {
    Record(key, fmt::format("{}", default_value), "default");
    return default_value;
  }
  char* end = nullptr;
  double parsed = std::strtod(value.c_str(), &end);
  if (value.empty() || end == nullptr || *end != '\0') {
    throw ConfigError(fmt::format("setting {} ({}): '{}' is not a number", key, source, value));
  }
  Record(key, value, source);
  return parsed;
}

bool Config::GetBool(std::string_view key, bool default_value) const {
  std::string value;
  std::string source;
  if (!Lookup(key, value, source)) {
    Record(key, default_value ? "true" : "false", "default");
    return default_value;
  }
  std::string lower = value;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  bool parsed = false;
  if (lower == "true" || lower == "yes" || lower == "on" || lower == "1") {
    parsed = true;
  } else if (lower == "false" || lower == "no" || lower == "off" || lower == "0") {
    parsed = false;
  } else {
    throw ConfigError(fmt::format("setting {} ({}): '{}' is not a boolean (true/false)", key, source, value));
  }
  Record(key, value, source);
  return parsed;
}

std::chrono::milliseconds Config::GetMillis(std::string_view key,
                                            std::chrono::milliseconds default_value) const {
  return std::chrono::milliseconds(GetInt(key, default_value.count(), 0));
}

std::vector<std::string> Config::GetList(std::string_view key,
                                         const std::vector<std::string>& default_value) const {
  std::string env = EnvName(key);
  std::vector<std::string> out;
  if (const char* v = std::getenv(env.c_str()); v != nullptr) {
    std::string_view rest(v);
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      // "a, b" means a and b: blanks around items are never part of them.
      while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front()))) item.remove_prefix(1);
      while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.remove_suffix(1);
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    Record(key, v, "env " + env);
    return out;
  }
  YAML::Node node = FindNode(root_, key);
  if (!node) {
    std::string joined;
    for (const auto& item : default_value) joined += (joined.empty() ? "" : ",") + item;
    Record(key, joined, "default");
    return default_value;
  }
  if (!node.IsSequence()) throw ConfigError(fmt::format("{}: setting '{}' must be a list", path_, key));
  std::string joined;
  for (const auto& item : node) {
    if (!item.IsScalar()) {
      throw ConfigError(fmt::format("{}: setting '{}': every item must be a single value", path_, key));
    }
    out.push_back(item.as<std::string>());
    joined += (joined.empty() ? "" : ",") + out.back();
  }
  Record(key, joined, "file " + path_);
  return out;
}

std::map<std::string, std::string> Config::GetStringMap(std::string_view key) const {
  std::map<std::string, std::string> out;
  YAML::Node node = FindNode(root_, key);
  if (node && !node.IsNull()) {
    if (!node.IsMap()) throw ConfigError(fmt::format("{}: setting '{}' must be a mapping", path_, key));
    for (const auto& item : node) {
      auto name = item.first.as<std::string>();
      if (!item.second.IsScalar()) {
        throw ConfigError(fmt::format("{}: setting '{}.{}' must be a single value", path_, key, name));
      }
      out[name] = item.second.as<std::string>();
    }
  }
  std::string prefix = EnvName(key) + "__";
  auto entry_name = [](std::string_view env_name) {
    std::string name(env_name);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return c == '_' ? '.' : static_cast<char>(std::tolower(c)); });
    return name;
  };
  std::map<std::string, std::string> sources;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.substr(0, prefix.size()) != prefix) continue;
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view env_name = entry.substr(prefix.size(), eq - prefix.size());
    std::string name = entry_name(env_name);
    // PV_KAFKA_PROPERTIES__SASL_PASSWORD_FILE: a secret entry (sasl.password) read from a file.
    constexpr std::string_view kFile = "_FILE";
    if (env_name.size() > kFile.size() && env_name.substr(env_name.size() - kFile.size()) == kFile) {
      std::string base = entry_name(env_name.substr(0, env_name.size() - kFile.size()));
      std::string base_full = std::string(key) + "." + base;
      if (IsSecretKey(base_full)) {
        std::string variable(entry.substr(0, eq));
        std::string plain = variable.substr(0, variable.size() - kFile.size());
        if (std::getenv(plain.c_str()) != nullptr) {
          throw ConfigError(
              fmt::format("setting {}: both {} and {} are set; set one", base_full, plain, variable));
        }
        std::string path(entry.substr(eq + 1));
        out[base] = ReadSecretFile(base_full, variable, path);
        sources[base] = fmt::format("env {}={}", variable, path);
        continue;
      }
    }
    out[name] = std::string(entry.substr(eq + 1));
    sources[name] = "map";
  }
  for (const auto& [name, value] : out) {
    auto source = sources.find(name);
    Record(std::string(key) + "." + name, value, source == sources.end() ? "map" : source->second);
  }
  return out;
}

YAML::Node Config::Node(std::string_view key) const {
  return FindNode(root_, key);
}

std::string Config::Describe() const {
  std::lock_guard lock(seen_mutex_);
  std::string out;
  for (const auto& [key, entry] : seen_) {
    const auto& [value, source] = entry;
    std::string shown = value;
    if (IsSecretKey(key) && !value.empty()) {
      shown = "********";
    } else if (IsUrlKey(key) || StartsWithScheme(value)) {
      shown = MaskUrlPassword(value);  // redis.url carries Redis's password
    }
    out += fmt::format("{} = {} ({})\n", key, shown, source);
  }
  return out;
}

}  // namespace pv
