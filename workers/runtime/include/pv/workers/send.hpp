// A send as the dispatcher wrote it to pv.send.<channel> (DESIGN.md "Records"), and the pv.events
// records that report what became of it.
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "pv/topics.hpp"

namespace pv::workers {

struct Send {
  std::string value;  // the record's value, unchanged: the delay ladder and the DLQ carry it as is
  std::string key;    // the record's key (to.external_id)
  rapidjson::Document doc;
  std::string send_id;
  std::string trigger_id;
  std::string project;
  std::string campaign_id;
  std::string channel;  // "email" | "text" | "push"
  std::string provider;
  std::string fallback_provider;  // empty: none
  // When ingest received the trigger (the record's received_at; absent in records from before it was
  // carried): the start of pv_send_latency_seconds.
  std::optional<std::chrono::system_clock::time_point> received_at;
  int attempt = 1;          // from the pv-attempt header when present (ladder), else the value's "attempt"
  std::string address;      // to.email, to.phone or to.device_token, by channel
  std::string external_id;  // to.external_id
  const rapidjson::Value* to = nullptr;       // into doc
  const rapidjson::Value* content = nullptr;  // into doc

  // A string member of content, or "" when absent or not a string.
  std::string_view ContentString(std::string_view name) const;
  const rapidjson::Value* ContentMember(std::string_view name) const;
};

// Parses a send record of `channel`. On failure returns nullptr and says why in `error`; the
// returned object (when send_id could be read) still goes in `partial` so that the failure can be
// reported with its ids.
std::shared_ptr<Send> ParseSend(std::string_view value, std::string_view key, Channel channel,
                                std::string& error, std::shared_ptr<Send>* partial = nullptr);

struct EventFields {
  std::string_view status;  // sent | retrying | dead | deduped | deferred
  std::string_view provider;
  std::string_view provider_message_id;  // empty: omitted
  std::string_view error_code;           // empty: omitted
  std::string_view error;                // empty: omitted
  int attempt = 0;                       // 0: omitted
};

// One pv.events value: {v, send_id, trigger_id, campaign_id, channel, status, provider,
// provider_message_id?, error_code?, error?, attempt?, at}.
std::string BuildEvent(const Send& send, const EventFields& fields, std::chrono::system_clock::time_point at);

}  // namespace pv::workers
