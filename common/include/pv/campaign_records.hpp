// Campaign records on the compacted topic pv.campaigns (the `campaigns_topic` setting): how
// `pvctl campaigns apply` distributes a campaign to every ingest and dispatcher without shared files.
//
// One record per campaign id; the record key is the id (ids are unique across projects, as in the
// catalog: the trigger URL names the id alone). The value is JSON:
//
//   {"v":1,"id":"44","updated_at_ms":1767000000000,"applied_from":"host:/path/44.yaml",
//    "campaign":{...the campaign file's fields, with every *_file template read and inlined...}}
//
// `campaign` has exactly the schema of a campaign file (catalog.hpp) and is checked by the same code,
// except that a `<field>_file` template field is refused: a record never makes a replica read a
// file. A deletion is a tombstone (null value) with header pv-updated-at. The newest state of an id
// wins on the topic (TopicCampaignSupersedes) and against a replica's files (Catalog::Merge).
// docs/architecture.md "Campaigns on pv.campaigns" has the whole design.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pv/catalog.hpp"
#include "pv/state_record.hpp"

namespace pv {

// The schema version written in "v"; a record with another is ignored (a newer pvctl wrote it).
inline constexpr int kCampaignRecordVersion = 1;

// Limits on a record read from the topic, which any producer could write. pvctl refuses to publish
// a campaign whose record would break one (and one larger than the producer's message.max.bytes).
inline constexpr std::size_t kMaxCampaignRecordBytes = 16u << 20;
// Members of any object or list in a record: locales, push data entries, send-window days.
inline constexpr std::size_t kMaxCampaignRecordMembers = 256;
// Nesting of a record (the schema needs 5: record, campaign, templates, locale, data).
inline constexpr int kMaxCampaignRecordDepth = 8;
// Campaign ids a replica keeps from the topic; records for further ids are ignored (and counted).
inline constexpr std::size_t kMaxTopicCampaigns = 100000;

// The header that carries a tombstone's updated_at_ms (a tombstone has no value to carry it).
inline constexpr const char* kCampaignUpdatedAtHeader = "pv-updated-at";

// The record value of `campaign` at version `updated_at_ms`.
std::string CampaignRecord(const Campaign& campaign, std::int64_t updated_at_ms,
                           std::string_view applied_from);

// Decodes a record value (not a tombstone). `topic` names the record in problems and in the
// campaign's source_file ("<topic>:<id>"). False, with `error` listing every problem, for a record to
// ignore. Never throws.
bool ParseCampaignRecord(std::string_view value, std::string_view topic, Campaign& out, std::string& error);

// What a consumer read from the campaigns topic (the header: kCampaignUpdatedAtHeader).
using CampaignRecordView = StateRecordView;
// The state a record stands for: its campaign (whose id must be the record key), or for a tombstone
// a removal versioned by its header, else by the record's timestamp. False, with `error`, for a
// record to ignore.
bool ParseCampaignState(const CampaignRecordView& record, std::string_view topic, TopicCampaign& out,
                        std::string& error);
// The same for a record as librdkafka returned it (rd_kafka_message_t).
bool ParseCampaignMessage(const rd_kafka_message_s* message, std::string_view topic, TopicCampaign& out,
                          std::string& error);

// The version of a new state of a campaign whose newest known state has `previous_ms` (0: none): the
// wall clock, but always after `previous_ms`, so an edit wins even from a machine whose clock is behind.
inline std::int64_t NextCampaignVersion(std::int64_t previous_ms, std::int64_t now_ms) {
  return now_ms > previous_ms ? now_ms : previous_ms + 1;
}

// Where two campaigns differ in what a replica serves, as field paths ("provider",
// "send_window", "templates.en.subject", "templates.fr" for a locale only one has, "templates" when
// only the locales' order differs); empty when they serve the same. Sources and versions are not
// compared.
std::vector<std::string> CampaignDifferences(const Campaign& a, const Campaign& b);

}  // namespace pv
