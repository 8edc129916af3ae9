// Builds a worker's providers from the deployment config:
//
//   providers:
//     <name>:                      # the name campaigns use (provider / fallback_provider)
//       type: log|smtp|sendgrid|twilio|fcm|apns   # default: the name itself
//       base_url: ...              # every network provider; tests point it at a local fake
//       rate_limit: {per_second: 10, per_minute: 500, per_hour: 20000}   # optional, shared by all workers
//       ...                        # the type's own settings (docs/configuration-workers.md)
//
// A worker loads the providers whose type serves its channel (log: all; smtp, sendgrid: email;
// twilio: text; fcm, apns: push). `log` is always there, writing to workers.outbox_dir, unless the
// config defines a provider named log itself.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "pv/topics.hpp"
#include "pv/workers/curl_loop.hpp"
#include "pv/workers/dedupe_store.hpp"
#include "pv/workers/provider.hpp"

namespace pv {
class Config;
}

namespace pv::workers::providers {

struct LoadedProviders {
  std::map<std::string, std::unique_ptr<Provider>> providers;
  std::map<std::string, RateLimit> rate_limits;  // providers with at least one limit
};

bool TypeServes(std::string_view type, Channel channel);

// Throws ConfigError (bad or missing settings) or KeyError (unreadable keys).
LoadedProviders LoadProviders(const Config& config, Channel channel, CurlLoop& loop);

RateLimit LoadRateLimit(const Config& config, const std::string& name);

}  // namespace pv::workers::providers
