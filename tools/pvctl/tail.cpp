// pvctl tail: shows a topic's records, humanly (partition, offset, time, key, headers, indented JSON
// value) or as one JSON object per line (--json), without joining a consumer group, so tailing never
// disturbs the pipeline's consumers.
#include <fmt/format.h>
#include <rapidjson/document.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <ostream>
#include <vector>

#include "kafka_client.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"
#include "pvctl.hpp"

namespace pv::pvctl {
namespace {

constexpr const char* kTailUsage = R"(Usage:
  pvctl tail TOPIC [--limit N] [--from-beginning] [--follow] [--json] [--timeout SECONDS]

Prints records of TOPIC with partition, offset, timestamp, key, headers and the value (JSON values
indented). Without --from-beginning: the last N records (--limit, default 10) across partitions, by
timestamp. With --from-beginning: records from the start, at most N when --limit is given. --follow
then prints new records as they arrive, until Ctrl-C. --json prints one object per record:
{"topic","partition","offset","timestamp","key","headers":{...},"value"} (value as JSON when it is).
Joins no consumer group and commits nothing.

Exit codes: 0 ok, 1 failed (broker unreachable, no such topic), 2 usage.
)";

struct Shown {
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = -1;
  std::optional<std::string> key;
  std::vector<std::pair<std::string, std::string>> headers;
  std::optional<std::string> value;
};

Shown Capture(const rd_kafka_message_t* m) {
  Shown s;
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

void PrintText(std::ostream& out, const std::string& topic, const Shown& s) {
  out << fmt::format("{} [{}] @{}  {}  key={}\n", topic, s.partition, s.offset, Timestamp(s.timestamp_ms),
                     s.key ? Printable(*s.key) : "(none)");
  for (const auto& [name, value] : s.headers) out << fmt::format("  {}: {}\n", name, Printable(value));
  if (!s.value) {
    out << "  (null value)\n\n";
    return;
  }
  rapidjson::Document doc;
  ParseRecord(doc, *s.value);
  std::string body;
  if (!doc.HasParseError()) {
    rapidjson::StringBuffer buffer;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
    writer.SetIndent(' ', 2);
    doc.Accept(writer);
    body.assign(buffer.GetString(), buffer.GetSize());
  } else {
    body = Printable(*s.value);
  }
  // Indented under the record's header line.
  out << "  ";
  for (char c : body) {
    out << c;
    if (c == '\n') out << "  ";
  }
  out << "\n\n";
}

void PrintJson(std::ostream& out, const std::string& topic, const Shown& s) {
  std::string line = "{\"topic\":";
  AppendJsonString(line, topic);
  line += fmt::format(",\"partition\":{},\"offset\":{},\"timestamp\":", s.partition, s.offset);
  if (s.timestamp_ms >= 0) {
    AppendJsonString(line, Timestamp(s.timestamp_ms));
  } else {
    line += "null";
  }
  line += ",\"key\":";
  if (s.key) {
    AppendJsonString(line, *s.key);
  } else {
    line += "null";
  }
  line += ",\"headers\":{";
  for (size_t i = 0; i < s.headers.size(); ++i) {
    if (i > 0) line += ",";
    AppendJsonString(line, s.headers[i].first);
    line += ":";
    AppendJsonString(line, s.headers[i].second);
  }
  line += "},\"value\":";
  if (!s.value) {
    line += "null";
  } else {
    rapidjson::Document doc;
    ParseRecord(doc, *s.value);
    if (!doc.HasParseError()) {
      line += ToJson(doc);
    } else {
      AppendJsonString(line, *s.value);
    }
  }
  out << line << "}\n";
}

}  // namespace

int TailCommand(Context& ctx) {
  if (ctx.args.Has("--help") || ctx.args.Has("-h")) {
    *ctx.out << kTailUsage;
    return kExitOk;
  }
  const auto& pos = ctx.args.positional;
  if (pos.size() != 2) {
    *ctx.err << "pvctl tail: exactly one TOPIC is required\n\n" << kTailUsage;
    return kExitUsage;
  }
  const std::string topic = pos[1];
  bool from_beginning = ctx.args.Has("--from-beginning");
  bool follow = ctx.args.Has("--follow");
  std::int64_t limit = from_beginning ? -1 : 10;
  if (ctx.args.Has("--limit")) {
    const std::string text = ctx.args.Get("--limit");
    size_t used = 0;
    try {
      limit = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || limit < 0) {
      *ctx.err << fmt::format("pvctl tail: --limit: '{}' is not a number >= 0\n\n", text) << kTailUsage;
      return kExitUsage;
    }
  }

  auto settings = KafkaSettings(ctx);
  auto timeout = RequestTimeout(ctx);
  Client consumer(RD_KAFKA_CONSUMER, settings, "pvctl-tail",
                  // librdkafka wants a group id even for assigned partitions; nothing is joined or committed.
                  {{"group.id", "pvctl-tail"},
                   {"enable.partition.eof", "true"},
                   {"enable.auto.commit", "false"},
                   {"auto.offset.reset", "earliest"}});
  std::vector<std::int32_t> partitions = PartitionsOf(consumer.get(), topic, timeout);
  auto marks = QueryWatermarks(consumer.get(), topic, partitions, timeout);

  // Where each partition starts, and where the past ends (the rest is --follow's).
  std::map<std::int32_t, std::int64_t> end;
  std::map<std::int32_t, bool> done;
  PartitionList assignment(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (auto p : partitions) {
    std::int64_t start = marks[p].low;
    if (!from_beginning) start = std::max(marks[p].low, marks[p].high - std::max<std::int64_t>(limit, 0));
    end[p] = marks[p].high;
    done[p] = start >= end[p];
    // Follow reads every partition; otherwise only those with something to show.
    if (follow || !done[p])
      rd_kafka_topic_partition_list_add(assignment.get(), topic.c_str(), p)->offset = start;
  }
  if (assignment->cnt > 0) {
    if (rd_kafka_resp_err_t err = rd_kafka_assign(consumer.get(), assignment.get()); err) {
      throw kafka::KafkaError(fmt::format("assigning {}: {}", topic, rd_kafka_err2str(err)));
    }
  }

  auto print = [&](const Shown& s) {
    if (ctx.json) {
      PrintJson(*ctx.out, topic, s);
    } else {
      PrintText(*ctx.out, topic, s);
    }
    ctx.out->flush();
  };

  InterruptScope interrupt;
  std::vector<Shown> buffered;  // the last-N mode sorts before printing
  std::vector<Shown> pending;   // --follow: new records that arrived while the past was read
  std::int64_t printed = 0;
  auto past_done = [&] {
    return std::all_of(done.begin(), done.end(), [](const auto& d) { return d.second; });
  };
  auto last_event = std::chrono::steady_clock::now();
  bool past_printed = false;
  while (!InterruptScope::Interrupted()) {
    if (!past_printed && (past_done() || (from_beginning && limit >= 0 && printed >= limit))) {
      if (!from_beginning) {
        std::sort(buffered.begin(), buffered.end(), [](const Shown& a, const Shown& b) {
          return std::tie(a.timestamp_ms, a.partition, a.offset) <
                 std::tie(b.timestamp_ms, b.partition, b.offset);
        });
        size_t skip =
            buffered.size() > static_cast<size_t>(limit) ? buffered.size() - static_cast<size_t>(limit) : 0;
        for (size_t i = skip; i < buffered.size(); ++i) print(buffered[i]);
        buffered.clear();
      }
      past_printed = true;
      if (!follow) break;
      for (const auto& s : pending) print(s);
      pending.clear();
    }
    kafka::Message m(rd_kafka_consumer_poll(consumer.get(), 100));
    auto now = std::chrono::steady_clock::now();
    if (m == nullptr) {
      if (!past_printed && now - last_event > timeout) {
        *ctx.err << fmt::format("pvctl tail: no records from the broker for {} ms\n", timeout.count());
        return kExitFailed;
      }
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
      if (from_beginning) {
        print(Capture(m.get()));
        ++printed;
      } else {
        buffered.push_back(Capture(m.get()));
      }
    } else {  // new since the start: --follow's
      done[p] = true;
      if (!follow) continue;
      if (past_printed) {
        print(Capture(m.get()));
      } else {
        pending.push_back(Capture(m.get()));  // after the past, in order
      }
    }
  }
  return kExitOk;
}

}  // namespace pv::pvctl
