// What a trigger body must look like, and the pv.triggers record built from it.
// The HTTP layer (server.hpp) decides status codes; this file decides validity and content.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <string_view>
#include <vector>

#include "pv/catalog.hpp"

namespace pv::ingest {

struct FieldError {
  std::string path;  // JSON Pointer into the request body, e.g. "/user/email" or "/triggers/3/user"
  std::string message;
};

inline constexpr size_t kMaxExternalIdBytes = 255;
inline constexpr size_t kMaxDeviceTokenBytes = 4096;
inline constexpr size_t kMaxIdempotencyKeyBytes = 255;

// Appends every problem of one trigger ({"user":{...},"event":{...}}) for a campaign of the given
// channel. `prefix` is prepended to each path (batch items use "/triggers/<i>").
void ValidateTrigger(const rapidjson::Value& trigger, Channel channel, std::string_view prefix,
                     std::vector<FieldError>& errors);

// A batch body ({"triggers":[...]}, at most `max_batch` items): appends every problem, and each
// item to `items` (in order) when the list itself is well-formed.
void ValidateBatch(const rapidjson::Value& body, Channel channel, int max_batch,
                   std::vector<FieldError>& errors, std::vector<const rapidjson::Value*>& items);

// The pv.triggers value (see docs/architecture.md): {v, trigger_id, project, campaign_id,
// received_at, user{...as given...}, event{...}}. `trigger` must have passed ValidateTrigger.
std::string BuildTriggerRecord(const rapidjson::Value& trigger, std::string_view trigger_id,
                               std::string_view project, std::string_view campaign_id,
                               std::string_view received_at);

// {"status":"error","error":"<first message>","errors":[{"path":..,"message":..},..]}
std::string ErrorBody(std::string_view message, const std::vector<FieldError>& errors = {});

}  // namespace pv::ingest
