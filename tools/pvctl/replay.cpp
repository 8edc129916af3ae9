// pvctl replay: re-publishes records of a dead-letter topic (or any send topic) to a send topic once
// the cause of their failure is fixed. See docs/operations.md "Replay runbook".
//
// Correctness rests on three things:
//  - The end of the replay is fixed at start (each partition's high watermark then), so records that
//    fail again during the replay and land in the same DLQ are not replayed in a loop.
//  - Progress is saved as committed offsets of a consumer group named after the source, target and
//    filters (ReplayGroup), and only up to records whose re-publication the broker acknowledged. An
//    interrupted run (Ctrl-C, --limit, a crash) is resumed by running the same command again; a
//    second run of a finished replay finds nothing new.
//  - A record re-published twice anyway (a crash between the acknowledgement and the commit) is still
//    delivered once: workers claim each send_id in Redis, and a send already marked sent is deduped.
#include "replay.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <tuple>
#include <vector>

#include "kafka_client.hpp"
#include "pv/command_line.hpp"
#include "pv/delay_ladder.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pv/records.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {

std::string ReplayFilter::Canonical() const {
  return fmt::format("campaign={}\nerror_code={}\nsince={}\nuntil={}\n", fmt::join(campaigns, ","),
                     fmt::join(error_codes, ","), since ? FormatTimestamp(*since) : "",
                     until ? FormatTimestamp(*until) : "");
}

ReplayVerdict Evaluate(const ReplayFilter& filter, const ReplayRecord& record) {
  rapidjson::Document doc;
  ParseRecord(doc, record.value);
  if (doc.HasParseError() || !doc.IsObject()) return ReplayVerdict::kUnreadable;
  if (!filter.campaigns.empty()) {
    const rapidjson::Value* c = FindMember(doc, "campaign_id");
    std::string campaign;
    if (c != nullptr && c->IsString()) {
      campaign.assign(c->GetString(), c->GetStringLength());
    } else if (c != nullptr && c->IsInt64()) {
      campaign = std::to_string(c->GetInt64());
    }
    if (filter.campaigns.count(campaign) == 0) return ReplayVerdict::kFiltered;
  }
  if (!filter.error_codes.empty() &&
      (!record.error_code || filter.error_codes.count(*record.error_code) == 0)) {
    return ReplayVerdict::kFiltered;
  }
  if (filter.since || filter.until) {
    std::optional<std::chrono::system_clock::time_point> at;
    if (record.failed_at) at = ParseTimestamp(*record.failed_at);
    if (!at && record.timestamp_ms >= 0) at = FromUnixMillis(record.timestamp_ms);
    if (!at) return ReplayVerdict::kFiltered;  // no time to compare: not provably in the window
    if (filter.since && *at < *filter.since) return ReplayVerdict::kFiltered;
    if (filter.until && *at >= *filter.until) return ReplayVerdict::kFiltered;
  }
  return ReplayVerdict::kMatch;
}

namespace {

// Scanners over text RapidJSON has already accepted as JSON: each returns the index just past what
// it skipped (so they need no error paths of their own).
std::size_t SkipSpace(std::string_view t, std::size_t i) {
  while (i < t.size() && std::string_view(" \t\n\r").find(t[i]) != std::string_view::npos) ++i;
  return i;
}

std::size_t SkipString(std::string_view t, std::size_t i) {  // t[i] == '"'
  for (++i; i < t.size() && t[i] != '"'; ++i) {
    if (t[i] == '\\') ++i;
  }
  return i + 1;
}

std::size_t SkipValue(std::string_view t, std::size_t i) {
  if (t[i] == '"') return SkipString(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') {
        i = SkipString(t, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return i;
  }
  while (i < t.size() && std::string_view(",}] \t\n\r").find(t[i]) == std::string_view::npos) ++i;
  return i;
}

// The decoded text of a JSON string token (escapes such as \u0065 resolved), as consumers see keys.
std::string DecodeKey(std::string_view token) {
  rapidjson::Document d;
  d.Parse(token.data(), token.size());
  return d.IsString() ? std::string(d.GetString(), d.GetStringLength()) : std::string();
}

}  // namespace

std::optional<std::string> ResetAttempt(std::string_view value) {
  // Validity and nesting first (ParseRecord refuses what the consumers refuse). Default precision:
  // kParseFullPrecisionFlag runs RapidJSON 1.1's DiyFp path, which calls clz(0) (undefined) on a
  // number such as 0e-60 (record_decoders_fuzz).
  rapidjson::Document doc;
  ParseRecord(doc, value);
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  if (!doc.HasMember("attempt")) return std::string(value);  // not a send (a dead-lettered trigger)
  // Then only the text of the first top-level "attempt" (the member FindMember, and so the worker,
  // reads) is replaced: every other byte stays as it was dead-lettered. Re-serialising instead moved
  // non-integer numbers by an ULP and rewrote spacing and escapes.
  std::size_t i = SkipSpace(value, 0) + 1;  // past '{'
  while (true) {
    i = SkipSpace(value, i);
    if (i >= value.size() || value[i] != '"') return std::nullopt;
    std::size_t key_end = SkipString(value, i);
    bool attempt = DecodeKey(value.substr(i, key_end - i)) == "attempt";
    i = SkipSpace(value, key_end) + 1;  // past ':'
    i = SkipSpace(value, i);
    std::size_t end = SkipValue(value, i);
    if (attempt) {
      std::string out(value);
      out.replace(i, end - i, "1");
      return out;
    }
    i = SkipSpace(value, end);
    if (i >= value.size() || value[i] != ',') return std::nullopt;
    ++i;
  }
}

std::string DefaultReplayTarget(std::string_view from) {
  for (std::string_view prefix : {"pv.dlq.", "pv.send."}) {
    if (from.substr(0, prefix.size()) == prefix && from.size() > prefix.size()) {
      return "pv.send." + std::string(from.substr(prefix.size()));
    }
  }
  return "";
}

std::string ReplayGroup(std::string_view from, std::string_view to, const ReplayFilter& filter) {
  std::string identity = fmt::format("to={}\n{}", to, filter.Canonical());
  return fmt::format("pvctl-replay-{}-{}", from, Sha256Hex(identity).substr(0, 12));
}

namespace {

constexpr const char* kReplayFooter =
    R"(Re-publishes the matching records of TOPIC (a dead-letter topic such as pv.dlq.email, or a send
topic) to --to (default: pv.send.<channel> of the source), with "attempt" reset to 1 in the value and
headers pv-replayed-at, pv-replayed-from, pv-send-id and pv-trigger-id. Nothing else changes. A
record with a pv-target header goes there instead: triggers the dispatcher could not process (e.g. an
unknown campaign) are dead-lettered with pv-target: pv.triggers and are replayed into it, unchanged.

Filters: --campaign on the value's campaign_id; --error-code on header pv-error-code; --since and
--until (since <= t < until) on header pv-failed-at, or the record's timestamp when it has none.

Reads from the saved position of this exact replay (source, target and filters) or the start of the
topic, up to the end as it is when the replay starts. The position is saved as it goes (consumer
group pvctl-replay-<from>-<hash>), so rerunning the same command resumes an interrupted or --limit-ed
replay and a finished one replays nothing. --restart reads from the start again. --dry-run counts
without publishing or saving. A send already delivered is not delivered again: workers dedupe by
send_id.

Output: progress on a terminal (stderr), then matched, replayed and skipped counts (--json: one
object). Global options (before or after the command): --config, --json, --brokers, --timeout.
Exit codes: 0 done (or --limit reached), 1 failed or interrupted (rerun to resume), 2 usage.)";

struct ReplayOptions {
  std::string from;
  std::string to;          // "": DefaultReplayTarget(from)
  std::string campaign;    // "": any
  std::string error_code;  // "": any
  std::string since;       // "": no lower bound
  std::string until;       // "": no upper bound
  std::int64_t limit = -1;
  bool dry_run = false;
  bool restart = false;
  bool no_progress = false;
};

std::set<std::string> SplitList(const std::string& text) {
  std::set<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.insert(item);
  }
  return out;
}

struct Summary {
  std::string from, to, group;
  bool dry_run = false;
  bool resumed = false;    // started from a saved position
  std::int64_t total = 0;  // records between the start positions and the end marks
  std::int64_t scanned = 0, matched = 0, replayed = 0, filtered = 0, unreadable = 0;
  std::int64_t unroutable = 0;                  // pv-target names a topic that does not exist
  std::map<std::string, std::int64_t> targets;  // matched records by the topic they go to
  std::string stopped = "end";                  // end | limit | interrupted | error
  std::string error;

  std::int64_t skipped() const { return filtered + unreadable + unroutable; }
  std::int64_t remaining() const { return std::max<std::int64_t>(0, total - scanned); }
};

// Delivery reports of re-published records, keyed by their source position (poll thread -> main).
class Deliveries {
 public:
  void Report(std::int32_t partition, std::int64_t offset, rd_kafka_resp_err_t err) {
    std::lock_guard lock(mutex_);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++acked_;
      return;
    }
    auto [it, inserted] = first_failed_.emplace(partition, offset);
    if (!inserted) it->second = std::min(it->second, offset);
    if (error_.empty()) error_ = rd_kafka_err2str(err);
  }
  std::int64_t acked() {
    std::lock_guard lock(mutex_);
    return acked_;
  }
  // The first failed offset of each partition with a failure; `error`: the first failure's.
  std::map<std::int32_t, std::int64_t> first_failed(std::string& error) {
    std::lock_guard lock(mutex_);
    error = error_;
    return first_failed_;
  }

 private:
  std::mutex mutex_;
  std::int64_t acked_ = 0;
  std::map<std::int32_t, std::int64_t> first_failed_;
  std::string error_;
};

class RecordDelivery final : public kafka::DeliveryHandler {
 public:
  RecordDelivery(Deliveries& sink, std::int32_t partition, std::int64_t offset)
      : sink_(sink), partition_(partition), offset_(offset) {}
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t, std::int64_t) override {
    sink_.Report(partition_, offset_, err);
  }

 private:
  Deliveries& sink_;
  std::int32_t partition_;
  std::int64_t offset_;
};

// A one-line progress bar on stderr, redrawn at most ten times a second.
class Progress {
 public:
  Progress(std::ostream& err, bool enabled) : err_(err), enabled_(enabled) {}
  void Update(const Summary& s, bool force = false) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    constexpr int kWidth = 30;
    double done = s.total > 0 ? static_cast<double>(s.scanned) / static_cast<double>(s.total) : 1.0;
    int filled = static_cast<int>(done * kWidth);
    err_ << fmt::format("\r[{}{}] {:3.0f}%  {}/{} read, {} matched, {} {}", std::string(filled, '#'),
                        std::string(kWidth - filled, '.'), done * 100, s.scanned, s.total, s.matched,
                        s.replayed, s.dry_run ? "published (dry run)" : "replayed")
         << std::flush;
    drawn_ = true;
  }
  void Clear() {
    if (drawn_) err_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  std::ostream& err_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

void PrintSummary(Context& ctx, const Summary& s) {
  if (ctx.json) {
    std::string targets;
    for (const auto& [topic, count] : s.targets)
      targets += fmt::format("{}{}:{}", targets.empty() ? "" : ",", JsonString(topic), count);
    std::string out = fmt::format(
        "{{\"from\":{},\"to\":{},\"group\":{},\"dry_run\":{},\"resumed\":{},\"total\":{},\"scanned\":{},"
        "\"matched\":{},\"replayed\":{},\"skipped\":{},\"filtered\":{},\"unreadable\":{},\"unroutable\":{},"
        "\"remaining\":{},\"stopped\":\"{}\",\"targets\":{{{}}}",
        JsonString(s.from), JsonString(s.to), JsonString(s.group), s.dry_run, s.resumed, s.total, s.scanned,
        s.matched, s.replayed, s.skipped(), s.filtered, s.unreadable, s.unroutable, s.remaining(), s.stopped,
        targets);
    AppendOptionalField(out, "error", s.error);
    *ctx.out << out << "}\n";
    return;
  }
  *ctx.out << fmt::format("Replay {} -> {}{} ({}, position saved as group {})\n", s.from, s.to,
                          s.dry_run ? " [dry run: nothing published, position not saved]" : "",
                          s.resumed ? "resumed from the saved position" : "from the start", s.group);
  *ctx.out << fmt::format(
      "matched {}, replayed {}, skipped {} (filtered {}, unreadable {}, unroutable {}); read {} of {}, {} "
      "left\n",
      s.matched, s.replayed, s.skipped(), s.filtered, s.unreadable, s.unroutable, s.scanned, s.total,
      s.remaining());
  std::string by_target;
  for (const auto& [topic, count] : s.targets)
    by_target += fmt::format("{}{} to {}", by_target.empty() ? "" : ", ", count, topic);
  if (!by_target.empty()) *ctx.out << fmt::format("{}: {}\n", s.dry_run ? "would go" : "went", by_target);
  if (s.stopped == "limit") {
    *ctx.out << "Stopped at --limit; run the same command again to continue.\n";
  } else if (s.stopped == "interrupted") {
    *ctx.out << "Interrupted; run the same command again to continue from the saved position.\n";
  }
}

class Replay {
 public:
  Replay(Context& ctx, const ReplayOptions& options, Summary& summary, ReplayFilter filter)
      : ctx_(ctx), options_(options), s_(summary), filter_(std::move(filter)) {}

  int Run();

 private:
  void Start();
  bool Checkpoint();
  void Handle(const rd_kafka_message_t* m);

  Context& ctx_;
  const ReplayOptions& options_;
  Summary& s_;
  ReplayFilter filter_;
  std::chrono::milliseconds timeout_{};
  std::map<std::int32_t, std::int64_t> end_;       // end marks captured at start
  std::map<std::int32_t, std::int64_t> position_;  // next offset to read, per partition
  std::map<std::int32_t, bool> done_;
  std::set<std::string> topics_;  // every topic of the cluster: where a record may go
  std::unique_ptr<Client> consumer_;
  // Declared before the producer: handlers outlive it, whose destructor may still report.
  Deliveries deliveries_;
  std::vector<std::unique_ptr<RecordDelivery>> handlers_;
  std::unique_ptr<kafka::Producer> producer_;
  std::int64_t since_checkpoint_ = 0;
};

bool Replay::Checkpoint() {
  if (s_.dry_run) return true;
  auto fail = [&](std::string why) {
    if (s_.error.empty()) s_.error = std::move(why);  // the first failure is the one to report
    return false;
  };
  if (producer_->Flush(timeout_) > 0) {
    // Nothing saved: a rerun re-publishes this batch, and workers dedupe what was delivered.
    return fail(
        fmt::format("the broker did not acknowledge re-published records within {} ms", timeout_.count()));
  }
  std::string error;
  auto failed = deliveries_.first_failed(error);
  bool ok = failed.empty() || fail("re-publishing failed: " + error);
  s_.replayed = deliveries_.acked();
  handlers_.clear();
  // Each partition's position, but never past a record whose re-publication failed.
  PartitionList list(rd_kafka_topic_partition_list_new(static_cast<int>(position_.size())));
  for (const auto& [p, pos] : position_) {
    std::int64_t safe = pos;
    if (auto it = failed.find(p); it != failed.end()) safe = std::min(safe, it->second);
    rd_kafka_topic_partition_list_add(list.get(), s_.from.c_str(), p)->offset = safe;
  }
  rd_kafka_resp_err_t err = rd_kafka_commit(consumer_->get(), list.get(), 0);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return fail(fmt::format("saving the position (group {}) failed: {}", s_.group, rd_kafka_err2str(err)));
  }
  since_checkpoint_ = 0;
  return ok;
}

void Replay::Handle(const rd_kafka_message_t* m) {
  std::int32_t p = m->partition;
  ++s_.scanned;
  ++since_checkpoint_;
  position_[p] = m->offset + 1;
  if (position_[p] >= end_[p]) done_[p] = true;

  DeadLetter why = ParseDeadLetter(kafka::Headers(m));
  rd_kafka_timestamp_type_t type;
  ReplayRecord record{kafka::Payload(m), std::move(why.error_code), std::move(why.failed_at),
                      rd_kafka_message_timestamp(m, &type)};
  if (ReplayVerdict verdict = Evaluate(filter_, record); verdict != ReplayVerdict::kMatch) {
    ++(verdict == ReplayVerdict::kFiltered ? s_.filtered : s_.unreadable);
    return;
  }
  std::optional<std::string> value = ResetAttempt(record.value);
  if (!value) {
    ++s_.unreadable;
    return;
  }
  // A record says where it belongs when that is not a send topic: the dispatcher dead-letters
  // triggers it could not turn into a send with pv-target: pv.triggers.
  std::string target = kafka::HeaderValue(m, ladder::kTarget).value_or(s_.to);
  if (topics_.count(target) == 0) {
    ++s_.unroutable;
    return;
  }
  ++s_.matched;
  ++s_.targets[target];
  if (s_.dry_run) return;

  rapidjson::Document doc;
  ParseRecord(doc, *value);
  std::string send_id(FindString(doc, "send_id").value_or(""));
  std::string trigger_id(FindString(doc, "trigger_id").value_or(""));
  std::string replayed_at = FormatTimestamp(std::chrono::system_clock::now());
  std::string replayed_from = fmt::format("{}/{}/{}", s_.from, p, m->offset);
  std::vector<kafka::Header> headers = {{"pv-replayed-at", replayed_at}, {"pv-replayed-from", replayed_from}};
  if (!send_id.empty()) headers.push_back({"pv-send-id", send_id});
  if (!trigger_id.empty()) headers.push_back({"pv-trigger-id", trigger_id});

  handlers_.push_back(std::make_unique<RecordDelivery>(deliveries_, p, m->offset));
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (true) {
    rd_kafka_resp_err_t err =
        producer_->Produce(target, kafka::Key(m), *value, headers, handlers_.back().get());
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || std::chrono::steady_clock::now() > deadline) {
      deliveries_.Report(p, m->offset, err);
      break;
    }
    producer_->Flush(std::chrono::milliseconds(50));
  }
}

// Connects, checks the topics, and fixes where each partition of the source starts and ends.
void Replay::Start() {
  kafka::Settings settings = KafkaSettings(ctx_);
  timeout_ = RequestTimeout(ctx_);
  s_.group = ReplayGroup(s_.from, s_.to, filter_);
  consumer_ =
      std::make_unique<Client>(RD_KAFKA_CONSUMER, settings, "pvctl-replay",
                               std::map<std::string, std::string>{{"group.id", s_.group},
                                                                  {"enable.auto.commit", "false"},
                                                                  {"enable.auto.offset.store", "false"},
                                                                  {"enable.partition.eof", "true"},
                                                                  {"auto.offset.reset", "earliest"}});
  // Metadata through the handles that use it: librdkafka caches it, so neither waits for its next
  // periodic refresh (1 s) before fetching or producing.
  ClusterInfo cluster = Describe(consumer_->get(), timeout_);
  for (const auto& [name, info] : cluster.topics) {
    if (info.err == RD_KAFKA_RESP_ERR_NO_ERROR) topics_.insert(name);
  }
  for (const auto& topic : {s_.from, s_.to}) {
    if (topics_.count(topic) == 0)
      throw kafka::KafkaError(
          fmt::format("topic {} does not exist (pvctl topics list shows the topics)", topic));
  }
  std::vector<std::int32_t> partitions;
  for (const auto& part : cluster.topics[s_.from].partitions) partitions.push_back(part.id);
  auto marks = QueryWatermarks(consumer_->get(), s_.from, partitions, timeout_);

  // Asked even with --restart: it also finds the group's coordinator, which the commits need.
  std::vector<TopicPartition> tps;
  tps.reserve(partitions.size());
  for (auto p : partitions) tps.push_back({s_.from, p});
  std::map<TopicPartition, std::int64_t> committed = CommittedOffsets(consumer_->get(), tps, timeout_);
  if (options_.restart) committed.clear();
  std::map<std::int32_t, std::int64_t> assignment;
  for (auto p : partitions) {
    std::int64_t c = committed.count({s_.from, p}) ? committed[{s_.from, p}] : RD_KAFKA_OFFSET_INVALID;
    if (c >= 0) s_.resumed = true;
    std::int64_t start = std::max(c >= 0 ? c : marks[p].low, marks[p].low);
    end_[p] = marks[p].high;
    position_[p] = start;
    done_[p] = start >= end_[p];
    s_.total += std::max<std::int64_t>(0, end_[p] - start);
    if (!done_[p]) assignment[p] = start;
  }
  if (!s_.dry_run) {
    kafka::ProducerOptions options;
    options.client_id = "pvctl-replay";
    options.defaults = {{"linger.ms", "5"}, {"message.timeout.ms", std::to_string(timeout_.count())}};
    producer_ = std::make_unique<kafka::Producer>(settings, options);
    if (!producer_->BrokersReachable(timeout_)) {
      throw kafka::KafkaError(fmt::format("cannot read cluster metadata within {} ms", timeout_.count()));
    }
  }
  Assign(consumer_->get(), s_.from, assignment);
}

int Replay::Run() {
  Start();
  InterruptScope interrupt;
  Progress progress(*ctx_.err, !ctx_.json && !options_.no_progress && ::isatty(STDERR_FILENO) == 1);
  auto all_done = [&] {
    return std::all_of(done_.begin(), done_.end(), [](const auto& d) { return d.second; });
  };
  auto last_record = std::chrono::steady_clock::now();
  auto last_checkpoint = last_record;
  std::string consumer_error;
  bool ok = true;
  while (!all_done()) {
    if (InterruptScope::Interrupted()) {
      s_.stopped = "interrupted";
      break;
    }
    if (options_.limit >= 0 && s_.matched >= options_.limit) {
      s_.stopped = "limit";
      break;
    }
    kafka::Message m(rd_kafka_consumer_poll(consumer_->get(), 100));
    auto now = std::chrono::steady_clock::now();
    if (m != nullptr) {
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->offset >= end_[m->partition]) done_[m->partition] = true;
        last_record = now;
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        consumer_error = rd_kafka_message_errstr(m.get());
      } else if (!done_[m->partition] && m->offset >= end_[m->partition]) {
        done_[m->partition] = true;
      } else if (!done_[m->partition]) {
        Handle(m.get());
        last_record = now;
      }
    }
    if (!s_.dry_run && (since_checkpoint_ >= 1000 ||
                        (since_checkpoint_ > 0 && now - last_checkpoint >= std::chrono::seconds(1)))) {
      if (!Checkpoint()) {
        ok = false;
        break;
      }
      last_checkpoint = now;
    }
    if (now - last_record > timeout_) {
      s_.error =
          fmt::format("no records from the broker for {} ms, {} still to read{}", timeout_.count(),
                      s_.remaining(), consumer_error.empty() ? "" : " (last error: " + consumer_error + ")");
      ok = false;
      break;
    }
    if (!s_.dry_run) s_.replayed = deliveries_.acked();
    progress.Update(s_);
  }
  // Saves what was done, also after a failure (the first failure's message stays).
  if (!Checkpoint()) ok = false;
  if (!ok) s_.stopped = "error";
  progress.Update(s_, true);
  progress.Clear();
  if (producer_) producer_->Flush(timeout_);
  return ok && s_.stopped != "interrupted" ? kExitOk : kExitFailed;
}

int RunReplay(Context& ctx, const ReplayOptions& options) {
  Summary s;
  s.from = options.from;
  s.to = options.to.empty() ? DefaultReplayTarget(s.from) : options.to;
  if (s.to.empty()) return UsageError(ctx, fmt::format("--to is required: no default target for {}", s.from));
  if (s.to == s.from) return UsageError(ctx, "--to must differ from --from");
  s.dry_run = options.dry_run;

  ReplayFilter filter;
  filter.campaigns = SplitList(options.campaign);
  filter.error_codes = SplitList(options.error_code);
  // "--campaign ," would otherwise be no filter at all, and replay everything.
  if (!options.campaign.empty() && filter.campaigns.empty())
    return UsageError(ctx, fmt::format("--campaign: no campaign id in '{}'", options.campaign));
  if (!options.error_code.empty() && filter.error_codes.empty())
    return UsageError(ctx, fmt::format("--error-code: no error code in '{}'", options.error_code));
  for (auto [name, text, slot] : {std::tuple{"--since", &options.since, &filter.since},
                                  std::tuple{"--until", &options.until, &filter.until}}) {
    if (text->empty()) continue;
    auto t = ParseTimestamp(*text);
    if (!t) {
      return UsageError(ctx,
                        fmt::format("{}: '{}' is not an RFC 3339 time (2026-01-31T09:00:00Z)", name, *text));
    }
    *slot = t;
  }
  if (filter.since && filter.until && *filter.until <= *filter.since)
    return UsageError(ctx, "--until must be after --since");

  Replay replay(ctx, options, s, std::move(filter));
  int rc = kExitFailed;
  try {
    rc = replay.Run();
  } catch (const std::exception& e) {
    s.error = e.what();
    s.stopped = "error";
    if (!ctx.json) return Fail(ctx, e.what());  // nothing was done: the error alone says it
  }
  PrintSummary(ctx, s);
  if (!s.error.empty()) *ctx.err << "pvctl replay: " << s.error << "\n";
  return rc;
}

}  // namespace

void AddReplayCommand(CLI::App& app, Context& ctx) {
  auto options = std::make_shared<ReplayOptions>();
  CLI::App* replay =
      app.add_subcommand("replay", "re-publish dead letters once the cause of their failure is fixed");
  replay->footer(kReplayFooter);
  AddText(replay, "--from", options->from,
          "the topic to replay: a dead-letter topic (pv.dlq.email) or a send topic", "TOPIC")
      ->required();
  AddText(replay, "--to", options->to, "where matches go (default: pv.send.<channel> of --from)", "TOPIC");
  AddText(replay, "--campaign", options->campaign,
          "only records of these campaigns (the value's campaign_id)", "ID[,ID...]");
  AddText(replay, "--error-code", options->error_code, "only records with these pv-error-code headers",
          "CODE[,CODE...]");
  AddText(replay, "--since", options->since, "only records that failed at or after this time", "RFC3339");
  AddText(replay, "--until", options->until, "only records that failed before this time", "RFC3339");
  replay->add_option("--limit", options->limit, "stop after N >= 1 matches (rerun the command to continue)")
      ->type_name("N")
      ->check(cli::IntegerIn(1, INT64_MAX));
  replay->add_flag("--dry-run", options->dry_run, "count what would be replayed; publish and save nothing");
  replay->add_flag("--restart", options->restart, "read from the start of --from, not the saved position");
  replay->add_flag("--no-progress", options->no_progress, "no progress bar on a terminal");
  OnRun(replay, ctx, [&ctx, options] { return RunReplay(ctx, *options); });
}

}  // namespace pv::pvctl
