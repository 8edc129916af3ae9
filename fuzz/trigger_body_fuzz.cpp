// A trigger or batch body as a client sends it: parsed with ingest's limits, validated for every
// channel, and, when valid, encoded into the pv.triggers record, which must parse back as JSON
// carrying the same user and event.
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "pv/ingest/trigger.hpp"
#include "pv/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  rapidjson::Document doc;
  if (!pv::ParseLimited(doc, text, 64).empty()) return 0;
  for (pv::Channel channel : {pv::Channel::kEmail, pv::Channel::kSms, pv::Channel::kPush}) {
    std::vector<pv::ingest::FieldError> errors;
    std::vector<const rapidjson::Value*> items;
    pv::ingest::ValidateBatch(doc, channel, 1000, errors, items);
    errors.clear();
    pv::ingest::ValidateTrigger(doc, channel, "", errors);
    if (!errors.empty()) {
      (void)pv::ingest::ErrorBody(errors.front().message, errors);
      continue;
    }
    std::string record = pv::ingest::BuildTriggerRecord(doc, "01a235bb-81af-7749-a8a6-eea191607f79", "demo",
                                                        "44", "2026-12-02T07:50:10.000Z");
    rapidjson::Document back;
    back.Parse(record.data(), record.size());
    if (back.HasParseError() || !back.IsObject() || !back["user"].IsObject() || !back["event"].IsObject())
      abort();
    if (back["user"]["external_id"] != doc["user"]["external_id"]) abort();
  }
  return 0;
}
