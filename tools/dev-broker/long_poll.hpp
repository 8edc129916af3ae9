// The dev broker's long-poll front: what makes a consumer of the dev broker see a record as soon as it
// is produced, as it would on Apache Kafka, without polling the broker any faster.
//
// Why. librdkafka 2.0.2's mock cluster answers a Fetch that finds no data only after the request's full
// MaxWait (fetch.wait.max.ms, 500 ms by default) and does not cut the wait short when a record arrives
// (rdkafka_mock_handlers.c: "This isn't strictly correct since we should cut the wait short..."). A
// record produced meanwhile waits for the next Fetch: 0..MaxWait on every consuming hop (the pipeline has
// two, so ~0.5-1 s per trigger on an idle dev stack). Lowering fetch.wait.max.ms trades that for CPU:
// every idle consumer then sends 1000/MaxWait Fetches a second (measured: 10 ms quadrupled the idle
// CPU of the dev stack). Apache Kafka answers a waiting Fetch as soon as data arrives.
//
// What. One loopback listener per mock broker, in front of it; clients connect here (the bootstrap list
// and every broker address in Metadata and FindCoordinator responses name these listeners). Requests
// and responses pass through unchanged, except:
//   - a Fetch goes to the mock with MaxWait 0, so the mock answers at once;
//   - an answer without records (and without errors) is held here until a Produce to one of the
//     partitions it asked for is acknowledged (seen as a Produce response passing through, from any
//     client): the front then sends the same Fetch to the mock again and answers the client with the
//     records; or until the client's own MaxWait has passed: then the empty answer goes to the client.
//     Responses on a connection keep their order (a held one holds the ones behind it, as the mock's
//     own delay does);
//   - Metadata and FindCoordinator responses name these listeners instead of the mock's;
//   - a Fetch from the tail of a log is answered from the front's copy of the last 4 MiB of each
//     partition (the batches of acknowledged Produces): the mock walks a partition's whole log for each
//     Fetch and returns one batch, which made it the dev stack's largest CPU cost (README.md);
//   - MinBytes (fetch.min.bytes) as Kafka honours it: an answer with fewer bytes of records, and
//     nothing more to read (every partition's records came from the copy, up to the log's end), is
//     held like an idle one, until the records produced to its partitions since make up MinBytes
//     (then it is asked again and answered) or the client's MaxWait has passed (then it is answered
//     with what there is). A consumer behind the copy (the mock answered it records) is answered at
//     once, as Kafka would, having more than MinBytes to give.
// Everything else is the mock's.
// One thread (epoll); the wire formats handled are the non-flexible versions librdkafka 2.0.2 and its
// mock speak (Fetch v0-11, Produce v0-8, Metadata v0-8, FindCoordinator v0-2); other versions pass
// through untouched (a Fetch then waits in the mock as before).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pv::dev_broker {

// Kafka wire helpers, on one frame without its 4-byte size prefix. Exposed for the unit tests.
namespace wire {

constexpr std::int16_t kProduce = 0;
constexpr std::int16_t kFetch = 1;
constexpr std::int16_t kMetadata = 3;
constexpr std::int16_t kFindCoordinator = 10;

struct RequestHeader {
  std::int16_t api_key = -1;
  std::int16_t api_version = -1;
  std::int32_t correlation_id = 0;
  std::string client_id;
  std::size_t body_offset = 0;  // where the request body starts (header v1: after client_id)
};
// Request header v0/v1 (api key, version, correlation id, client id). False when too short.
bool ParseRequestHeader(std::string_view frame, RequestHeader& out);

using TopicPartition = std::pair<std::string, std::int32_t>;

struct FetchRequest {
  std::int32_t max_wait_ms = 0;
  std::int32_t min_bytes = 1;  // MinBytes (fetch.min.bytes)
  std::size_t max_wait_offset = 0;  // byte offset of MaxWait in the frame (to rewrite it)
  // No incremental fetch session (KIP-227: v7+ with SessionEpoch other than -1). librdkafka 2.0.2
  // never opens one; the front holds and repeats only sessionless Fetches (repeating one of a session
  // would reuse its epoch).
  bool sessionless = true;
  std::vector<TopicPartition> partitions;
  std::int32_t max_bytes = std::numeric_limits<std::int32_t>::max();  // v3+
  std::vector<std::int64_t> fetch_offsets;         // by partition
  std::vector<std::int32_t> partition_max_bytes;   // by partition
  // Where things are in the frame, for NarrowFetchRequest.
  struct Topic {
    std::size_t name_begin = 0, name_end = 0;  // the topic name with its length
    std::size_t first = 0, count = 0;          // its partitions in `partitions`
  };
  std::vector<Topic> topics;
  std::vector<std::pair<std::size_t, std::size_t>> entries;  // by partition: [begin, end) of its entry
  std::size_t topics_begin = 0, topics_end = 0;               // the topic array, its count included
};
// Fetch request v0..v11. False for other versions or a malformed frame.
bool ParseFetchRequest(std::string_view frame, const RequestHeader& header, FetchRequest& out);

// The same request (with a size prefix) asking only for the partitions whose `keep` is true; a topic left
// without partitions is left out. Everything else (header, MaxWait, forgotten topics, rack) is kept.
std::string NarrowFetchRequest(std::string_view frame, const FetchRequest& fetch, const std::vector<bool>& keep);

struct FetchAnswer {
  TopicPartition partition;
  std::int16_t error = 0;
  std::int64_t high_watermark = -1;
  std::int64_t log_start_offset = -1;          // v5+
  std::string_view records;                   // into the frame
  std::size_t entry_begin = 0, entry_end = 0;  // the partition's whole entry in the frame
};
struct FetchAnswerHeader {
  std::int16_t error = 0;        // v7+
  std::size_t topics_begin = 0;  // where the topic array starts (its count)
};
// Fetch response v0..v11: sets `idle` when no partition returned records and nothing reported an error
// (the answer Kafka would have held), and lists each partition's answer in `answers`. False for other
// versions or a malformed frame.
bool ParseFetchResponse(std::string_view frame, std::int16_t version, bool& idle,
                        std::vector<FetchAnswer>& answers, FetchAnswerHeader* header = nullptr);

// One partition's entry of a Fetch response (no error; LastStableOffset = the high watermark, no aborted
// transactions, no preferred replica), as the mock writes it; `records` may be empty.
std::string FetchAnswerEntry(std::int16_t version, std::int32_t partition, std::int64_t high_watermark,
                             std::int64_t log_start_offset, std::string_view records);

// A Fetch response (with a size prefix): `answer`'s header (correlation id, throttle, error, session)
// followed by, for each topic of `fetch` in order, the entries of its partitions found in `entries` (by
// partition of `fetch`; an empty one is left out, and so is a topic without any).
std::string ComposeFetchResponse(std::string_view answer, std::size_t topics_begin, const FetchRequest& fetch,
                                 const std::vector<std::string_view>& entries);

// Produce request v3..v8 (record batches v2): each partition's records, and whether it is transactional.
struct ProducedRecords {
  TopicPartition partition;
  std::string_view records;  // into the frame
};
bool ParseProduceRequest(std::string_view frame, const RequestHeader& header, bool& transactional,
                         std::vector<ProducedRecords>& out);

// A record batch v2's record count (what the log's offsets advance by), or 0 when it is not one.
std::int32_t RecordBatchCount(std::string_view records);
// Its partition leader epoch (call only when RecordBatchCount > 0).
std::int32_t RecordBatchLeaderEpoch(std::string_view records);
// Sets its base offset and partition leader epoch, as a broker does on append (outside the CRC).
void SetRecordBatchOffsetAndEpoch(std::string& records, std::int64_t base_offset, std::int32_t leader_epoch);

// Produce response v0..v8: each partition's error and base offset (-1: a duplicate the log did not take
// again). False when malformed or of another version.
struct ProduceAnswer {
  TopicPartition partition;
  std::int16_t error = 0;
  std::int64_t base_offset = -1;
};
bool ParseProduceResponse(std::string_view frame, std::int16_t version, std::vector<ProduceAnswer>& out);

// Metadata response v0..v8 and FindCoordinator response v0..v2: replaces, in place, each broker port
// found in `ports` (mock port -> front port). Returns false when the frame cannot be parsed; the number
// of ports rewritten goes to `rewritten`.
bool RewriteBrokerPorts(std::string& frame, std::int16_t api_key, std::int16_t version,
                        const std::map<int, int>& ports, int& rewritten);

}  // namespace wire

struct LongPollStats {
  std::uint64_t connections = 0;
  std::uint64_t fetches = 0;          // Fetch requests forwarded
  std::uint64_t fetches_held = 0;     // idle answers held
  std::uint64_t fetches_woken = 0;    // held answers released early by a produce
  std::uint64_t fetches_expired = 0;  // held answers released at the client's MaxWait
  std::uint64_t fetches_short = 0;    // answers with records held for being under the Fetch's MinBytes
  std::uint64_t produces = 0;         // Produce responses seen
  // Fetched partitions the front answered from its copy of the log's tail instead of asking the mock.
  std::uint64_t partitions_answered = 0;
  // client.id -> MaxWait of its last Fetch (shows which fetch.wait.max.ms each client runs with)
  std::map<std::string, std::int32_t, std::less<>> fetch_wait_by_client;
  // client.id -> MinBytes of its last Fetch (fetch.min.bytes)
  std::map<std::string, std::int32_t, std::less<>> fetch_min_bytes_by_client;
  // client.id -> Fetch requests it sent (with `produces`, how many records a consumer gets per Fetch)
  std::map<std::string, std::uint64_t, std::less<>> fetches_by_client;
  // Fetches of clients past kMaxClientsCounted distinct ids, counted in neither map.
  std::uint64_t fetches_other_clients = 0;

  // Bounds on the per-client maps: a client chooses its client.id (up to 32,767 bytes on the wire),
  // and a long-running broker sees every client a test or a bench ever started.
  static constexpr std::size_t kMaxClientsCounted = 256;
  static constexpr std::size_t kMaxClientIdBytes = 255;  // longer ids are counted by their first bytes
  // Counts one Fetch of `client_id` asking for `max_wait_ms` and `min_bytes`.
  void CountFetch(std::string_view client_id, std::int32_t max_wait_ms, std::int32_t min_bytes = 1);
};

class LongPollFront {
 public:
  // `upstream_bootstrap`: the mock's "127.0.0.1:p1,127.0.0.1:p2,..." (one listener is opened per entry).
  explicit LongPollFront(const std::string& upstream_bootstrap);
  ~LongPollFront();
  LongPollFront(const LongPollFront&) = delete;
  LongPollFront& operator=(const LongPollFront&) = delete;

  // Binds the listeners and starts the thread. Throws std::runtime_error.
  void Start();
  // Stops the thread and closes every connection. Idempotent.
  void Stop();
  // "127.0.0.1:f1,127.0.0.1:f2,..." in the order of the upstream list.
  const std::string& bootstrap() const;
  LongPollStats Stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pv::dev_broker
