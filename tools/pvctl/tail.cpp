// pvctl tail: shows a topic's records, humanly (partition, offset, time, key, headers, indented JSON
// value) or as one JSON object per line (--json), without joining a consumer group, so tailing never
// disturbs the pipeline's consumers.
#include "tail.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>

#include <algorithm>
#include <deque>
#include <map>
#include <ostream>
#include <vector>

#include "kafka_client.hpp"
#include "pv/command_line.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kTailFooter =
    R"(Prints records of TOPIC with partition, offset, timestamp, key, headers and the value (JSON values
indented). Without --from-beginning: the last N records (--limit, default 10) across partitions, by
timestamp. With --from-beginning: records from the start, at most N when --limit is given. --follow
then prints new records as they arrive, until Ctrl-C. --json prints one object per record:
{"topic","partition","offset","timestamp","key","headers":{...},"value"} (value as JSON when it is).
Joins no consumer group and commits nothing.

Filters (all given must match; --limit then counts matching records, and --follow prints only
matching ones): --key on the record's key; --send-id and --trigger-id on the header pv-send-id /
pv-trigger-id or the JSON value's send_id / trigger_id, whichever the topic's records carry
(pv.send.*, pv.events, pv.dlq.*, pv.delay.*, pv.triggers). With a filter and without
--from-beginning, each partition is read from its start to find the last N matches.

Global options (before or after the command): --config, --json, --brokers, --timeout.
Exit codes: 0 ok, 1 failed (broker unreachable, no such topic), 2 usage.)";

struct TailOptions {
  std::string topic;
  std::int64_t limit = -1;  // -1: not given (10 for the last records, no limit from the beginning)
  bool from_beginning = false;
  bool follow = false;
  TailFilter filter;
};

TailRecord Capture(const rd_kafka_message_t* m) {
  TailRecord s;
  s.partition = m->partition;
  s.offset = m->offset;
  rd_kafka_timestamp_type_t type;
  s.timestamp_ms = rd_kafka_message_timestamp(m, &type);
  if (m->key != nullptr) s.key = std::string(kafka::Key(m));
  if (m->payload != nullptr) s.value = std::string(kafka::Payload(m));
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      s.headers.emplace_back(name,
                             value != nullptr ? std::string(static_cast<const char*>(value), size) : "");
    }
  }
  return s;
}

// Text safe for a terminal: control bytes other than tab and newline as \xNN.
std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Timestamp(std::int64_t ms) {
  return ms >= 0 ? FormatTimestamp(FromUnixMillis(ms)) : "-";
}

void PrintText(std::ostream& out, const std::string& topic, const TailRecord& s) {
  out << fmt::format("{} [{}] @{}  {}  key={}\n", topic, s.partition, s.offset, Timestamp(s.timestamp_ms),
                     s.key ? Printable(*s.key) : "(none)");
  for (const auto& [name, value] : s.headers) out << fmt::format("  {}: {}\n", name, Printable(value));
  if (!s.value) {
    out << "  (null value)\n\n";
    return;
  }
  std::optional<std::string> pretty = PrettyJson(*s.value);
  std::string body = pretty ? *pretty : Printable(*s.value);
  out << "  ";  // indented under the record's header line
  for (char c : body) {
    out << c;
    if (c == '\n') out << "  ";
  }
  out << "\n\n";
}

void PrintJson(std::ostream& out, const std::string& topic, const TailRecord& s) {
  std::string headers;
  for (const auto& [name, value] : s.headers)
    headers += fmt::format("{}{}:{}", headers.empty() ? "" : ",", JsonString(name), JsonString(value));
  std::string value = "null";
  if (s.value) {
    rapidjson::Document doc;
    ParseRecord(doc, *s.value);
    value = doc.HasParseError() ? JsonString(*s.value) : ToJson(doc);
  }
  out << fmt::format(
             R"({{"topic":{},"partition":{},"offset":{},"timestamp":{},"key":{},"headers":{{{}}},"value":{}}})",
             JsonString(topic), s.partition, s.offset,
             s.timestamp_ms >= 0 ? JsonString(Timestamp(s.timestamp_ms)) : "null",
             s.key ? JsonString(*s.key) : "null", headers, value)
      << "\n";
}

// Assigns the partitions of the topic from where the output starts. Returns where the past ends in
// each (what follows is --follow's); `done`: the partitions with none of the past to read.
std::map<std::int32_t, std::int64_t> AssignTail(rd_kafka_t* consumer, const TailOptions& options,
                                                std::int64_t limit, std::chrono::milliseconds timeout,
                                                std::map<std::int32_t, bool>& done) {
  std::vector<std::int32_t> partitions = PartitionsOf(consumer, options.topic, timeout);
  auto marks = QueryWatermarks(consumer, options.topic, partitions, timeout);
  std::map<std::int32_t, std::int64_t> end;
  std::map<std::int32_t, std::int64_t> assignment;
  for (auto p : partitions) {
    std::int64_t start = marks[p].low;
    // The last N records are the last N offsets; the last N matches can be anywhere.
    if (!options.from_beginning && (options.filter.Empty() || limit == 0)) {
      start = std::max(marks[p].low, marks[p].high - std::max<std::int64_t>(limit, 0));
    }
    end[p] = marks[p].high;
    done[p] = start >= end[p];
    // Follow reads every partition; otherwise only those with something to show.
    if (options.follow || !done[p]) assignment[p] = start;
  }
  Assign(consumer, options.topic, assignment);
  return end;
}

// The last-N mode: each partition's last N (matching) records, the last N of them all by time.
template <typename Print>
void PrintLast(std::map<std::int32_t, std::deque<TailRecord>>& buffered, std::int64_t limit, Print&& print) {
  std::vector<TailRecord> last;
  for (auto& [p, records] : buffered) last.insert(last.end(), records.begin(), records.end());
  buffered.clear();
  std::sort(last.begin(), last.end(), [](const TailRecord& a, const TailRecord& b) {
    return std::tie(a.timestamp_ms, a.partition, a.offset) < std::tie(b.timestamp_ms, b.partition, b.offset);
  });
  size_t skip = last.size() > static_cast<size_t>(limit) ? last.size() - static_cast<size_t>(limit) : 0;
  for (size_t i = skip; i < last.size(); ++i) print(last[i]);
}

int RunTail(Context& ctx, const TailOptions& options) {
  const std::string& topic = options.topic;
  bool from_beginning = options.from_beginning;
  bool follow = options.follow;
  std::int64_t limit = options.limit >= 0 ? options.limit : from_beginning ? -1 : 10;
  auto timeout = RequestTimeout(ctx);
  Client consumer(RD_KAFKA_CONSUMER, KafkaSettings(ctx), "pvctl-tail",
                  // librdkafka wants a group id even for assigned partitions; nothing is joined or committed.
                  {{"group.id", "pvctl-tail"},
                   {"enable.partition.eof", "true"},
                   {"enable.auto.commit", "false"},
                   {"auto.offset.reset", "earliest"}});
  std::map<std::int32_t, bool> done;
  std::map<std::int32_t, std::int64_t> end = AssignTail(consumer.get(), options, limit, timeout, done);
  auto print = [&](const TailRecord& s) {
    (ctx.json ? PrintJson : PrintText)(*ctx.out, topic, s);
    ctx.out->flush();
  };

  InterruptScope interrupt;
  std::map<std::int32_t, std::deque<TailRecord>> buffered;
  std::vector<TailRecord> pending;  // --follow: new records that arrived while the past was read
  std::int64_t printed = 0;
  auto past_done = [&] {
    return std::all_of(done.begin(), done.end(), [](const auto& d) { return d.second; });
  };
  auto last_event = std::chrono::steady_clock::now();
  bool past_printed = false;
  while (!InterruptScope::Interrupted()) {
    if (!past_printed && (past_done() || (from_beginning && limit >= 0 && printed >= limit))) {
      if (!from_beginning) PrintLast(buffered, limit, print);
      past_printed = true;
      if (!follow) break;
      for (const auto& s : pending) print(s);
      pending.clear();
    }
    kafka::Message m(rd_kafka_consumer_poll(consumer.get(), 100));
    auto now = std::chrono::steady_clock::now();
    if (m == nullptr) {
      if (!past_printed && now - last_event > timeout)
        return Fail(ctx, fmt::format("no records from the broker for {} ms", timeout.count()));
      continue;
    }
    last_event = now;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->offset >= end[m->partition]) done[m->partition] = true;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      *ctx.err << "pvctl tail: " << rd_kafka_message_errstr(m.get()) << "\n";
      continue;
    }
    std::int32_t p = m->partition;
    if (m->offset < end[p]) {      // the past
      if (past_printed) continue;  // beyond --limit
      if (m->offset + 1 >= end[p]) done[p] = true;
      TailRecord record = Capture(m.get());
      if (!Matches(options.filter, record)) continue;
      if (from_beginning) {
        print(record);
        ++printed;
      } else {
        std::deque<TailRecord>& last = buffered[p];
        last.push_back(std::move(record));
        if (last.size() > static_cast<size_t>(limit)) last.pop_front();
      }
    } else {  // new since the start: --follow's
      done[p] = true;
      if (!follow) continue;
      TailRecord record = Capture(m.get());
      if (!Matches(options.filter, record)) continue;
      if (past_printed) {
        print(record);
      } else {
        pending.push_back(std::move(record));  // after the past, in order
      }
    }
  }
  return kExitOk;
}

}  // namespace

bool Matches(const TailFilter& filter, const TailRecord& record) {
  if (!filter.key.empty() && record.key != filter.key) return false;
  if (filter.send_id.empty() && filter.trigger_id.empty()) return true;
  std::optional<rapidjson::Document> doc;  // parsed once, when a header does not decide
  auto id_matches = [&](const std::string& id, std::string_view header, std::string_view field) {
    if (id.empty()) return true;
    for (const auto& [name, value] : record.headers) {
      if (name == header && value == id) return true;
    }
    if (!record.value) return false;
    if (!doc) {
      doc.emplace();
      ParseRecord(*doc, *record.value);
    }
    if (doc->HasParseError() || !doc->IsObject()) return false;
    return FindString(*doc, field) == std::optional<std::string_view>(id);
  };
  return id_matches(filter.send_id, "pv-send-id", "send_id") &&
         id_matches(filter.trigger_id, "pv-trigger-id", "trigger_id");
}

void AddTailCommand(CLI::App& app, Context& ctx) {
  auto options = std::make_shared<TailOptions>();
  CLI::App* tail =
      app.add_subcommand("tail", "print a topic's records: partition, offset, key, headers, value");
  tail->footer(kTailFooter);
  tail->add_option("TOPIC", options->topic, "the topic to read")->required()->check(cli::NotEmpty());
  tail->add_option(
          "--limit", options->limit,
          "at most N (matching) records: the last N (default 10), or the first N with --from-beginning")
      ->type_name("N")
      ->check(cli::IntegerIn(0, INT64_MAX));
  tail->add_flag("--from-beginning", options->from_beginning, "from the start of each partition");
  tail->add_flag("--follow", options->follow, "then print new records as they arrive, until Ctrl-C");
  AddText(tail, "--key", options->filter.key, "only records with this key", "K");
  AddText(tail, "--send-id", options->filter.send_id, "only records of this send (header or value)", "ID");
  AddText(tail, "--trigger-id", options->filter.trigger_id, "only records of this trigger (header or value)",
          "ID");
  OnRun(tail, ctx, [&ctx, options] { return RunTail(ctx, *options); });
}

}  // namespace pv::pvctl
