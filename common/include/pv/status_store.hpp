// The status store: what became of each trigger, for `GET /api/client/triggers/:triggerId` (ingest)
// and `pvctl status`, fed from pv.events by the dispatcher's status feeder (docs/architecture.md
// "Trigger statuses"). Redis layout, in the marks Redis (redis.url), every key with status.ttl_seconds:
//
//   pv:status:<trigger_id>        HASH  e:<digest>  -> one status entry (JSON), digest = SHA-256 of
//                                                      the event record, so a redelivered event lands
//                                                      on its own field: applied twice, shown once.
//                                                      The dispatcher's entries also name the
//                                                      trigger's project and campaign_id; the earliest
//                                                      of them is the trigger's.
//                                       project, campaign_id: the same, as fields of their own, in
//                                                      hashes written until 2026-12-05 (still read)
//   pv:status:send:<send_id>      STRING -> trigger_id (pvctl status SEND_ID), written by the
//                                        dispatcher's events (the ones that name the project)
//
// Everything here is decided without Redis or Kafka (tests: common/test/status_store_test.cpp); the
// feeder and the lookups only run the commands built here.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pv {

class Config;
class RedisCommands;
struct RedisReply;

struct StatusOptions {
  bool enabled = true;                           // status.enabled
  // status.redis_url, else redis.url ("" when neither is set). A Redis of its own keeps the status
  // writes (most of a trigger's Redis writes) out of the marks Redis's append-only file.
  std::string redis_url;
  std::chrono::seconds ttl{7 * 24 * 3600};       // status.ttl_seconds, from the last event
  int max_statuses = 100;                        // status.max_statuses: entries per trigger
  size_t max_field_bytes = 512;                  // status.max_field_bytes: each text field, cut
  std::string group_id = "pv-status";            // status.group_id (the feeder's group)
  int batch_size = 500;                          // status.batch_size (feeder)
  // status.batch_wait_ms (feeder): how long a batch may gather events before it is written short of
  // batch_size. Statuses show this much later; the feeder wakes and Redis answers once per batch
  // rather than once per Fetch answer (docs/performance.md "The status feeder's batches").
  std::chrono::milliseconds batch_wait{50};
  std::chrono::milliseconds redis_timeout{250};  // status.redis_timeout_ms
  size_t max_pending = 1024;                     // status.max_pending_lookups (ingest)

  // Throws ConfigError naming a bad setting.
  static StatusOptions FromConfig(const Config& config);
};

// A trigger or send id as the store accepts it: 1 to 64 bytes of [A-Za-z0-9_-] (pv's ids are UUIDs;
// a DLQ replay or a test may use shorter ones). Anything else cannot be in the store.
bool ValidStatusId(std::string_view id);

std::string StatusKey(std::string_view trigger_id);
std::string StatusSendKey(std::string_view send_id);

// One pv.events record turned into a status entry.
struct StatusUpdate {
  std::string trigger_id;
  std::string send_id;
  std::string project;      // "" when the event does not carry it (workers' and feedback events)
  std::string campaign_id;  // "" likewise
  std::string field;        // "e:<16 hex>"
  std::string entry;        // {"send_id","channel","status","at", details...}
};

// Parses an event record (docs/architecture.md "Event"). False with `error` for a record that is not
// an event (not JSON, no trigger_id/send_id/status/at, an id ValidStatusId refuses, a status that is
// not a lower-case word of at most 32 bytes). Text fields are cut to `max_field_bytes` (at a UTF-8
// boundary); fields other than the known details are left out.
bool StatusFromEvent(std::string_view event, size_t max_field_bytes, StatusUpdate& out, std::string& error);

// The commands that apply `updates`: one trigger's events of a batch (all with the same trigger_id),
// in the order they were read. Added to `out`; returns how many (their replies, in order, are what
// ReadStatusWrite reads). HSET of the entries, up to 256 a command (an entry already there is a
// duplicate: its field is a digest of the event, so HSET writes the same bytes again, and its reply
// counts only the new ones); HLEN; SET of the send index for each event that names the project
// (the dispatcher's, which open every send); then the TTL on the hash. Plain commands, not one
// script: a third of Redis's CPU per event (docs/performance.md "Status store"). A trigger whose
// dispatcher's and worker's events share a batch takes four commands, not seven.
size_t AddStatusWrite(RedisCommands& out, std::span<const StatusUpdate* const> updates,
                      const StatusOptions& options);
// The same for one event.
size_t AddStatusWrite(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options);

struct StatusWriteReply {
  size_t applied = 0;        // entries that are new (the others were duplicates)
  bool check_limit = false;  // the hash may hold more than max_statuses entries: run AddStatusLimit
};
// `replies`: those of the AddStatusWrite of `updates` events, from the first.
StatusWriteReply ReadStatusWrite(std::span<const RedisReply> replies, size_t updates, const StatusOptions& options);

// The script that removes `update`'s entry again when its trigger holds more than max_statuses entries
// (project and campaign_id do not count). Its reply is 1 when it did: the event is `over_limit`.
// Idempotent, and applied whatever ReadStatusWrite said of the entry, so a batch applied again after a
// failure between the two round trips still ends within the limit. Run for each event of a trigger
// past the limit, the batch's last first.
void AddStatusLimit(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options);

// What HGETALL pv:status:<trigger_id> holds, as the API answers it.
struct TriggerStatus {
  bool found = false;  // the hash exists and has at least one entry
  std::string project;
  std::string campaign_id;
  // {"trigger_id","campaign_id","sends":[{"send_id","channel","statuses":[{"status","at",...}]}]},
  // sends by send id, statuses by time (then by pipeline order when two share a millisecond).
  std::string json;
};
TriggerStatus RenderTriggerStatus(std::string_view trigger_id, const RedisReply& hgetall);

}  // namespace pv
