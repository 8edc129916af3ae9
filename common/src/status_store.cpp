#include "pv/status_store.hpp"

#include <fmt/format.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstddef>
#include <iterator>
#include <map>
#include <set>

#include "pv/config.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/records.hpp"
#include "pv/redis_client.hpp"
#include "pv/topics.hpp"

namespace pv {
namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

constexpr std::string_view kEntryPrefix = "e:";
// A trigger's entries per HSET (a batch of one trigger's events, forged or replayed, makes several).
constexpr size_t kMaxEntriesPerWrite = 256;
constexpr size_t kMaxStatusBytes = 32;

// `s` cut to at most `max` bytes without splitting a UTF-8 sequence.
std::string_view Cut(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

void Put(Writer& w, std::string_view key, std::string_view value) {
  w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
  w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

// `"name":"value"` into an object being written (a comma first unless it is the first member). The
// names are the entry's own, none with a character to escape.
void Put(std::string& out, std::string_view name, std::string_view value) {
  out.append(out.size() > 1 ? ",\"" : "\"").append(name).append("\":");
  AppendJsonStringAsWriter(out, value);
}

// `prefix` then `id` in one allocation (a string of the id and then the prefix's insertion took two).
std::string Key(std::string_view prefix, std::string_view id) {
  std::string key;
  key.reserve(prefix.size() + id.size());
  key.append(prefix).append(id);
  return key;
}

constexpr std::string_view kStatusKeyPrefix = "pv:status:";
constexpr std::string_view kSendKeyPrefix = "pv:status:send:";
// A send's hash. No trigger id holds ':' (ValidStatusId), so no StatusKey is one of these, nor of the
// index's keys ("send:" is longer).
constexpr std::string_view kSendHashPrefix = "pv:status:s:";

// A key written into a buffer on the stack (a longer one than any id ValidStatusId accepts spills to
// the heap): AddStatusWrite's keys, two heap strings per event otherwise.
using KeyBuffer = fmt::basic_memory_buffer<char, 96>;
std::string_view KeyIn(KeyBuffer& buffer, std::string_view prefix, std::string_view id) {
  buffer.append(prefix.data(), prefix.data() + prefix.size());
  buffer.append(id.data(), id.data() + id.size());
  return {buffer.data(), buffer.size()};
}

bool ValidStatusWord(std::string_view s) {
  if (s.empty() || s.size() > kMaxStatusBytes) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
}

// Who writes a status, in pipeline order: a tie-break for two entries of the same millisecond.
int Stage(std::string_view status) {
  if (status == "queued" || status == "deferred" || status == "suppressed" || status == "failed") return 0;
  if (status == "sent" || status == "retrying" || status == "dead" || status == "deduped") return 1;
  return 2;  // from provider receipts
}

// Removes an entry written past the limit. KEYS: the trigger's hash. ARGV: max entries, field. The
// meta fields (project, campaign_id: written as fields of their own until 2026-12-05, still read) do
// not count. Reply 1 when it removed the field.
constexpr std::string_view kLimitScript = R"lua(
local n = redis.call('HLEN', KEYS[1]) - redis.call('HEXISTS', KEYS[1], 'project')
          - redis.call('HEXISTS', KEYS[1], 'campaign_id')
if n > tonumber(ARGV[1]) then return redis.call('HDEL', KEYS[1], ARGV[2]) end
return 0
)lua";

// The TTL in milliseconds, as PEXPIRE and SET ... PX take it, written into `digits`.
std::string_view TtlMillis(const StatusOptions& options, char (&digits)[24]) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.ttl).count();
  return {digits, static_cast<size_t>(std::to_chars(digits, std::end(digits), ms).ptr - digits)};
}

// Whether AddStatusWrite sends the hash's TTL with `updates` (one hash's, not empty): always for a
// trigger's own hash; for a send's, when the write holds an event naming the project, the
// dispatcher's, which opens every send. So a send's statuses are kept `ttl` after its dispatcher's
// last event, and its worker's event costs Redis no PEXPIRE (docs/performance.md "A send's TTL from
// its dispatcher's events").
bool WritesTtl(std::span<const StatusUpdate* const> updates) {
  if (!updates.front()->key.starts_with(kSendHashPrefix)) return true;
  return std::any_of(updates.begin(), updates.end(), [](const StatusUpdate* u) { return !u->project.empty(); });
}

// The number of different entries (fields) in `updates`: a batch may hold one event twice.
size_t DistinctFields(std::span<const StatusUpdate* const> updates) {
  if (updates.size() == 1) return 1;
  thread_local std::vector<std::string_view> fields;
  fields.clear();
  for (const StatusUpdate* u : updates) fields.push_back(u->field);
  std::sort(fields.begin(), fields.end());
  return static_cast<size_t>(std::unique(fields.begin(), fields.end()) - fields.begin());
}

}  // namespace

StatusOptions StatusOptions::FromConfig(const Config& config) {
  StatusOptions o;
  o.enabled = config.GetBool("status.enabled", o.enabled);
  // Empty means "not set", like suppression.redis_url: an empty override must not turn statuses off.
  o.redis_url = config.GetString("status.redis_url", "");
  if (o.redis_url.empty()) o.redis_url = config.GetString("redis.url", "");
  o.ttl = std::chrono::seconds(config.GetInt("status.ttl_seconds", o.ttl.count(), 60, 366LL * 24 * 3600));
  o.max_statuses = static_cast<int>(config.GetInt("status.max_statuses", o.max_statuses, 1, 10000));
  o.max_field_bytes = static_cast<size_t>(
      config.GetInt("status.max_field_bytes", static_cast<std::int64_t>(o.max_field_bytes), 16, 65536));
  o.group_id = config.GetString("status.group_id", o.group_id);
  if (o.group_id.empty()) throw ConfigError("setting status.group_id must not be empty");
  o.batch_size = static_cast<int>(config.GetInt("status.batch_size", o.batch_size, 1, 100000));
  o.batch_wait =
      std::chrono::milliseconds(config.GetInt("status.batch_wait_ms", o.batch_wait.count(), 0, 10000));
  o.fetch_min_bytes =
      static_cast<int>(config.GetInt("status.fetch_min_bytes", o.fetch_min_bytes, 1, 16 * 1024 * 1024));
  o.redis_timeout = config.GetMillis("status.redis_timeout_ms", o.redis_timeout);
  if (o.redis_timeout.count() < 1 || o.redis_timeout.count() > 60000)
    throw ConfigError("setting status.redis_timeout_ms must be within [1, 60000]");
  o.max_pending = static_cast<size_t>(
      config.GetInt("status.max_pending_lookups", static_cast<std::int64_t>(o.max_pending), 1, 1000000));
  return o;
}

bool ValidStatusId(std::string_view id) {
  // A table of the bytes an id may hold: one load a byte, where five ranges were tested (the feeder
  // checks two ids of every event).
  static constexpr auto kIdByte = [] {
    std::array<bool, 256> table{};
    for (int c = 0; c < 256; ++c) {
      table[static_cast<size_t>(c)] =
          (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    }
    return table;
  }();
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return kIdByte[static_cast<unsigned char>(c)]; });
}

std::string StatusKey(std::string_view trigger_id) {
  return Key(kStatusKeyPrefix, trigger_id);
}

std::string StatusSendKey(std::string_view send_id) {
  return Key(kSendKeyPrefix, send_id);
}

std::string StatusKeyOfSend(std::string_view send_id) {
  return Key(kSendHashPrefix, send_id);
}

namespace {
// The hash of the trigger's send on `channel` (the send id as SendIdFor derives it), into `out`: the
// one place the writer's key and the readers' keys are made, so that they cannot part.
void AssignSendHashKey(std::string& out, std::string_view trigger_id, Channel channel) {
  out.assign(kSendHashPrefix);
  AppendSendIdFor(out, trigger_id, ChannelName(channel));
}
}  // namespace

std::vector<std::string> StatusKeysOfTrigger(std::string_view trigger_id) {
  std::vector<std::string> keys;
  for (Channel c : {Channel::kEmail, Channel::kSms, Channel::kPush})
    AssignSendHashKey(keys.emplace_back(), trigger_id, c);
  keys.push_back(StatusKey(trigger_id));
  return keys;
}

bool StatusFromEvent(std::string_view event, size_t max_field_bytes, StatusUpdate& out, std::string& error) {
  // Parse into a buffer on the stack: RapidJSON's default pool would malloc (and free) a 64 KiB chunk
  // per event. An event's values take well under 4 KiB; a larger one spills to the heap.
  alignas(std::max_align_t) char parse_buffer[4096];
  rapidjson::MemoryPoolAllocator<> allocator(parse_buffer, sizeof(parse_buffer));
  rapidjson::Document doc(&allocator);
  // Parsed in place in a copy kept by the thread (its capacity from event to event): no string of
  // the event is copied again into the pool.
  thread_local std::string text;
  text.assign(event);
  EventRecord e;
  if (!ParseEventInPlace(doc, text, e)) {
    error = "not a JSON object";
    return false;
  }
  if (!ValidStatusId(e.trigger_id) || !ValidStatusId(e.send_id)) {
    error = "trigger_id or send_id missing or not an id";
    return false;
  }
  if (!ValidStatusWord(e.status)) {
    error = "status missing or not a lower-case word";
    return false;
  }
  if (e.at.empty() || !ParseTimestamp(e.at)) {
    error = "at missing or not a time";
    return false;
  }
  out.trigger_id.assign(e.trigger_id);
  out.send_id.assign(e.send_id);
  out.project.assign(Cut(e.project, max_field_bytes));
  out.campaign_id.assign(Cut(e.campaign_id, max_field_bytes));
  // The hash: the send's, as pv derives its id from the trigger's and the channel (so that the
  // trigger's lookup finds it whatever send id the event names), else the trigger's own.
  Channel channel;
  if (ParseChannel(e.channel, channel)) {
    AssignSendHashKey(out.key, out.trigger_id, channel);
  } else {
    out.key.assign(kStatusKeyPrefix).append(out.trigger_id);
  }
  // The field: the prefix and the first 8 bytes of the event's digest in hex, written in place.
  static constexpr char kHex[] = "0123456789abcdef";
  const auto digest = Sha256(event);
  char field[kEntryPrefix.size() + 16];
  char* f = std::copy(kEntryPrefix.begin(), kEntryPrefix.end(), field);
  for (size_t i = 0; i < 8; ++i) {
    *f++ = kHex[digest[i] >> 4];
    *f++ = kHex[digest[i] & 0xf];
  }
  out.field.assign(field, sizeof(field));

  // Written into the update's own string (its capacity kept from event to event), byte for byte as
  // RapidJSON's Writer wrote it: a redelivered event writes its entry again, the same bytes.
  std::string& entry = out.entry;
  entry.reserve(event.size());  // an entry is at most the event's fields, written as short or shorter
  entry.assign("{");
  Put(entry, "send_id", e.send_id);
  Put(entry, "channel", Cut(e.channel, 16));
  Put(entry, "status", e.status);
  Put(entry, "at", Cut(e.at, 40));
  // The trigger's id, project and campaign, in the entries of the events that name the project (the
  // dispatcher's, which open every send): the reader takes them from the earliest such entry, so
  // they cost no command of their own (and a send's hash, found by its id, names its trigger).
  if (!out.project.empty()) {
    Put(entry, "trigger_id", out.trigger_id);
    Put(entry, "project", out.project);
    if (!out.campaign_id.empty()) Put(entry, "campaign_id", out.campaign_id);
  }
  // The details an entry keeps, in the order it writes them (docs/api.md "Trigger status").
  const std::pair<std::string_view, std::string_view> details[] = {
      {"provider", e.provider},
      {"provider_message_id", e.provider_message_id},
      {"due_at", e.due_at},
      {"reason", e.reason},
      {"suppression_reason", e.suppression_reason},
      {"suppressed_at", e.suppressed_at},
      {"error_code", e.error_code},
      {"error", e.error},
      {"receipt_id", e.receipt_id},
      {"occurred_at", e.occurred_at}};
  for (const auto& [name, value] : details) {
    if (!value.empty()) Put(entry, name, Cut(value, max_field_bytes));
  }
  if (e.attempt) {
    char digits[16];
    entry += R"(,"attempt":)";
    entry.append(digits, std::to_chars(digits, std::end(digits), *e.attempt).ptr);
  }
  entry += '}';
  return true;
}

size_t AddStatusWrite(RedisCommands& out, std::span<const StatusUpdate* const> updates,
                      const StatusOptions& options) {
  if (updates.empty()) return 0;
  const std::string_view key = updates.front()->key;
  char ttl_digits[24];
  const std::string_view ttl_ms = TtlMillis(options, ttl_digits);
  const size_t before = out.size();
  // HSET, not HSETNX: one command for all of the hash's entries. An entry already there is the
  // same event's (its field is the event's digest), so writing it again changes nothing; the
  // reply counts the fields that are new, which is what HSETNX's told one at a time.
  thread_local std::vector<std::string_view> args;
  for (size_t at = 0; at < updates.size(); at += kMaxEntriesPerWrite) {
    const size_t end = std::min(updates.size(), at + kMaxEntriesPerWrite);
    args.clear();
    args.push_back("HSET");
    args.push_back(key);
    for (size_t i = at; i < end; ++i) {
      args.push_back(updates[i]->field);
      args.push_back(updates[i]->entry);
    }
    out.Add(std::span<const std::string_view>(args));
  }
  out.Add({"HLEN", key});
  // A send's hash is found from the send's id: no index. Its TTL comes with its dispatcher's events;
  // a write of other events only (a worker's, a receipt) leaves it, unless ReadStatusWrite finds that
  // the write made the hash (needs_ttl).
  if (key.starts_with(kSendHashPrefix)) {
    if (WritesTtl(updates)) out.Add({"PEXPIRE", key, ttl_ms});
    return out.size() - before;
  }
  // A trigger's own hash (an event whose channel is not pv's) has its sends indexed, by the events
  // that name the project: the dispatcher's, which open every send. (One of a send's events read
  // twice in a row writes it once.)
  std::string_view written;
  for (const StatusUpdate* update : updates) {
    if (update->project.empty() || update->send_id == written) continue;
    KeyBuffer send_key;
    out.Add({"SET", KeyIn(send_key, kSendKeyPrefix, update->send_id), update->trigger_id, "PX", ttl_ms});
    written = update->send_id;
  }
  out.Add({"PEXPIRE", key, ttl_ms});
  return out.size() - before;
}

size_t AddStatusWrite(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options) {
  const StatusUpdate* one = &update;
  return AddStatusWrite(out, std::span<const StatusUpdate* const>(&one, 1), options);
}

StatusWriteReply ReadStatusWrite(std::span<const RedisReply> replies,
                                 std::span<const StatusUpdate* const> updates, const StatusOptions& options) {
  StatusWriteReply r;
  if (updates.empty()) return r;
  const size_t writes = (updates.size() + kMaxEntriesPerWrite - 1) / kMaxEntriesPerWrite;
  if (replies.size() <= writes) return r;
  for (size_t i = 0; i < writes; ++i) {
    if (replies[i].type == RedisReply::Type::kInteger && replies[i].integer > 0)
      r.applied += static_cast<size_t>(replies[i].integer);
  }
  r.applied = std::min(r.applied, updates.size());
  const RedisReply& length = replies[writes];
  if (length.type != RedisReply::Type::kInteger) return r;
  // HLEN counts the meta fields of older hashes too: past max_statuses, only the limit script can tell.
  r.check_limit = length.integer > options.max_statuses;
  // A write that sent no TTL and finds the hash holding no more entries than its own: the write may
  // have made the hash (or made it before, and failed before its TTL: a batch applied again), so it
  // has none. A hash that had its TTL gets it again, which is harmless.
  if (!WritesTtl(updates) && length.integer <= static_cast<long long>(DistinctFields(updates))) r.needs_ttl = true;
  return r;
}

void AddStatusTtl(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options) {
  char ttl_digits[24];
  out.Add({"PEXPIRE", update.key, TtlMillis(options, ttl_digits)});
}

void AddStatusLimit(RedisCommands& out, const StatusUpdate& update, const StatusOptions& options) {
  out.Add({"EVAL", kLimitScript, "1", update.key, std::to_string(options.max_statuses), update.field});
}

TriggerStatus RenderTriggerStatus(std::string_view trigger_id, const RedisReply& hgetall) {
  return RenderTriggerStatus(trigger_id, std::span<const RedisReply>(&hgetall, 1));
}

TriggerStatus RenderTriggerStatus(std::string_view trigger_id, std::span<const RedisReply> hgetalls) {
  TriggerStatus out;
  struct Entry {
    rapidjson::Document doc;
    std::string_view field;
    std::string_view at;
    std::string_view status;
    size_t order = 0;
  };
  // Time order, then pipeline order for two of the same millisecond. Times are FormatTimestamp's
  // fixed-width UTC form, so text order is time order.
  auto earlier = [](const Entry* a, const Entry* b) {
    if (a->at != b->at) return a->at < b->at;
    return Stage(a->status) < Stage(b->status);
  };
  // The earliest entry naming the project (a dispatcher's; the field breaks a tie, for an order that
  // does not depend on the hash's): the trigger's project and campaign when the hash holds no
  // fields of their own (written until 2026-12-05).
  const Entry* meta = nullptr;
  struct SendStatuses {
    std::string channel;
    std::vector<Entry*> entries;
  };
  std::vector<std::unique_ptr<Entry>> entries;
  std::map<std::string, SendStatuses> sends;  // by send id: a stable order
  // An event applied into two of the hashes (once before 2026-12-06 into the trigger's, again after
  // into its send's, as a consumer group rewound across the upgrade would) has the same field in
  // both: shown once.
  std::set<std::string_view> fields;
  for (const RedisReply& hgetall : hgetalls) {
    if (hgetall.type != RedisReply::Type::kArray) continue;
    const auto& e = hgetall.elements;
    for (size_t i = 0; i + 1 < e.size(); i += 2) {
      const std::string& field = e[i].str;
      const std::string& value = e[i + 1].str;
      if (field == "project") {
        out.project = value;
        continue;
      }
      if (field == "campaign_id") {
        out.campaign_id = value;
        continue;
      }
      if (field.compare(0, kEntryPrefix.size(), kEntryPrefix) != 0 || !fields.insert(field).second) continue;
      auto entry = std::make_unique<Entry>();
      ParseRecord(entry->doc, value);
      if (entry->doc.HasParseError() || !entry->doc.IsObject())
        continue;  // written by us: never, but bounded
      std::string_view send_id = FindString(entry->doc, "send_id").value_or("");
      entry->field = field;
      entry->at = FindString(entry->doc, "at").value_or("");
      entry->status = FindString(entry->doc, "status").value_or("");
      entry->order = entries.size();
      if (!FindString(entry->doc, "project").value_or("").empty() &&
          (meta == nullptr || earlier(entry.get(), meta) ||
           (!earlier(meta, entry.get()) && entry->field < meta->field))) {
        meta = entry.get();
      }
      SendStatuses& send = sends[std::string(send_id)];
      if (send.channel.empty()) send.channel = FindString(entry->doc, "channel").value_or("");
      send.entries.push_back(entry.get());
      entries.push_back(std::move(entry));
    }
  }
  out.found = !entries.empty();
  if (!out.found) return out;
  if (out.project.empty() && meta != nullptr) {
    out.project = FindString(meta->doc, "project").value_or("");
    out.campaign_id = FindString(meta->doc, "campaign_id").value_or("");
  }
  out.trigger_id = trigger_id;
  if (out.trigger_id.empty() && meta != nullptr)
    out.trigger_id = FindString(meta->doc, "trigger_id").value_or("");

  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  Put(w, "trigger_id", out.trigger_id);
  Put(w, "campaign_id", out.campaign_id);
  w.Key("sends");
  w.StartArray();
  for (auto& [send_id, send] : sends) {
    std::stable_sort(send.entries.begin(), send.entries.end(), earlier);
    w.StartObject();
    Put(w, "send_id", send_id);
    Put(w, "channel", send.channel);
    w.Key("statuses");
    w.StartArray();
    for (const Entry* entry : send.entries) {
      w.StartObject();
      for (const auto& m : entry->doc.GetObject()) {
        std::string_view name(m.name.GetString(), m.name.GetStringLength());
        // The send's and the trigger's, not the status's: said once, above.
        if (name == "send_id" || name == "channel" || name == "trigger_id" || name == "project" ||
            name == "campaign_id")
          continue;
        w.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
        m.value.Accept(w);
      }
      w.EndObject();
    }
    w.EndArray();
    w.EndObject();
  }
  w.EndArray();
  w.EndObject();
  out.json.assign(buffer.GetString(), buffer.GetSize());
  return out;
}

}  // namespace pv
