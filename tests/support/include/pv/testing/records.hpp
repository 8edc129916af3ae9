// pv::testing: record values as the components write them, for tests that feed a component its input
// without running the one upstream (a trigger as ingest writes it, a send as the dispatcher does).
#pragma once

#include <string>

#include "pv/topics.hpp"

namespace pv::testing {

// The value of a trigger record as ingest writes it (project demo), received now. `user_json` and
// `event_json` are JSON objects.
std::string TriggerValue(const std::string& trigger_id, const std::string& campaign_id,
                         const std::string& user_json, const std::string& event_json);

struct SendSpec {
  Channel channel = Channel::kEmail;
  std::string send_id;  // empty: a new UUID
  std::string campaign_id = "44";
  std::string provider = "log";
  std::string fallback_provider;
  std::string address;  // empty: a default for the channel
  std::string external_id = "user-1";
  int attempt = 1;
};

// A pv.send.<channel> value as the dispatcher writes it. `send_id` gets the id used.
std::string SendValue(const SendSpec& spec, std::string* send_id = nullptr);
std::string NewSendId();

}  // namespace pv::testing
