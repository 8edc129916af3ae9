#include "pv/workers/providers/factory.hpp"

#include <fmt/format.h>

#include "pv/config.hpp"
#include "pv/log.hpp"
#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"
#include "pv/workers/providers/log_provider.hpp"
#include "pv/workers/providers/sendgrid_provider.hpp"
#include "pv/workers/providers/smtp_provider.hpp"
#include "pv/workers/providers/twilio_provider.hpp"

namespace pv::workers::providers {

bool TypeServes(std::string_view type, Channel channel) {
  if (type == "log") return true;
  if (type == "smtp" || type == "sendgrid") return channel == Channel::kEmail;
  if (type == "twilio") return channel == Channel::kSms;
  if (type == "fcm" || type == "apns") return channel == Channel::kPush;
  return false;
}

RateLimit LoadRateLimit(const Config& config, const std::string& name) {
  std::string p = "providers." + name + ".rate_limit.";
  RateLimit r;
  r.per_second = config.GetInt(p + "per_second", 0, 0);
  r.per_minute = config.GetInt(p + "per_minute", 0, 0);
  r.per_hour = config.GetInt(p + "per_hour", 0, 0);
  return r;
}

namespace {

std::unique_ptr<Provider> Make(const Config& config, const std::string& name, const std::string& type,
                               Channel channel, CurlLoop& loop) {
  if (type == "log") {
    std::string dir = config.GetString("providers." + name + ".outbox_dir",
                                       config.GetString("workers.outbox_dir", "outbox"));
    return std::make_unique<LogProvider>(name, dir, channel);
  }
  if (type == "smtp") return std::make_unique<SmtpProvider>(LoadSmtpSettings(config, name), loop);
  if (type == "sendgrid") return std::make_unique<SendGridProvider>(LoadSendGridSettings(config, name), loop);
  if (type == "twilio") return std::make_unique<TwilioProvider>(LoadTwilioSettings(config, name), loop);
  if (type == "fcm") return std::make_unique<FcmProvider>(LoadFcmSettings(config, name), loop);
  if (type == "apns") return std::make_unique<ApnsProvider>(LoadApnsSettings(config, name), loop);
  throw ConfigError(fmt::format(
      "providers.{}.type: unknown type '{}' (log, smtp, sendgrid, twilio, fcm, apns)", name, type));
}

}  // namespace

LoadedProviders LoadProviders(const Config& config, Channel channel, CurlLoop& loop) {
  LoadedProviders out;
  std::vector<std::string> names;
  YAML::Node section = config.Node("providers");
  if (section && section.IsMap()) {
    for (const auto& entry : section) names.push_back(entry.first.as<std::string>());
  } else if (section && !section.IsNull()) {
    throw ConfigError("providers: must be a mapping of provider names to settings");
  }
  if (std::find(names.begin(), names.end(), "log") == names.end()) names.push_back("log");
  for (const auto& name : names) {
    std::string type = config.GetString("providers." + name + ".type", name);
    if (!TypeServes(type, channel)) {
      if (type != "smtp" && type != "sendgrid" && type != "twilio" && type != "fcm" && type != "apns") {
        throw ConfigError(fmt::format(
            "providers.{}.type: unknown type '{}' (log, smtp, sendgrid, twilio, fcm, apns)", name, type));
      }
      continue;
    }
    out.providers[name] = Make(config, name, type, channel, loop);
    RateLimit limit = LoadRateLimit(config, name);
    if (!limit.empty()) out.rate_limits[name] = limit;
    pv::log::Info("provider_loaded", {{"provider", name}, {"type", type}});
  }
  return out;
}

}  // namespace pv::workers::providers
