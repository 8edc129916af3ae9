// Deployment configuration: one YAML file, every setting overridable from the environment.
//
// A setting is named by its path in the file ("kafka.brokers"); its environment variable is
// PV_ + the path in upper case with dots as underscores ("PV_KAFKA_BROKERS"). The environment wins.
// A secret (a setting --print-config masks: names with password, token, secret, key, credentials, and
// URLs) may instead come from a file: PV_<NAME>_FILE=/run/secrets/x reads the file, trailing line
// breaks removed, at most 64 KiB; setting both PV_<NAME> and PV_<NAME>_FILE, or _FILE for a setting
// that is not a secret, is a ConfigError. Likewise PV_KAFKA_PROPERTIES__SASL_PASSWORD_FILE for a
// secret entry of a map (GetStringMap).
// Every lookup is recorded with its default, so `--print-config` shows the effective settings and
// where each came from. Errors name the setting and its source. See docs/configuration.md.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pv {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `url` with the password of its userinfo masked, for every place a URL is printed or logged:
// "redis://user:****@host:6379/0". A userinfo without ':' is masked whole ("redis://****@host"): Redis
// URLs read it as the password. The userinfo is everything before the last '@' (as pv's Redis URL
// parsers read it, so a password holding '/' or '@' is masked whole); without "://", everything
// before the last '@' of the string (a mistyped scheme must not show the password either).
// A value without '@' is returned as it is.
std::string MaskUrlPassword(std::string_view url);

class Config {
 public:
  // Empty path: defaults and environment only. Throws ConfigError when the file is unreadable or
  // not YAML.
  static Config Load(const std::string& path);
  static Config FromYaml(const std::string& yaml_text);  // for tests

  std::string GetString(std::string_view key, std::string_view default_value) const;
  std::int64_t GetInt(std::string_view key, std::int64_t default_value, std::int64_t min = INT64_MIN,
                      std::int64_t max = INT64_MAX) const;
  double GetDouble(std::string_view key, double default_value) const;
  bool GetBool(std::string_view key, bool default_value) const;
  std::chrono::milliseconds GetMillis(std::string_view key, std::chrono::milliseconds default_value) const;
  // A list from a YAML sequence, or from the environment as a comma-separated string.
  std::vector<std::string> GetList(std::string_view key, const std::vector<std::string>& default_value) const;
  // A map of string to string (e.g. extra librdkafka properties) from a YAML mapping; environment
  // entries PV_<KEY>__<NAME>=value add to it (NAME lower-cased, '_' becomes '.').
  std::map<std::string, std::string> GetStringMap(std::string_view key) const;
  // The raw node (undefined node when absent), for structured sections such as providers.
  YAML::Node Node(std::string_view key) const;

  static std::string EnvName(std::string_view key);
  const std::string& path() const { return path_; }

  // "key = value (source)" lines for every setting looked up so far; secrets (keys whose last
  // part contains "secret", "password", "token" or "key") are masked, and so is the password in any
  // URL (MaskUrlPassword: values of keys ending in "url", and values that start with scheme://).
  std::string Describe() const;

 private:
  // Returns the value as a string and where it came from ("env PV_X", "file", "default").
  bool Lookup(std::string_view key, std::string& value, std::string& source) const;
  void Record(std::string_view key, const std::string& value, const std::string& source) const;

  std::string path_;
  YAML::Node root_;
  mutable std::mutex seen_mutex_;
  mutable std::map<std::string, std::pair<std::string, std::string>, std::less<>> seen_;

 public:
  Config() = default;
  Config(Config&& other) noexcept
      : path_(std::move(other.path_)), root_(other.root_), seen_(std::move(other.seen_)) {}
  Config& operator=(Config&& other) noexcept {
    path_ = std::move(other.path_);
    root_ = other.root_;
    seen_ = std::move(other.seen_);
    return *this;
  }
};

}  // namespace pv
