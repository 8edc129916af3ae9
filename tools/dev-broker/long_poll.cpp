// The dev broker's long-poll front: see long_poll.hpp for why and what.
#include "long_poll.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "pv/log.hpp"
#include "pv/strings.hpp"

namespace pv::dev_broker {

// ---- wire ----

namespace wire {
namespace {

// Big-endian reader over one frame; any read past the end turns ok() false and reads zeros.
class Reader {
 public:
  Reader(std::string_view data, std::size_t offset) : data_(data), pos_(offset) {
    if (pos_ > data_.size()) ok_ = false;
  }
  bool ok() const { return ok_; }
  std::size_t pos() const { return pos_; }

  std::int8_t I8() { return static_cast<std::int8_t>(Unsigned(1)); }
  std::int16_t I16() { return static_cast<std::int16_t>(Unsigned(2)); }
  std::int32_t I32() { return static_cast<std::int32_t>(Unsigned(4)); }
  std::int64_t I64() { return static_cast<std::int64_t>(Unsigned(8)); }
  // STRING / NULLABLE_STRING (int16 length, -1 = null, read as empty).
  std::string_view String() {
    std::int16_t len = I16();
    if (len <= 0) return {};
    return Take(static_cast<std::size_t>(len));
  }
  // BYTES / NULLABLE_BYTES (int32 length); returns the length (-1 for null).
  std::int32_t SkipBytes() {
    std::int32_t len = I32();
    if (len > 0) Take(static_cast<std::size_t>(len));
    return len;
  }
  // An array count (null = 0), refused when the frame cannot hold that many elements of `min_size`.
  std::int32_t Count(std::size_t min_size) {
    std::int32_t n = I32();
    if (n < 0) return 0;
    if (!ok_ || static_cast<std::size_t>(n) * min_size > data_.size() - pos_) {
      ok_ = false;
      return 0;
    }
    return n;
  }
  void Skip(std::size_t n) { Take(n); }

 private:
  std::uint64_t Unsigned(std::size_t n) {
    std::string_view bytes = Take(n);
    std::uint64_t v = 0;
    for (char c : bytes) v = (v << 8) | static_cast<unsigned char>(c);
    return v;
  }
  std::string_view Take(std::size_t n) {
    if (!ok_ || n > data_.size() - pos_) {
      ok_ = false;
      return {};
    }
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }

  std::string_view data_;
  std::size_t pos_;
  bool ok_ = true;
};

// Writes `value` big-endian in `bytes` bytes at `offset` of `frame`, or appended when `offset` is npos.
void PutBigEndian(std::string& frame, std::size_t offset, std::uint64_t value, std::size_t bytes) {
  if (offset == std::string::npos) {
    offset = frame.size();
    frame.append(bytes, '\0');
  }
  for (std::size_t i = bytes; i-- > 0; value >>= 8) frame[offset + i] = static_cast<char>(value & 0xff);
}
void PutI32(std::string& frame, std::size_t offset, std::int32_t value) {
  PutBigEndian(frame, offset, static_cast<std::uint32_t>(value), 4);
}
void AppendI16(std::string& frame, std::int16_t value) {
  PutBigEndian(frame, std::string::npos, static_cast<std::uint16_t>(value), 2);
}
void AppendI32(std::string& frame, std::int32_t value) {
  PutBigEndian(frame, std::string::npos, static_cast<std::uint32_t>(value), 4);
}
void AppendI64(std::string& frame, std::int64_t value) {
  PutBigEndian(frame, std::string::npos, static_cast<std::uint64_t>(value), 8);
}

constexpr std::int16_t kFetchMaxVersion = 11;           // v12 is flexible
constexpr std::int16_t kProduceMaxVersion = 8;          // v9 is flexible
constexpr std::int16_t kMetadataMaxVersion = 8;         // v9 is flexible
constexpr std::int16_t kFindCoordinatorMaxVersion = 2;  // v3 is flexible

}  // namespace

bool ParseRequestHeader(std::string_view frame, RequestHeader& out) {
  Reader r(frame, 0);
  out.api_key = r.I16();
  out.api_version = r.I16();
  out.correlation_id = r.I32();
  out.client_id = std::string(r.String());
  out.body_offset = r.pos();
  return r.ok();
}

bool ParseFetchRequest(std::string_view frame, const RequestHeader& header, FetchRequest& out) {
  const std::int16_t v = header.api_version;
  if (header.api_key != kFetch || v < 0 || v > kFetchMaxVersion) return false;
  Reader r(frame, header.body_offset);
  r.I32();  // ReplicaId
  out.max_wait_offset = r.pos();
  out.max_wait_ms = r.I32();
  out.min_bytes = r.I32();
  out.max_bytes = v >= 3 ? r.I32() : std::numeric_limits<std::int32_t>::max();
  if (v >= 4) r.I8();   // IsolationLevel
  out.sessionless = true;
  if (v >= 7) {
    r.I32();                          // SessionId
    out.sessionless = r.I32() == -1;  // SessionEpoch: -1 = no session
  }
  out.partitions.clear();
  out.fetch_offsets.clear();
  out.partition_max_bytes.clear();
  out.topics.clear();
  out.entries.clear();
  out.topics_begin = r.pos();
  std::int32_t topics = r.Count(6);
  for (std::int32_t t = 0; t < topics && r.ok(); ++t) {
    FetchRequest::Topic topic;
    topic.name_begin = r.pos();
    std::string name(r.String());
    topic.name_end = r.pos();
    topic.first = out.partitions.size();
    std::int32_t parts = r.Count(16);
    for (std::int32_t p = 0; p < parts && r.ok(); ++p) {
      const std::size_t begin = r.pos();
      std::int32_t partition = r.I32();
      if (v >= 9) r.I32();  // CurrentLeaderEpoch
      out.fetch_offsets.push_back(r.I64());
      if (v >= 5) r.I64();  // LogStartOffset
      out.partition_max_bytes.push_back(r.I32());
      out.partitions.emplace_back(name, partition);
      out.entries.emplace_back(begin, r.pos());
    }
    topic.count = out.partitions.size() - topic.first;
    out.topics.push_back(topic);
  }
  out.topics_end = r.pos();
  return r.ok();
}

std::string NarrowFetchRequest(std::string_view frame, const FetchRequest& fetch, const std::vector<bool>& keep) {
  std::string out(4, '\0');  // the size prefix, set at the end
  out.append(frame.substr(0, fetch.topics_begin));
  const std::size_t topic_count_at = out.size();
  out.append(4, '\0');
  std::int32_t topic_count = 0;
  for (const FetchRequest::Topic& topic : fetch.topics) {
    std::int32_t kept = 0;
    for (std::size_t i = topic.first; i < topic.first + topic.count; ++i) kept += keep[i] ? 1 : 0;
    if (kept == 0) continue;
    ++topic_count;
    out.append(frame.substr(topic.name_begin, topic.name_end - topic.name_begin));
    AppendI32(out, kept);
    for (std::size_t i = topic.first; i < topic.first + topic.count; ++i) {
      if (keep[i]) out.append(frame.substr(fetch.entries[i].first, fetch.entries[i].second - fetch.entries[i].first));
    }
  }
  PutI32(out, topic_count_at, topic_count);
  out.append(frame.substr(fetch.topics_end));
  PutI32(out, 0, static_cast<std::int32_t>(out.size() - 4));
  return out;
}

bool ParseFetchResponse(std::string_view frame, std::int16_t version, bool& idle,
                        std::vector<FetchAnswer>& answers, FetchAnswerHeader* header) {
  const std::int16_t v = version;
  if (v < 0 || v > kFetchMaxVersion) return false;
  Reader r(frame, 4);  // after the correlation id
  idle = true;
  answers.clear();
  FetchAnswerHeader head;
  if (v >= 1) r.I32();  // ThrottleTimeMs
  if (v >= 7) {
    head.error = r.I16();
    if (head.error != 0) idle = false;
    r.I32();  // SessionId
  }
  head.topics_begin = r.pos();
  std::int32_t topics = r.Count(6);
  for (std::int32_t t = 0; t < topics && r.ok(); ++t) {
    std::string topic(r.String());
    std::int32_t parts = r.Count(18);
    for (std::int32_t p = 0; p < parts && r.ok(); ++p) {
      FetchAnswer answer;
      answer.entry_begin = r.pos();
      answer.partition = {topic, r.I32()};  // PartitionIndex
      answer.error = r.I16();
      if (answer.error != 0) idle = false;
      answer.high_watermark = r.I64();
      if (v >= 4) r.I64();  // LastStableOffset
      if (v >= 5) answer.log_start_offset = r.I64();
      if (v >= 4) {
        std::int32_t aborted = r.Count(16);  // AbortedTransactions: ProducerId, FirstOffset
        r.Skip(static_cast<std::size_t>(aborted) * 16);
      }
      if (v >= 11) r.I32();  // PreferredReadReplica
      const std::size_t records_at = r.pos() + 4;
      std::int32_t records = r.SkipBytes();
      if (records > 0) {
        idle = false;
        answer.records = frame.substr(records_at, static_cast<std::size_t>(records));
      }
      answer.entry_end = r.pos();
      if (r.ok()) answers.push_back(std::move(answer));
    }
  }
  if (header != nullptr) *header = head;
  return r.ok();
}

std::string FetchAnswerEntry(std::int16_t version, std::int32_t partition, std::int64_t high_watermark,
                             std::int64_t log_start_offset, std::string_view records) {
  std::string out;
  out.reserve(48 + records.size());
  AppendI32(out, partition);
  AppendI16(out, 0);  // ErrorCode
  AppendI64(out, high_watermark);
  if (version >= 4) AppendI64(out, high_watermark);  // LastStableOffset
  if (version >= 5) AppendI64(out, log_start_offset);
  if (version >= 4) AppendI32(out, 0);    // AbortedTransactions: none
  if (version >= 11) AppendI32(out, -1);  // PreferredReadReplica
  AppendI32(out, static_cast<std::int32_t>(records.size()));
  out.append(records);
  return out;
}

std::string ComposeFetchResponse(std::string_view answer, std::size_t topics_begin, const FetchRequest& fetch,
                                 const std::vector<std::string_view>& entries) {
  std::string out(4, '\0');  // the size prefix, set at the end
  out.append(answer.substr(0, topics_begin));
  const std::size_t topic_count_at = out.size();
  out.append(4, '\0');
  std::int32_t topic_count = 0;
  for (const FetchRequest::Topic& topic : fetch.topics) {
    std::int32_t present = 0;
    for (std::size_t i = topic.first; i < topic.first + topic.count; ++i) present += entries[i].empty() ? 0 : 1;
    if (present == 0) continue;
    ++topic_count;
    const std::string& name = fetch.partitions[topic.first].first;
    AppendI16(out, static_cast<std::int16_t>(name.size()));
    out += name;
    AppendI32(out, present);
    for (std::size_t i = topic.first; i < topic.first + topic.count; ++i) out.append(entries[i]);
  }
  PutI32(out, topic_count_at, topic_count);
  PutI32(out, 0, static_cast<std::int32_t>(out.size() - 4));
  return out;
}

bool ParseProduceRequest(std::string_view frame, const RequestHeader& header, bool& transactional,
                         std::vector<ProducedRecords>& out) {
  const std::int16_t v = header.api_version;
  out.clear();
  if (header.api_key != kProduce || v < 3 || v > kProduceMaxVersion) return false;  // v3+: record batches v2
  Reader r(frame, header.body_offset);
  std::int16_t id_length = r.I16();  // TransactionalId (null: not transactional)
  transactional = id_length >= 0;
  if (id_length > 0) r.Skip(static_cast<std::size_t>(id_length));
  r.I16();  // Acks
  r.I32();  // TimeoutMs
  std::int32_t topics = r.Count(6);
  for (std::int32_t t = 0; t < topics && r.ok(); ++t) {
    std::string topic(r.String());
    std::int32_t parts = r.Count(8);
    for (std::int32_t p = 0; p < parts && r.ok(); ++p) {
      std::int32_t partition = r.I32();
      const std::size_t records_at = r.pos() + 4;
      std::int32_t size = r.SkipBytes();
      if (!r.ok()) break;
      out.push_back({{topic, partition}, size > 0 ? frame.substr(records_at, static_cast<std::size_t>(size))
                                                  : std::string_view()});
    }
  }
  return r.ok();
}

std::int32_t RecordBatchCount(std::string_view records) {
  constexpr std::size_t kMagicAt = 16, kCountAt = 57, kHeaderSize = 61;
  if (records.size() < kHeaderSize || records[kMagicAt] != 2) return 0;
  Reader r(records, kCountAt);
  std::int32_t count = r.I32();
  return count > 0 ? count : 0;
}

std::int32_t RecordBatchLeaderEpoch(std::string_view records) {
  Reader r(records, 12);
  return r.I32();
}

void SetRecordBatchOffsetAndEpoch(std::string& records, std::int64_t base_offset, std::int32_t leader_epoch) {
  PutBigEndian(records, 0, static_cast<std::uint64_t>(base_offset), 8);
  PutI32(records, 12, leader_epoch);
}

bool ParseProduceResponse(std::string_view frame, std::int16_t version, std::vector<ProduceAnswer>& out) {
  const std::int16_t v = version;
  if (v < 0 || v > kProduceMaxVersion) return false;
  Reader r(frame, 4);
  out.clear();
  std::int32_t topics = r.Count(6);
  for (std::int32_t t = 0; t < topics && r.ok(); ++t) {
    std::string topic(r.String());
    std::int32_t parts = r.Count(14);
    for (std::int32_t p = 0; p < parts && r.ok(); ++p) {
      ProduceAnswer answer;
      answer.partition = {topic, r.I32()};
      answer.error = r.I16();
      answer.base_offset = r.I64();
      if (v >= 2) r.I64();  // LogAppendTimeMs
      if (v >= 5) r.I64();  // LogStartOffset
      if (v >= 8) {
        std::int32_t record_errors = r.Count(6);
        for (std::int32_t e = 0; e < record_errors && r.ok(); ++e) {
          r.I32();     // BatchIndex
          r.String();  // BatchIndexErrorMessage
        }
        r.String();  // ErrorMessage
      }
      if (r.ok()) out.push_back(std::move(answer));
    }
  }
  if (v >= 1) r.I32();  // ThrottleTimeMs
  return r.ok();
}

bool RewriteBrokerPorts(std::string& frame, std::int16_t api_key, std::int16_t version,
                        const std::map<int, int>& ports, int& rewritten) {
  rewritten = 0;
  std::vector<std::size_t> port_offsets;
  Reader r(frame, 4);
  if (api_key == kMetadata) {
    if (version < 0 || version > kMetadataMaxVersion) return false;
    if (version >= 3) r.I32();  // ThrottleTimeMs
    std::int32_t brokers = r.Count(10);
    for (std::int32_t b = 0; b < brokers && r.ok(); ++b) {
      r.I32();     // NodeId
      r.String();  // Host
      port_offsets.push_back(r.pos());
      r.I32();                       // Port
      if (version >= 1) r.String();  // Rack
    }
  } else if (api_key == kFindCoordinator) {
    if (version < 0 || version > kFindCoordinatorMaxVersion) return false;
    if (version >= 1) r.I32();     // ThrottleTimeMs
    r.I16();                       // ErrorCode
    if (version >= 1) r.String();  // ErrorMessage
    r.I32();                       // NodeId
    r.String();                    // Host
    port_offsets.push_back(r.pos());
    r.I32();  // Port
  } else {
    return false;
  }
  if (!r.ok()) return false;
  for (std::size_t offset : port_offsets) {
    Reader port_reader(frame, offset);
    auto it = ports.find(port_reader.I32());
    if (it == ports.end()) continue;
    PutI32(frame, offset, it->second);
    ++rewritten;
  }
  return true;
}

}  // namespace wire

void LongPollStats::CountFetch(std::string_view client_id, std::int32_t max_wait_ms, std::int32_t min_bytes) {
  ++fetches;
  client_id = client_id.substr(0, kMaxClientIdBytes);
  auto count = fetches_by_client.find(client_id);
  if (count == fetches_by_client.end()) {
    if (fetches_by_client.size() >= kMaxClientsCounted) {
      ++fetches_other_clients;
      return;
    }
    count = fetches_by_client.emplace(std::string(client_id), 0).first;
  }
  ++count->second;
  fetch_wait_by_client.insert_or_assign(std::string(client_id), max_wait_ms);
  fetch_min_bytes_by_client.insert_or_assign(std::string(client_id), min_bytes);
}

// ---- the front ----

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxFrame = 1u << 30;            // larger: not Kafka, drop the connection
constexpr std::size_t kBackpressureBytes = 16u << 20;  // stop reading a side while the other owes this much
constexpr std::size_t kReadChunk = 256u << 10;
constexpr std::size_t kTailBytes = 4u << 20;  // the front's copy of a partition's log: its last 4 MiB

// epoll tags: the kind in the top byte, an index or connection id below.
enum Kind : std::uint64_t { kWake = 1, kListener = 2, kClient = 3, kUpstream = 4 };
std::uint64_t Tag(Kind kind, std::uint64_t value) {
  return (static_cast<std::uint64_t>(kind) << 56) | value;
}

std::uint32_t ReadU32(std::string_view bytes, std::size_t offset) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[offset + i]);
  return v;
}

void SetNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

std::string Frame(std::string_view payload) {
  std::string out(4, '\0');
  auto n = static_cast<std::uint32_t>(payload.size());
  out[0] = static_cast<char>(n >> 24);
  out[1] = static_cast<char>(n >> 16);
  out[2] = static_cast<char>(n >> 8);
  out[3] = static_cast<char>(n);
  out.append(payload);
  return out;
}

}  // namespace

struct LongPollFront::Impl {
  struct Upstream {
    std::string host;
    int port = 0;
    int listen_fd = -1;
    int front_port = 0;
  };

  // A request forwarded upstream whose response is not back yet.
  struct Pending {
    std::int16_t api_key = -1;
    std::int16_t version = -1;
    bool hold = false;  // a Fetch whose idle answer may be held
    Clock::time_point deadline{};
    std::uint64_t produced_before = 0;  // sum of the partitions' produce counters when it went upstream
    std::string request;                // a holdable Fetch as the client sent it (MaxWait 0), to send again
    wire::FetchRequest fetch;           // its partitions and layout
    std::vector<std::uint64_t> produced_at;  // by partition: its produce counter when it went upstream
    // By partition: its answer from the front's copy of the log (then the mock was not asked for it).
    std::vector<std::string> answered;
    bool narrowed = false;         // some partitions were answered here
    bool answered_records = false;  // ... with records
    std::size_t answered_bytes = 0;  // ... that many bytes of them
    bool answered_to_end = true;     // ... each partition's up to its log end (nothing more to read there)
    // A Produce: each partition's records (appended to the front's copy when the mock acknowledges them).
    std::vector<std::pair<wire::TopicPartition, std::string>> records;
    bool transactional = false;
    std::uint64_t refetch_of = 0;  // a Fetch the front sent again for this held Response (its id)
    // ... at the client's MaxWait (Ask::kFinal, Ask::kDeliver): its answer goes to the client, idle,
    // short or not
    bool answer_anyway = false;
  };
  // A response from upstream not yet handed to the client (order is kept).
  struct Response {
    std::uint64_t id = 0;
    std::string bytes;  // with its size prefix
    bool held = false;
    // For a held (idle) Fetch answer: what to ask the mock again when a record arrives.
    Clock::time_point deadline{};
    std::string request;
    wire::FetchRequest fetch;
    bool narrowed = false;  // the idle answer did not cover every partition the client asked for
    std::int16_t version = -1;
    std::int32_t correlation_id = 0;  // the client's
    bool refetching = false;          // the request is upstream again; its answer replaces this one
    // A short answer (records under the Fetch's MinBytes): the bytes of records it holds, and the bytes
    // produced to its partitions since it was asked (Wake); when the two make MinBytes, it is asked again.
    std::size_t short_bytes = 0;
    std::size_t arrived = 0;
  };
  struct Conn {
    std::uint64_t id = 0;
    int client_fd = -1;
    int upstream_fd = -1;
    bool connecting = true;
    std::string client_in, upstream_in;    // bytes read, not yet a whole frame
    std::string client_out, upstream_out;  // bytes to write
    std::size_t client_out_done = 0, upstream_out_done = 0;
    std::uint32_t client_events = 0, upstream_events = 0;
    std::unordered_map<std::int32_t, Pending> pending;
    std::deque<Response> responses;
    std::size_t held = 0;
    std::uint64_t next_response_id = 1;
    // Correlation ids of the front's own requests on this connection: negative, so they never meet
    // the client's (librdkafka counts up from 1).
    std::int32_t next_front_correlation = -1;
  };

  explicit Impl(std::string upstream) : upstream_bootstrap(std::move(upstream)) {}

  std::string upstream_bootstrap;
  std::vector<Upstream> upstreams;
  std::map<int, int> port_map;  // mock port -> front port
  std::string bootstrap;
  int epoll_fd = -1;
  int wake_fd = -1;
  std::thread thread;
  std::atomic<bool> stop{false};
  bool started = false;

  std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns;
  std::uint64_t next_id = 1;
  // What the front knows of each partition: the acknowledged produces it saw, and a copy of the log's
  // tail, from which it answers Fetches near the end itself. librdkafka 2.0.2's mock answers a Fetch
  // with one batch per partition, found by walking the partition's whole log from its start
  // (rdkafka_mock.c: "FIXME: Maintain an index"): a consumer at the tail of a full log (5 MiB,
  // thousands of batches) cost the mock ~80 % of the dev stack's broker CPU.
  struct Batch {
    std::int64_t first = 0;  // its first offset
    std::string bytes;       // as the mock keeps it: base offset and leader epoch set
  };
  struct PartitionState {
    std::uint64_t produced = 0;  // acknowledged produces seen
    // `known`: `batches` hold exactly the offsets [begin, end), and `end` is the log end (the mock
    // answered it, and every produce acknowledged since was appended here).
    bool known = false;
    std::int64_t begin = 0, end = 0;
    std::deque<Batch> batches;
    std::size_t bytes = 0;
    std::int32_t leader_epoch = -1;  // from a batch the mock served; until then nothing is appended
    std::int64_t log_start = 0;      // the mock's, as last answered
    bool CaughtUp(std::int64_t offset) const { return known && offset == end; }
    bool Holds(std::int64_t offset) const { return known && offset >= begin && offset < end; }
    void Reset(std::int64_t log_end) {
      known = true;
      begin = end = log_end;
      batches.clear();
      bytes = 0;
    }
  };
  std::map<wire::TopicPartition, PartitionState> partition_states;
  bool warned_unparsed_metadata = false;

  mutable std::mutex stats_mutex;
  LongPollStats stats;

  void Open();
  void Loop();
  void CloseAll();

  void Accept(std::size_t index);
  void Close(Conn& c, const char* why);
  void Watch(int fd, std::uint32_t& current, std::uint32_t wanted, std::uint64_t tag);
  void UpdateInterest(Conn& c);
  bool Flush(int fd, std::string& out, std::size_t& done);
  bool ReadInto(int fd, std::string& in);

  void OnClient(Conn& c, std::uint32_t events);
  void OnUpstream(Conn& c, std::uint32_t events);
  // `framed`: one frame with its size prefix, still in the connection's read buffer.
  void HandleRequest(Conn& c, std::string_view framed);
  void HandleResponse(Conn& c, std::string_view framed);
  void Release(Conn& c);
  void SendFetch(Conn& c, const std::string& request, bool narrow, Pending& p);
  void Learn(const Pending& p, const std::vector<wire::FetchAnswer>& answers);
  void Append(Pending& p, const wire::ProduceAnswer& answer, PartitionState& state);
  std::string Merge(const Pending& p, std::string_view framed, const std::vector<wire::FetchAnswer>& answers,
                    const wire::FetchAnswerHeader& head, bool& idle);
  // How a held answer is asked again: woken by a produce (answered when it has records enough), at the
  // client's MaxWait (every partition asked; answered whatever it is), or at MaxWait for a short answer
  // (answered whatever it is, from the copy where it can).
  enum class Ask { kWoken, kFinal, kDeliver };
  void Refetch(Conn& c, Response& r, Ask ask);
  void HandleRefetch(Conn& c, Pending& p, std::string_view framed);
  // Produces acknowledged: each partition with the bytes of records appended to it.
  void Wake(const std::vector<std::pair<wire::TopicPartition, std::size_t>>& produced);
  // The bytes of records in a Fetch answer (the mock's and the copy's), and whether it is short: under
  // the Fetch's MinBytes, without errors, with nothing more to read now (see long_poll.hpp).
  bool Short(const Pending& p, const std::vector<wire::FetchAnswer>& answers, const wire::FetchAnswerHeader& head,
             bool idle, std::size_t& bytes) const;
  void Expire(Clock::time_point now);
  int Timeout(Clock::time_point now) const;
  std::uint64_t ProducedSum(const std::vector<wire::TopicPartition>& partitions) const;
};

void LongPollFront::Impl::Open() {
  std::size_t start = 0;
  while (start <= upstream_bootstrap.size()) {
    std::size_t comma = upstream_bootstrap.find(',', start);
    std::string entry =
        upstream_bootstrap.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? upstream_bootstrap.size() + 1 : comma + 1;
    if (entry.empty()) continue;
    auto colon = entry.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("long-poll front: bad upstream '" + entry + "'");
    Upstream u;
    u.host = entry.substr(0, colon);
    if (!ParseNumber(std::string_view(entry).substr(colon + 1), u.port) || u.port < 1 || u.port > 65535) {
      throw std::runtime_error("long-poll front: bad upstream port in '" + entry + "'");
    }
    upstreams.push_back(u);
  }
  if (upstreams.empty()) throw std::runtime_error("long-poll front: no upstream brokers");
  epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd < 0 || wake_fd < 0) throw std::runtime_error("long-poll front: epoll/eventfd failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Tag(kWake, 0);
  ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev);
  for (std::size_t i = 0; i < upstreams.size(); ++i) {
    Upstream& u = upstreams[i];
    u.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    if (u.listen_fd < 0 || ::bind(u.listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(u.listen_fd, SOMAXCONN) != 0 ||
        ::getsockname(u.listen_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error(std::string("long-poll front: listen: ") + std::strerror(errno));
    }
    // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
    u.front_port = ntohs(addr.sin_port);
    port_map[u.port] = u.front_port;
    ev.events = EPOLLIN;
    ev.data.u64 = Tag(kListener, i);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, u.listen_fd, &ev);
    if (!bootstrap.empty()) bootstrap += ',';
    bootstrap += "127.0.0.1:" + std::to_string(u.front_port);
  }
}

void LongPollFront::Impl::Watch(int fd, std::uint32_t& current, std::uint32_t wanted, std::uint64_t tag) {
  if (fd < 0 || current == wanted) return;
  epoll_event ev{};
  ev.events = wanted;
  ev.data.u64 = tag;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_MOD, fd, &ev);
  current = wanted;
}

void LongPollFront::Impl::UpdateInterest(Conn& c) {
  bool owe_client = c.client_out.size() > c.client_out_done;
  bool owe_upstream = c.upstream_out.size() > c.upstream_out_done;
  // Backpressure: a side is read only while the other side is not owed too much.
  std::uint32_t client = 0;
  if (c.upstream_out.size() - c.upstream_out_done < kBackpressureBytes) client |= EPOLLIN;
  if (owe_client) client |= EPOLLOUT;
  std::uint32_t upstream = 0;
  if (c.connecting) {
    upstream = EPOLLOUT;
  } else {
    if (c.client_out.size() - c.client_out_done < kBackpressureBytes) upstream |= EPOLLIN;
    if (owe_upstream) upstream |= EPOLLOUT;
  }
  Watch(c.client_fd, c.client_events, client, Tag(kClient, c.id));
  Watch(c.upstream_fd, c.upstream_events, upstream, Tag(kUpstream, c.id));
}

void LongPollFront::Impl::Accept(std::size_t index) {
  const Upstream& u = upstreams[index];
  while (true) {
    int fd = ::accept4(u.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: the next readiness retries
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(u.port));
    if (up < 0 || ::inet_pton(AF_INET, u.host.c_str(), &addr.sin_addr) != 1 ||
        // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
        (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno != EINPROGRESS)) {
      // The mock refuses (broker down): so does the front.
      if (up >= 0) ::close(up);
      ::close(fd);
      continue;
    }
    SetNoDelay(fd);
    SetNoDelay(up);
    auto conn = std::make_unique<Conn>();
    Conn& c = *conn;
    c.id = next_id++;
    c.client_fd = fd;
    c.upstream_fd = up;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = Tag(kClient, c.id);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
    c.client_events = EPOLLIN;
    ev.events = EPOLLOUT;
    ev.data.u64 = Tag(kUpstream, c.id);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, up, &ev);
    c.upstream_events = EPOLLOUT;
    conns.emplace(c.id, std::move(conn));
    std::lock_guard lock(stats_mutex);
    ++stats.connections;
  }
}

void LongPollFront::Impl::Close(Conn& c, const char* why) {
  log::Debug("long_poll_connection_closed", {{"connection", static_cast<std::int64_t>(c.id)}, {"why", why}});
  if (c.client_fd >= 0) ::close(c.client_fd);  // close(2) also removes it from the epoll set
  if (c.upstream_fd >= 0) ::close(c.upstream_fd);
  conns.erase(c.id);
}

bool LongPollFront::Impl::Flush(int fd, std::string& out, std::size_t& done) {
  while (done < out.size()) {
    ssize_t n = ::send(fd, out.data() + done, out.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    return false;
  }
  if (done == out.size()) {
    out.clear();
    done = 0;
  } else if (done > (1u << 20) && done > out.size() / 2) {
    out.erase(0, done);
    done = 0;
  }
  return true;
}

bool LongPollFront::Impl::ReadInto(int fd, std::string& in) {
  char buf[65536];
  std::size_t total = 0;
  while (total < kReadChunk) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
      // A short read drained the socket for now; level-triggered epoll reports anything later (an
      // EOF included), which saves the recv that would only say EAGAIN.
      if (static_cast<std::size_t>(n) < sizeof(buf)) return true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;  // closed or failed
  }
  return true;  // more may be waiting: level-triggered epoll reports it again
}

// Hands each whole frame of `in` (with its size prefix, as a view into `in`) to `handle`, then drops
// them from `in`; false when a frame size is not Kafka's.
template <typename Handle>
bool TakeFrames(std::string& in, Handle&& handle) {
  std::size_t pos = 0;
  while (in.size() - pos >= 4) {
    std::uint32_t size = 0;
    for (int i = 0; i < 4; ++i)
      size = (size << 8) | static_cast<unsigned char>(in[pos + static_cast<std::size_t>(i)]);
    if (size > kMaxFrame || size < 4) return false;
    if (in.size() - pos - 4 < size) break;
    handle(std::string_view(in).substr(pos, 4 + size));
    pos += 4 + size;
  }
  if (pos > 0) in.erase(0, pos);
  return true;
}

void LongPollFront::Impl::OnClient(Conn& c, std::uint32_t events) {
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
    bool open = ReadInto(c.client_fd, c.client_in);
    if (!TakeFrames(c.client_in, [&](std::string_view framed) { HandleRequest(c, framed); })) {
      Close(c, "bad frame from client");
      return;
    }
    if (!open) {
      Close(c, "client closed");
      return;
    }
  }
  if (!c.connecting && !Flush(c.upstream_fd, c.upstream_out, c.upstream_out_done)) {
    Close(c, "upstream write failed");
    return;
  }
  if ((events & EPOLLOUT) != 0 && !Flush(c.client_fd, c.client_out, c.client_out_done)) {
    Close(c, "client write failed");
    return;
  }
  UpdateInterest(c);
}

void LongPollFront::Impl::OnUpstream(Conn& c, std::uint32_t events) {
  if (c.connecting) {
    int error = 0;
    socklen_t len = sizeof(error);
    ::getsockopt(c.upstream_fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
      Close(c, "upstream connect failed");
      return;
    }
    c.connecting = false;
  }
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) {
    bool open = ReadInto(c.upstream_fd, c.upstream_in);
    if (!TakeFrames(c.upstream_in, [&](std::string_view framed) { HandleResponse(c, framed); })) {
      Close(c, "bad frame from upstream");
      return;
    }
    if (!open) {
      // The mock closed it (broker set down, or its own error): the client sees the same.
      Close(c, "upstream closed");
      return;
    }
  }
  if (!Flush(c.upstream_fd, c.upstream_out, c.upstream_out_done)) {
    Close(c, "upstream write failed");
    return;
  }
  if (!Flush(c.client_fd, c.client_out, c.client_out_done)) {
    Close(c, "client write failed");
    return;
  }
  UpdateInterest(c);
}

std::uint64_t LongPollFront::Impl::ProducedSum(const std::vector<wire::TopicPartition>& partitions) const {
  std::uint64_t sum = 0;
  for (const auto& tp : partitions) {
    auto it = partition_states.find(tp);
    if (it != partition_states.end()) sum += it->second.produced;
  }
  return sum;
}

void LongPollFront::Impl::HandleRequest(Conn& c, std::string_view framed) {
  std::string_view frame = framed.substr(4);
  wire::RequestHeader header;
  if (!wire::ParseRequestHeader(frame, header)) {
    c.upstream_out.append(framed);
    return;
  }
  Pending p;
  p.api_key = header.api_key;
  p.version = header.api_version;
  if (header.api_key == wire::kFetch && wire::ParseFetchRequest(frame, header, p.fetch) && p.fetch.sessionless) {
    // The mock answers at once; the wait happens here, where a produce can end it.
    const std::int32_t max_wait_ms = p.fetch.max_wait_ms;
    p.hold = max_wait_ms > 0;
    p.deadline = Clock::now() + std::chrono::milliseconds(max_wait_ms);
    p.request = std::string(framed);
    for (std::size_t i = 0; i < 4; ++i) p.request[4 + p.fetch.max_wait_offset + i] = 0;
    SendFetch(c, p.request, p.hold, p);
    if (!p.hold) p.request.clear();
    std::lock_guard lock(stats_mutex);
    stats.CountFetch(header.client_id, max_wait_ms, p.fetch.min_bytes);
  } else {
    c.upstream_out.append(framed);  // forwarded as is
    std::vector<wire::ProducedRecords> records;
    if (header.api_key == wire::kProduce && wire::ParseProduceRequest(frame, header, p.transactional, records)) {
      p.records.reserve(records.size());
      for (const wire::ProducedRecords& r : records) p.records.emplace_back(r.partition, std::string(r.records));
    }
  }
  c.pending[header.correlation_id] = std::move(p);
}

// Appends the Fetch `request` (parsed in `p.fetch`) to what goes upstream. With `narrow`, the partitions
// the front's copy of the log can answer (caught up, or from an offset it holds) are answered here
// (`p.answered`) and left out of what the mock is asked. Notes in `p` what the mock's answer can teach.
void LongPollFront::Impl::SendFetch(Conn& c, const std::string& request, bool narrow, Pending& p) {
  const wire::FetchRequest& fetch = p.fetch;
  const std::size_t n = fetch.partitions.size();
  p.produced_at.assign(n, 0);
  p.answered.assign(n, std::string());
  p.answered_records = false;
  p.answered_bytes = 0;
  p.answered_to_end = true;
  std::vector<bool> keep(n, true);
  std::uint64_t here = 0;
  std::int64_t budget = fetch.max_bytes;  // Kafka's: the first batch is returned even when larger
  for (std::size_t i = 0; i < n; ++i) {
    auto it = partition_states.find(fetch.partitions[i]);
    if (it == partition_states.end()) continue;
    const PartitionState& state = it->second;
    p.produced_at[i] = state.produced;
    const std::int64_t offset = fetch.fetch_offsets[i];
    if (!narrow || !(state.CaughtUp(offset) || state.Holds(offset))) continue;
    std::string records;
    if (state.Holds(offset)) {
      // The batch holding `offset`, then the next ones within the partition's and the request's bytes.
      auto batch = std::upper_bound(state.batches.begin(), state.batches.end(), offset,
                                    [](std::int64_t o, const Batch& b) { return o < b.first; });
      --batch;
      const auto limit = static_cast<std::int64_t>(fetch.partition_max_bytes[i]);
      for (; batch != state.batches.end(); ++batch) {
        const auto size = static_cast<std::int64_t>(batch->bytes.size());
        const bool first = !p.answered_records && records.empty();
        if (!first && (static_cast<std::int64_t>(records.size()) + size > limit || size > budget)) break;
        records += batch->bytes;
        budget -= size;
        p.answered_records = true;
      }
      p.answered_bytes += records.size();
      p.answered_to_end = p.answered_to_end && batch == state.batches.end();
    }
    p.answered[i] = wire::FetchAnswerEntry(p.version, fetch.partitions[i].second, state.end, state.log_start, records);
    keep[i] = false;
    ++here;
  }
  p.produced_before = ProducedSum(fetch.partitions);
  p.narrowed = here > 0;
  if (here == 0) {
    c.upstream_out += request;
    return;
  }
  // Asked for the rest only (maybe none: the mock's empty answer keeps the connection's order).
  c.upstream_out += wire::NarrowFetchRequest(std::string_view(request).substr(4), fetch, keep);
  std::lock_guard lock(stats_mutex);
  stats.partitions_answered += here;
}

// Learns from the mock's answer each partition's log end, start and leader epoch, unless a produce to it
// was seen after the Fetch went up. A log end other than the front's copy's resets the copy there.
void LongPollFront::Impl::Learn(const Pending& p, const std::vector<wire::FetchAnswer>& answers) {
  if (p.produced_at.size() != p.fetch.partitions.size()) return;  // not a Fetch the front sent on
  for (const wire::FetchAnswer& a : answers) {
    if (a.error != 0 || a.high_watermark < 0) continue;
    auto asked = std::find(p.fetch.partitions.begin(), p.fetch.partitions.end(), a.partition);
    if (asked == p.fetch.partitions.end()) continue;
    PartitionState& state = partition_states[a.partition];
    if (state.produced != p.produced_at[static_cast<std::size_t>(asked - p.fetch.partitions.begin())]) continue;
    if (a.log_start_offset >= 0) state.log_start = a.log_start_offset;
    if (wire::RecordBatchCount(a.records) > 0) state.leader_epoch = wire::RecordBatchLeaderEpoch(a.records);
    if (!state.CaughtUp(a.high_watermark)) state.Reset(a.high_watermark);
  }
}

// The acknowledged records of a Produce, appended to the front's copy of each partition's log, as the
// mock appended them (one batch per partition, at the base offset it answered). When the copy cannot
// follow (a transactional producer, an offset past its end, an unknown leader epoch) it is dropped until
// the mock's next answer.
void LongPollFront::Impl::Append(Pending& p, const wire::ProduceAnswer& answer, PartitionState& state) {
  if (answer.base_offset < 0) return;  // nothing appended (a duplicate)
  auto records = std::find_if(p.records.begin(), p.records.end(),
                              [&](const auto& r) { return r.first == answer.partition; });
  const std::int32_t count = records == p.records.end() ? 0 : wire::RecordBatchCount(records->second);
  if (!state.known || p.transactional || count == 0 || state.leader_epoch < 0 || answer.base_offset != state.end) {
    state.known = false;
    return;
  }
  Batch batch{answer.base_offset, std::move(records->second)};
  wire::SetRecordBatchOffsetAndEpoch(batch.bytes, answer.base_offset, state.leader_epoch);
  state.bytes += batch.bytes.size();
  state.end = answer.base_offset + count;
  state.batches.push_back(std::move(batch));
  while (state.bytes > kTailBytes && state.batches.size() > 1) {
    state.bytes -= state.batches.front().bytes.size();
    state.batches.pop_front();
    state.begin = state.batches.front().first;
  }
}

// A Fetch answer from the mock (`framed`, parsed into `answers` and `head`; `idle` as parsed) with the
// partitions the front answered itself put back in, in the request's order; `idle` is updated. Empty when
// nothing needs putting back (or the answer is an error).
std::string LongPollFront::Impl::Merge(const Pending& p, std::string_view framed,
                                       const std::vector<wire::FetchAnswer>& answers,
                                       const wire::FetchAnswerHeader& head, bool& idle) {
  if (!p.narrowed || head.error != 0) return {};
  std::vector<std::string_view> entries(p.fetch.partitions.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!p.answered[i].empty()) {
      entries[i] = p.answered[i];
      continue;
    }
    for (const wire::FetchAnswer& a : answers) {
      if (a.partition == p.fetch.partitions[i])
        entries[i] = framed.substr(4 + a.entry_begin, a.entry_end - a.entry_begin);
    }
  }
  idle = idle && !p.answered_records;
  return wire::ComposeFetchResponse(framed.substr(4), head.topics_begin, p.fetch, entries);
}

void LongPollFront::Impl::HandleResponse(Conn& c, std::string_view framed) {
  std::string_view frame = framed.substr(4);
  Response response;
  std::string replaced;    // the answer to send instead of `framed` (with its size prefix)
  bool ask_again = false;  // an idle Fetch answer, but a record arrived while it was on its way
  if (frame.size() >= 4) {
    auto correlation_id = static_cast<std::int32_t>(ReadU32(frame, 0));
    auto it = c.pending.find(correlation_id);
    if (it != c.pending.end()) {
      Pending p = std::move(it->second);
      c.pending.erase(it);
      switch (p.api_key) {
        case wire::kFetch: {
          if (p.refetch_of != 0) {
            HandleRefetch(c, p, framed);
            return;
          }
          bool idle = false;
          std::vector<wire::FetchAnswer> answers;
          wire::FetchAnswerHeader head;
          const bool parsed = wire::ParseFetchResponse(frame, p.version, idle, answers, &head);
          std::size_t bytes = 0;
          bool short_answer = false;
          if (parsed) {
            Learn(p, answers);
            replaced = Merge(p, framed, answers, head, idle);  // idle: the copy's records too
            short_answer = Short(p, answers, head, idle, bytes);
          }
          if (p.hold && parsed && (idle || short_answer)) {
            ask_again = ProducedSum(p.fetch.partitions) != p.produced_before;
            response.held = true;
            response.short_bytes = short_answer ? bytes : 0;
            response.deadline = p.deadline;
            response.narrowed = p.narrowed;
            response.fetch = std::move(p.fetch);
            response.request = std::move(p.request);
            response.version = p.version;
            response.correlation_id = correlation_id;
            std::lock_guard lock(stats_mutex);
            ++stats.fetches_held;
            if (short_answer) ++stats.fetches_short;
          }
          break;
        }
        case wire::kProduce: {
          std::vector<wire::ProduceAnswer> answers;
          if (wire::ParseProduceResponse(frame, p.version, answers)) {
            std::vector<std::pair<wire::TopicPartition, std::size_t>> produced;
            for (const wire::ProduceAnswer& answer : answers) {
              if (answer.error != 0) continue;
              PartitionState& state = partition_states[answer.partition];
              ++state.produced;
              auto records = std::find_if(p.records.begin(), p.records.end(),
                                          [&](const auto& r) { return r.first == answer.partition; });
              const std::size_t bytes =
                  answer.base_offset < 0 || records == p.records.end() ? 0 : records->second.size();
              Append(p, answer, state);
              produced.emplace_back(answer.partition, bytes);
            }
            {
              std::lock_guard lock(stats_mutex);
              ++stats.produces;
            }
            if (!produced.empty()) Wake(produced);
          }
          break;
        }
        case wire::kMetadata:
        case wire::kFindCoordinator: {
          int ports = 0;
          std::string rewritten(frame);
          if (wire::RewriteBrokerPorts(rewritten, p.api_key, p.version, port_map, ports)) {
            replaced = Frame(rewritten);
          } else if (!warned_unparsed_metadata) {
            warned_unparsed_metadata = true;
            log::Warn("long_poll_unparsed_response",
                      {{"api_key", static_cast<int>(p.api_key)},
                       {"version", static_cast<int>(p.version)},
                       {"effect", "clients may connect to the mock directly and wait out its fetch delay"}});
          }
          break;
        }
        default:
          break;
      }
    }
  }
  if (!response.held && c.responses.empty()) {  // the common case: straight on to the client
    c.client_out.append(replaced.empty() ? framed : std::string_view(replaced));
    return;
  }
  response.bytes = replaced.empty() ? std::string(framed) : std::move(replaced);
  response.id = c.next_response_id++;
  if (response.held) ++c.held;
  c.responses.push_back(std::move(response));
  if (ask_again) Refetch(c, c.responses.back(), Ask::kWoken);
  Release(c);
}

bool LongPollFront::Impl::Short(const Pending& p, const std::vector<wire::FetchAnswer>& answers,
                                const wire::FetchAnswerHeader& head, bool idle, std::size_t& bytes) const {
  bytes = p.answered_bytes;
  bool mock_records = false;
  bool errors = head.error != 0;
  for (const wire::FetchAnswer& a : answers) {
    bytes += a.records.size();
    mock_records = mock_records || !a.records.empty();
    errors = errors || a.error != 0;
  }
  if (idle || errors || p.fetch.min_bytes <= 1) return false;
  // Records the mock gave: the consumer is behind the copy and there is more to read than one batch a
  // partition (Kafka would have MinBytes at once). Records the copy gave short of a log end: the same.
  if (mock_records || !p.answered_to_end) return false;
  return bytes < static_cast<std::size_t>(p.fetch.min_bytes);
}

// Sends a held Fetch's request upstream again (MaxWait 0, the front's own correlation id); its answer,
// if it has records, becomes the answer to the client's Fetch (HandleRefetch). Kafka answers a
// waiting Fetch with the records that ended the wait; so does the front, without making the client
// fetch once more. At the client's MaxWait the answer goes to the client whatever it is; with
// Ask::kFinal every partition is asked of the mock (see Expire).
void LongPollFront::Impl::Refetch(Conn& c, Response& r, Ask ask) {
  std::int32_t correlation_id = c.next_front_correlation;
  c.next_front_correlation = c.next_front_correlation == std::numeric_limits<std::int32_t>::min()
                                 ? -1
                                 : c.next_front_correlation - 1;
  Pending p;
  p.api_key = wire::kFetch;
  p.version = r.version;
  p.hold = true;
  p.deadline = r.deadline;
  p.refetch_of = r.id;
  p.answer_anyway = ask != Ask::kWoken;
  p.fetch = r.fetch;
  const std::size_t at = c.upstream_out.size();
  SendFetch(c, r.request, ask != Ask::kFinal, p);
  wire::PutI32(c.upstream_out, at + 8, correlation_id);  // after size, key, version
  r.refetching = true;
  r.arrived = 0;  // what Wake counts from now on, the answer on its way does not hold
  c.pending[correlation_id] = std::move(p);
  std::lock_guard lock(stats_mutex);
  if (ask == Ask::kWoken) ++stats.fetches_woken;
}

void LongPollFront::Impl::HandleRefetch(Conn& c, Pending& p, std::string_view framed) {
  auto it = std::find_if(c.responses.begin(), c.responses.end(),
                         [&](const Response& r) { return r.id == p.refetch_of; });
  if (it == c.responses.end()) return;
  Response& r = *it;
  r.refetching = false;
  bool idle = false;
  std::vector<wire::FetchAnswer> answers;
  wire::FetchAnswerHeader head;
  const bool parsed = wire::ParseFetchResponse(framed.substr(4), p.version, idle, answers, &head);
  std::string merged;
  std::size_t bytes = 0;
  bool short_answer = false;
  if (parsed) {
    Learn(p, answers);
    merged = Merge(p, framed, answers, head, idle);  // idle: the copy's records too
    short_answer = Short(p, answers, head, idle, bytes);
  }
  if (parsed && idle && !p.answer_anyway) {
    // Still nothing for this consumer (the record went to a partition it does not read now, or was
    // already fetched): keep waiting, unless yet another record arrived meanwhile.
    r.narrowed = r.narrowed || p.narrowed;
    r.short_bytes = 0;
    if (ProducedSum(p.fetch.partitions) != p.produced_before) Refetch(c, r, Ask::kWoken);
    return;
  }
  if (parsed && short_answer && !p.answer_anyway) {
    // Records, still under MinBytes: this answer is the one held now (what MaxWait releases), until
    // what arrives meanwhile makes up the rest.
    r.bytes = merged.empty() ? std::string(framed) : std::move(merged);
    wire::PutI32(r.bytes, 4, r.correlation_id);
    r.narrowed = r.narrowed || p.narrowed;
    r.short_bytes = bytes;
    if (r.short_bytes + r.arrived >= static_cast<std::size_t>(r.fetch.min_bytes)) Refetch(c, r, Ask::kWoken);
    return;
  }
  // Records (or an error, or the final answer): the answer to the client's Fetch, under its correlation id.
  r.bytes = merged.empty() ? std::string(framed) : std::move(merged);
  wire::PutI32(r.bytes, 4, r.correlation_id);
  r.held = false;
  --c.held;
  Release(c);
}

void LongPollFront::Impl::Release(Conn& c) {
  while (!c.responses.empty() && !c.responses.front().held) {
    c.client_out += c.responses.front().bytes;
    c.responses.pop_front();
  }
}

void LongPollFront::Impl::Wake(const std::vector<std::pair<wire::TopicPartition, std::size_t>>& produced) {
  std::map<wire::TopicPartition, std::size_t> produced_now;
  for (const auto& [tp, bytes] : produced) produced_now[tp] += bytes;
  for (auto& [id, conn] : conns) {
    Conn& c = *conn;
    if (c.held == 0) continue;
    bool any = false;
    for (Response& r : c.responses) {
      if (!r.held) continue;
      bool hit = false;
      for (const wire::TopicPartition& tp : r.fetch.partitions) {
        auto it = produced_now.find(tp);
        if (it == produced_now.end()) continue;
        hit = true;
        r.arrived += it->second;
      }
      if (!hit || r.refetching) continue;
      // Without a MinBytes, any record ends the wait; with one, records enough (Kafka's fetch.min.bytes).
      if (r.fetch.min_bytes > 1 && r.short_bytes + r.arrived < static_cast<std::size_t>(r.fetch.min_bytes))
        continue;
      Refetch(c, r, Ask::kWoken);
      any = true;
    }
    if (!any || c.connecting) continue;
    // A failed write is not handled here (the caller may be serving this connection): the socket's
    // error comes back as an event and closes it there.
    Flush(c.upstream_fd, c.upstream_out, c.upstream_out_done);
    UpdateInterest(c);
  }
}

void LongPollFront::Impl::Expire(Clock::time_point now) {
  std::vector<Conn*> touched;
  for (auto& [id, conn] : conns) {
    Conn& c = *conn;
    if (c.held == 0) continue;
    bool any = false;
    bool asked = false;
    for (Response& r : c.responses) {
      if (!r.held || r.refetching || r.deadline > now) continue;  // a refetch answers soon
      {
        std::lock_guard lock(stats_mutex);
        ++stats.fetches_expired;
      }
      if (r.fetch.min_bytes > 1 && r.arrived > 0) {
        // Records arrived, short of MinBytes: asked again (from the copy where it can) and answered
        // whatever it holds then.
        Refetch(c, r, Ask::kDeliver);
        asked = true;
        continue;
      }
      // A short answer with nothing since goes as it is (the client reads on from there at once).
      if (r.short_bytes == 0 && r.narrowed) {
        // The idle answer left out partitions the front took for caught up: ask the mock for all of
        // them before answering, so that a record whose produce the front never saw acknowledged
        // (acks=0, a producer gone before its answer) still reaches the consumer within its MaxWait.
        Refetch(c, r, Ask::kFinal);
        asked = true;
        continue;
      }
      r.held = false;
      --c.held;
      any = true;
    }
    if (any || asked) touched.push_back(&c);
  }
  for (Conn* c : touched) {
    Release(*c);
    // A failed write is not handled here (the caller may be serving this connection): the socket's
    // error comes back as an event and closes it there.
    Flush(c->client_fd, c->client_out, c->client_out_done);
    if (!c->connecting) Flush(c->upstream_fd, c->upstream_out, c->upstream_out_done);
    UpdateInterest(*c);
  }
}

int LongPollFront::Impl::Timeout(Clock::time_point now) const {
  std::optional<Clock::time_point> earliest;
  for (const auto& [id, conn] : conns) {
    if (conn->held == 0) continue;
    for (const Response& r : conn->responses) {
      if (r.held && !r.refetching && (!earliest || r.deadline < *earliest)) earliest = r.deadline;
    }
  }
  if (!earliest) return -1;  // nothing held: sleep until a socket or Stop() wakes us
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(*earliest - now).count();
  return static_cast<int>(std::clamp<std::int64_t>(ms, 0, 60000));
}

void LongPollFront::Impl::Loop() {
  std::vector<epoll_event> events(128);
  while (!stop.load()) {
    int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), Timeout(Clock::now()));
    if (n < 0 && errno != EINTR) {
      log::Error("long_poll_epoll_failed", {{"error", std::strerror(errno)}});
      break;
    }
    for (int i = 0; i < n; ++i) {
      std::uint64_t tag = events[static_cast<std::size_t>(i)].data.u64;
      std::uint32_t ev = events[static_cast<std::size_t>(i)].events;
      auto kind = static_cast<Kind>(tag >> 56);
      std::uint64_t value = tag & ((std::uint64_t{1} << 56) - 1);
      if (kind == kWake) {
        std::uint64_t drained = 0;
        [[maybe_unused]] ssize_t r = ::read(wake_fd, &drained, sizeof(drained));
        continue;
      }
      if (kind == kListener) {
        Accept(static_cast<std::size_t>(value));
        continue;
      }
      auto it = conns.find(value);
      if (it == conns.end()) continue;  // closed earlier in this batch
      if (kind == kClient) {
        OnClient(*it->second, ev);
      } else {
        OnUpstream(*it->second, ev);
      }
    }
    Expire(Clock::now());
  }
}

void LongPollFront::Impl::CloseAll() {
  for (auto& [id, conn] : conns) {
    if (conn->client_fd >= 0) ::close(conn->client_fd);
    if (conn->upstream_fd >= 0) ::close(conn->upstream_fd);
  }
  conns.clear();
  for (Upstream& u : upstreams) {
    if (u.listen_fd >= 0) ::close(u.listen_fd);
    u.listen_fd = -1;
  }
  if (wake_fd >= 0) ::close(wake_fd);
  if (epoll_fd >= 0) ::close(epoll_fd);
  wake_fd = epoll_fd = -1;
}

LongPollFront::LongPollFront(const std::string& upstream_bootstrap)
    : impl_(std::make_unique<Impl>(upstream_bootstrap)) {}

LongPollFront::~LongPollFront() {
  Stop();
}

void LongPollFront::Start() {
  try {
    impl_->Open();
  } catch (...) {
    impl_->CloseAll();
    throw;
  }
  impl_->started = true;
  impl_->thread = std::thread([this] {
    ::pthread_setname_np(::pthread_self(), "pv-long-poll");  // top -H and perf tell it from rdk:mock
    impl_->Loop();
  });
}

void LongPollFront::Stop() {
  if (!impl_->started) return;
  impl_->started = false;
  impl_->stop.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(impl_->wake_fd, &one, sizeof(one));
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->CloseAll();
}

const std::string& LongPollFront::bootstrap() const {
  return impl_->bootstrap;
}

LongPollStats LongPollFront::Stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace pv::dev_broker
