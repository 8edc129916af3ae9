// The status store: what became of each trigger, for `GET /api/client/triggers/:triggerId` (ingest)
// and `pvctl status`, fed from pv.events by the dispatcher's status feeder (docs/architecture.md
// "Trigger statuses"). Redis layout, in the status Redis (status.redis_url, else redis.url), every key
// with status.ttl_seconds:
//
//   pv:status:s:<send_id>         HASH  e:<digest>  -> one status entry (JSON), digest = SHA-256 of
//                                                      the event record, so a redelivered event lands
//                                                      on its own field: applied twice, shown once.
//                                                      The dispatcher's entries also name the
//                                                      trigger's project and campaign_id; the earliest
//                                                      of them is the trigger's.
//                                 The key's send id is the one pv derives from the event's trigger id
//                                 and channel (SendIdFor), not the one the event names: a trigger's
//                                 sends are found from its id alone (one key per channel), and a send's
//                                 from its id, with no index to write (since 2026-12-06).
//   pv:status:<trigger_id>        HASH  the same entries, for events whose channel is not one of pv's,
//                                       and every entry written until 2026-12-06 (read until their TTL
//                                       is past: a week of upgrade)
//                                       project, campaign_id: fields of their own, in hashes written
//                                                      until 2026-12-05 (still read)
//   pv:status:send:<send_id>      STRING -> trigger_id (pvctl status SEND_ID) for the sends of those
//                                        hashes, written by the events that name the project
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
  bool enabled = true;  // status.enabled
  // status.redis_url, else redis.url ("" when neither is set). A Redis of its own keeps the status
  // writes (most of a trigger's Redis writes) out of the marks Redis's append-only file.
  std::string redis_url;
  // status.ttl_seconds: a send's hash's from its dispatcher's last event, a trigger's own from its last
  std::chrono::seconds ttl{7 * 24 * 3600};
  int max_statuses = 100;                   // status.max_statuses: entries per trigger
  size_t max_field_bytes = 512;             // status.max_field_bytes: each text field, cut
  std::string group_id = "pv-status";       // status.group_id (the feeder's group)
  int batch_size = 500;                     // status.batch_size (feeder)
  // status.batch_wait_ms (feeder): how long a batch may gather events before it is written short of
  // batch_size. Statuses show this much later; the feeder wakes and Redis answers once per batch
  // rather than once per Fetch answer (docs/performance.md "The status feeder's batches").
  std::chrono::milliseconds batch_wait{50};
  // status.fetch_min_bytes (feeder): its Fetches wait, up to batch_wait, for this many bytes of events
  // (librdkafka's fetch.min.bytes; fetch.wait.max.ms is batch_wait): librdkafka's broker thread then
  // wakes once per that many events, not once per Produce that reached pv.events. 1: any event ends the
  // wait (Kafka's default). Not used when batch_wait is 0.
  int fetch_min_bytes = 256 * 1024;
  std::chrono::milliseconds redis_timeout{250};  // status.redis_timeout_ms
  size_t max_pending = 1024;                     // status.max_pending_lookups (ingest)

  // Throws ConfigError naming a bad setting.
  static StatusOptions FromConfig(const Config& config);
};

// A trigger or send id as the store accepts it: 1 to 64 bytes of [A-Za-z0-9_-] (pv's ids are UUIDs;
// a DLQ replay or a test may use shorter ones). Anything else cannot be in the store.
bool ValidStatusId(std::string_view id);

// pv:status:<trigger_id>: the hash of a trigger's events without a channel of pv's, and of every event
// written until 2026-12-06.
std::string StatusKey(std::string_view trigger_id);
// pv:status:send:<send_id>: the index of those hashes' sends.
std::string StatusSendKey(std::string_view send_id);
// pv:status:s:<send_id>: a send's hash (its id as SendIdFor derives it).
std::string StatusKeyOfSend(std::string_view send_id);
// Every hash a trigger's statuses may be in: its sends' on each channel (email, text, push), then
// StatusKey's. One HGETALL each; RenderTriggerStatus takes the replies in this order.
std::vector<std::string> StatusKeysOfTrigger(std::string_view trigger_id);

// One pv.events record turned into a status entry.
struct StatusUpdate {
  std::string trigger_id;
  std::string send_id;
  std::string project;      // "" when the event does not carry it (workers' and feedback events)
  std::string campaign_id;  // "" likewise
  std::string key;    // the hash it goes to: pv:status:s:<SendIdFor(trigger_id, channel)>, else StatusKey
  std::string field;  // "e:<16 hex>"
  std::string entry;  // {"send_id","channel","status","at", details...}
};

// Parses an event record (docs/architecture.md "Event"). False with `error` for a record that is not
// an event (not JSON, no trigger_id/send_id/status/at, an id ValidStatusId refuses, a status that is
// not a lower-case word of at most 32 bytes). Text fields are cut to `max_field_bytes` (at a UTF-8
// boundary); fields other than the known details are left out. The update's key is its send's hash
// when the event's channel is one of pv's (a SHA-256 of the trigger id and the channel), else
// StatusKey.
bool StatusFromEvent(std::string_view event, size_t max_field_bytes, StatusUpdate& out, std::string& error);

// The commands that apply `updates`: the events of a batch that go to one hash (all with the same
// key), in the order they were read. Added to `out`; returns how many (their replies, in order, are
// what ReadStatusWrite reads). HSET of the entries, up to 256 a command (an entry already there is a
// duplicate: its field is a digest of the event, so HSET writes the same bytes again, and its reply
// counts only the new ones); HLEN; for a StatusKey hash only, SET of the send index for each event
// that names the project (the dispatcher's, which open every send); then the TTL on the hash: a
// trigger's own hash with every write, a send's hash with a write holding its dispatcher's event (one
// naming the project) only. Plain commands, not one script: a third of Redis's CPU per event
// (docs/performance.md "Status store"). A send's dispatcher's event is three commands, its worker's
// two; both in one batch, three.
size_t AddStatusWrite(RedisCommands& out, std::span<const StatusUpdate* const> updates,
                      const StatusOptions& options);
// The same for one event.
size_t AddStatusWrite(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options);

struct StatusWriteReply {
  size_t applied = 0;        // entries that are new (the others were duplicates)
  bool check_limit = false;  // the hash may hold more than max_statuses entries: run AddStatusLimit
  // The write sent no TTL and the hash holds only its entries: it may have made the hash, which then
  // has no TTL (a worker's event read before its dispatcher's, a receipt after the send's hash
  // expired, or a write applied again after one that failed before its TTL). Run AddStatusTtl.
  bool needs_ttl = false;
};
// `replies`: those of the AddStatusWrite of `updates`, from the first.
StatusWriteReply ReadStatusWrite(std::span<const RedisReply> replies,
                                 std::span<const StatusUpdate* const> updates, const StatusOptions& options);

// The TTL of `update`'s hash (PEXPIRE), for a write whose reply said needs_ttl.
void AddStatusTtl(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options);

// The script that removes `update`'s entry again when its hash holds more than max_statuses entries
// (project and campaign_id do not count). Its reply is 1 when it did: the event is `over_limit`.
// Idempotent, and applied whatever ReadStatusWrite said of the entry, so a batch applied again after a
// failure between the two round trips still ends within the limit. Run for each event of a trigger
// past the limit, the batch's last first.
void AddStatusLimit(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options);

// What a trigger's hashes hold, as the API answers it.
struct TriggerStatus {
  bool found = false;      // a hash exists and has at least one entry
  std::string trigger_id;  // the one asked for, else the one the entries name ("" when none does)
  std::string project;
  std::string campaign_id;
  // {"trigger_id","campaign_id","sends":[{"send_id","channel","statuses":[{"status","at",...}]}]},
  // sends by send id, statuses by time (then by pipeline order when two share a millisecond).
  std::string json;
};
// `hgetalls`: the replies to HGETALL of each of StatusKeysOfTrigger(trigger_id), or of any hashes of
// the trigger's (an entry's place in them does not matter: they are ordered by time). An empty
// `trigger_id` (a send's hash, found by the send's id): the one its dispatcher's entry names.
TriggerStatus RenderTriggerStatus(std::string_view trigger_id, std::span<const RedisReply> hgetalls);
TriggerStatus RenderTriggerStatus(std::string_view trigger_id, const RedisReply& hgetall);

}  // namespace pv
