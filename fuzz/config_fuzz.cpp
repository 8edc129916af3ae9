// The deployment configuration (common/src/config.cpp) as every binary reads it: a YAML file
// (Config::Load) with environment overrides, read through every typed getter and the providers'
// settings loaders, then `--print-config` (Describe); and the Redis URL parser (pv/redis_url.hpp) that
// every Redis client reads redis.url with (the workers, the dispatcher's suppression store, pvctl).
// Fields split at 0x1e (fuzz_support.hpp):
//
//   yaml|PV_KAFKA_BROKERS|PV_INGEST_PORT|PV_DISPATCHER_DELAY_TIERS|PV_KAFKA_PRODUCER__<name>|<value>|
//   redis user|redis host|redis URL for the parsers
//
// (an empty field leaves its variable unset). Inputs naming /dev/, /proc/ or /sys/ are skipped (key files).
// PV_REDIS_URL is redis://<user>:<marker>@<host> and PV_PROVIDERS_SG_API_KEY is the marker.
//
// Invariants: reading settings throws ConfigError (or, for delay tiers, std::invalid_argument, as
// documented) and nothing else; Describe never shows the marker (a secret, or a URL's password);
// MaskUrlPassword hides it in any URL; the Redis URL parser's two forms (an error string, an exception
// for RedisClient) accept the same URLs and read them the same way, within range.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "pv/config.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/redis_client.hpp"
#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"
#include "pv/workers/providers/sendgrid_provider.hpp"
#include "pv/workers/providers/smtp_provider.hpp"
#include "pv/workers/providers/twilio_provider.hpp"

namespace {

using pv::fuzz::Check;
namespace fs = std::filesystem;
constexpr std::string_view kMarker = "Sekr1t-M4rker";

struct File {
  File() {
    std::string base = fs::is_directory("/dev/shm") ? "/dev/shm" : fs::temp_directory_path().string();
    std::string pattern = base + "/pv-config-fuzz.XXXXXX";
    int fd = mkstemp(pattern.data());
    if (fd >= 0) ::close(fd);
    path = pattern;
  }
  ~File() { std::remove(path.c_str()); }
  std::string path;
};

// Sets (or, for an empty value, unsets) an environment variable for one input.
struct Env {
  void Set(const std::string& name, std::string_view value) {
    names.push_back(name);
    if (!value.empty()) setenv(name.c_str(), std::string(value).c_str(), 1);
  }
  ~Env() {
    for (const auto& n : names) unsetenv(n.c_str());
  }
  std::vector<std::string> names;
};

// Each getter on its own: a bad value of one setting must not hide the others.
void ReadSettings(const pv::Config& config) {
  namespace p = pv::workers::providers;
  auto attempt = [](auto read) {
    try {
      read();
    } catch (const pv::ConfigError&) {
    }
  };
  attempt([&] { (void)config.GetString("kafka.brokers", "127.0.0.1:9092"); });
  attempt([&] { (void)config.GetString("redis.url", "redis://127.0.0.1:6379"); });
  attempt([&] { (void)config.GetInt("ingest.port", 8080, 0, 65535); });
  attempt([&] { (void)config.GetMillis("ingest.body_timeout_ms", std::chrono::milliseconds(10000)); });
  attempt([&] { (void)config.GetDouble("workers.rate_per_second", 100.0); });
  attempt([&] { (void)config.GetBool("ingest.trust_proxy", false); });
  attempt([&] { (void)config.GetStringMap("kafka.producer"); });
  attempt([&] { (void)config.GetString("providers.sg.api_key", ""); });
  attempt([&] { (void)config.Node("providers"); });
  attempt([&] {
    try {
      (void)pv::ladder::ParseTiers(config.GetList("dispatcher.delay_tiers", pv::topics::DefaultDelayTiers()));
    } catch (const std::invalid_argument&) {
    }
  });
  attempt([&] { (void)p::LoadSmtpSettings(config, "smtp"); });
  attempt([&] { (void)p::LoadSendGridSettings(config, "sg"); });
  attempt([&] { (void)p::LoadTwilioSettings(config, "twilio"); });
  attempt([&] { (void)p::LoadApnsSettings(config, "apns"); });
  attempt([&] { (void)p::LoadFcmSettings(config, "fcm"); });
}

// The password of `url` as MaskUrlPassword reads it (what follows the first ':' of the userinfo), when
// long enough to be told apart from the rest of the URL, else "".
std::string PasswordOf(std::string_view url) {
  size_t sep = url.find("://");
  size_t start = sep == std::string_view::npos ? 0 : sep + 3;
  size_t at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return {};
  std::string_view userinfo = url.substr(start, at - start);
  size_t colon = userinfo.find(':');
  std::string_view password = colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1);
  std::string masked = pv::MaskUrlPassword(url);
  return password.size() >= 6 && masked.find(password) == std::string::npos ? std::string(password) : "";
}

void RedisUrls(std::string_view url) {
  std::string password = PasswordOf(url);
  auto hidden = [&](std::string_view text) {
    return password.empty() || text.find(password) == std::string_view::npos;
  };
  pv::RedisUrl a;
  std::string error;
  bool parsed = pv::ParseRedisUrl(url, a, error);
  bool endpoint_ok = true;
  pv::RedisEndpoint b;
  try {
    b = pv::ParseRedisEndpoint(std::string(url));
  } catch (const std::invalid_argument& e) {
    endpoint_ok = false;
    Check(hidden(e.what()), "a Redis URL error shows the password", e.what());
  }
  Check(parsed || hidden(error), "a Redis URL error shows the password", error);
  Check(parsed == endpoint_ok, "the Redis URL parser's two forms disagree on whether a URL is valid", url);
  if (parsed) {
    Check(a.host == b.host && a.port == b.port && a.password == b.password && a.db == b.db,
          "the Redis URL parser's two forms read a URL differently", url);
    Check(a.port > 0 && a.port <= 65535 && a.db >= 0 && !a.host.empty(), "a Redis URL read out of range",
          url);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static File file;
  // Key and credential files are read whole: /dev/zero would read forever (operator input, by design).
  std::string_view all(reinterpret_cast<const char*>(data), size);
  for (std::string_view special : {"/dev/", "/proc/", "/sys/"}) {
    if (all.find(special) != std::string_view::npos) return 0;
  }
  pv::fuzz::Fields in(data, size);
  std::string_view yaml = in.Next();
  {
    std::ofstream out(file.path, std::ios::binary | std::ios::trunc);
    out.write(yaml.data(), static_cast<std::streamsize>(yaml.size()));
  }
  pv::fuzz::Budget budget("config");
  Env env;
  std::vector<std::string_view> fields = {yaml};
  auto next = [&] { return fields.emplace_back(in.Next()); };
  env.Set("PV_KAFKA_BROKERS", next());
  env.Set("PV_INGEST_PORT", next());
  env.Set("PV_DISPATCHER_DELAY_TIERS", next());
  std::string map_name(next());
  std::string_view map_value = next();
  if (!map_name.empty() && map_name.find('=') == std::string::npos &&
      map_name.find('\0') == std::string::npos) {
    env.Set("PV_KAFKA_PRODUCER__" + map_name, map_value.empty() ? "x" : map_value);
  }
  std::string_view user = next();
  std::string_view host = next();
  std::string redis_url =
      "redis://" + std::string(user) + ":" + std::string(kMarker) + "@" + std::string(host);
  env.Set("PV_REDIS_URL", redis_url);
  env.Set("PV_PROVIDERS_SG_API_KEY", kMarker);
  std::string_view parser_url = in.Rest();
  // The marker is a secret only where this target puts it.
  bool marker_elsewhere = false;
  for (std::string_view f : fields)
    marker_elsewhere = marker_elsewhere || f.find("M4rker") != std::string_view::npos;

  if (!marker_elsewhere) {
    std::string masked = pv::MaskUrlPassword(redis_url);
    Check(masked.find(kMarker) == std::string::npos, "MaskUrlPassword shows the password", masked);
  }
  try {
    pv::Config config = pv::Config::Load(file.path);
    ReadSettings(config);
    std::string shown = config.Describe();
    Check(marker_elsewhere || shown.find(kMarker) == std::string::npos, "--print-config shows a secret",
          shown);
  } catch (const pv::ConfigError&) {
  }
  RedisUrls(parser_url);
  return 0;
}
