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
//   - Metadata and FindCoordinator responses name these listeners instead of the mock's.
// fetch.min.bytes above 1 is not honoured (any record ends the wait); everything else is the mock's.
// One thread (epoll); the wire formats handled are the non-flexible versions librdkafka 2.0.2 and its
// mock speak (Fetch v0-11, Produce v0-8, Metadata v0-8, FindCoordinator v0-2); other versions pass
// through untouched (a Fetch then waits in the mock as before).
#pragma once

#include <cstdint>
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
  std::size_t max_wait_offset = 0;  // byte offset of MaxWait in the frame (to rewrite it)
  // No incremental fetch session (KIP-227: v7+ with SessionEpoch other than -1). librdkafka 2.0.2
  // never opens one; the front holds and repeats only sessionless Fetches (repeating one of a session
  // would reuse its epoch).
  bool sessionless = true;
  std::vector<TopicPartition> partitions;
};
// Fetch request v0..v11. False for other versions or a malformed frame.
bool ParseFetchRequest(std::string_view frame, const RequestHeader& header, FetchRequest& out);

// Fetch response v0..v11: sets `idle` when no partition returned records and nothing reported an error
// (the answer Kafka would have held). False for other versions or a malformed frame.
bool FetchResponseIsIdle(std::string_view frame, std::int16_t version, bool& idle);

// Produce response v0..v8: the partitions whose append succeeded. False when malformed/unknown version.
bool ProducedPartitions(std::string_view frame, std::int16_t version, std::vector<TopicPartition>& out);

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
  std::uint64_t produces = 0;         // Produce responses seen
  // client.id -> MaxWait of its last Fetch (shows which fetch.wait.max.ms each client runs with)
  std::map<std::string, std::int32_t> fetch_wait_by_client;
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
