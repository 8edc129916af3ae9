// Kafka through librdkafka: settings from the deployment config, a producer whose every record
// reports its delivery to a handler, and a consumer for groups with manual offset storage (which
// offsets to store with many records in flight: PartitionBook, pv/kafka_book.hpp).
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace pv {
class Config;
}

namespace pv::kafka {

class KafkaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Settings {
  std::string brokers;                                     // kafka.brokers / PV_KAFKA_BROKERS
  std::map<std::string, std::string> properties;           // kafka.properties.* : every client, passed as is
  std::map<std::string, std::string> producer_properties;  // kafka.producer_properties.*: producers only
  std::map<std::string, std::string> consumer_properties;  // kafka.consumer_properties.*: consumers only
};

// Reads kafka.brokers and kafka.{properties,producer_properties,consumer_properties}. An empty broker
// list is refused later, by BuildConf, so that tools can load settings they may not use.
Settings LoadSettings(const Config& config);

// The one place a librdkafka configuration is assembled, for every client of every binary and tool:
// bootstrap.servers and client.id, then `defaults` where the operator's properties (kafka.properties,
// and `role_properties`: the producer's or the consumer's) do not name the same property, then those
// properties, then `fixed` (what the client's design depends on, not the operator's to change);
// librdkafka's log lines become ours. The caller owns the result (rd_kafka_new takes it). Throws
// KafkaError on a bad property or an empty broker list.
rd_kafka_conf_t* BuildConf(const Settings& settings,
                           const std::map<std::string, std::string>& role_properties,
                           const std::string& client_id, const std::map<std::string, std::string>& defaults,
                           const std::map<std::string, std::string>& fixed = {});

// Receives the outcome of one produced record, on the producer's poll thread. Must not block.
class DeliveryHandler {
 public:
  virtual ~DeliveryHandler() = default;
  virtual void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) = 0;
};

// Counts a set of records' delivery reports down and keeps the first error. Thread-safe (reports arrive
// on the producer's poll thread, abandons on the caller's).
class DeliveryCountdown {
 public:
  explicit DeliveryCountdown(int records) : pending_(records) {}
  // `count` records reported (`err` for each). True for exactly one call: the one that ends the set.
  bool Report(int count, rd_kafka_resp_err_t err) {
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      int expected = RD_KAFKA_RESP_ERR_NO_ERROR;
      first_error_.compare_exchange_strong(expected, err);
    }
    int before = pending_.fetch_sub(count, std::memory_order_acq_rel);
    return before > 0 && before - count <= 0;
  }
  // The first error reported (NO_ERROR when every record was acknowledged).
  rd_kafka_resp_err_t first_error() const { return static_cast<rd_kafka_resp_err_t>(first_error_.load()); }

 private:
  std::atomic<int> pending_;
  std::atomic<int> first_error_{RD_KAFKA_RESP_ERR_NO_ERROR};
};

// Counts down the deliveries of a group of records (one request, a batch) and wakes one waiter.
// Shared ownership: the waiter may leave (shutdown) before every report arrived.
//
// Lock-free: the reports (poll thread) and the waiter meet on one futex word (it replaced a mutex
// + condition variable on the old thread-per-request ingest, docs/performance.md). For callers that
// block (pvctl, the delay ladder's producers); ingest waits for nothing: its Publication
// (ingest/src/server.cpp) answers from the last report.
class DeliveryGroup : public DeliveryHandler, public std::enable_shared_from_this<DeliveryGroup> {
 public:
  explicit DeliveryGroup(int expected) : countdown_(expected) {
    if (expected <= 0) done_.store(kDone);
  }
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override;
  // Call when records of the group could not even be enqueued.
  void Abandon(int count, rd_kafka_resp_err_t err);
  // Waits until every record reported, or the deadline passed. Returns true when all reported.
  bool Wait(std::chrono::steady_clock::time_point deadline);
  // The first error reported (NO_ERROR when every record was acknowledged).
  rd_kafka_resp_err_t first_error() const { return countdown_.first_error(); }
  std::int32_t last_partition() const { return last_partition_.load(); }
  std::int64_t last_offset() const { return last_offset_.load(); }

 protected:
  // Called once, by the report (or Abandon) that ends the group: for a subclass that hands the group's
  // result on instead of being waited for (the worker's outcome records).
  virtual void OnComplete() {}

 private:
  void Complete(int count, rd_kafka_resp_err_t err);

  // The futex word: kPending until every record reported, then kDone; kWaited while pending once a
  // waiter may be asleep on it (only then does the last report make the wake-up call).
  static constexpr std::uint32_t kPending = 0;
  static constexpr std::uint32_t kDone = 1;
  static constexpr std::uint32_t kWaited = 2;
  DeliveryCountdown countdown_;
  std::atomic<std::uint32_t> done_{kPending};
  std::atomic<std::int32_t> last_partition_{-1};
  std::atomic<std::int64_t> last_offset_{-1};
};

struct Header {
  std::string_view name;
  std::string_view value;
};

struct ProducerOptions {
  std::string client_id = "pv";
  // After serving delivery reports, the poll thread sleeps this long before it serves more (with none
  // waiting it blocks until the next, as with 0): a busy producer's reports are served in fewer,
  // larger batches, each up to this much later, and the poll thread and librdkafka's broker thread
  // stop handing each small batch over with a wake-up. For producers whose callers do not wait on a
  // report (the dispatcher's, the workers'); 0 for ingest, whose 204 waits for one.
  std::chrono::microseconds report_gather{0};
  // Producer-specific librdkafka properties, applied after the shared settings' properties
  // only where those do not set the same name (the operator's word wins).
  std::map<std::string, std::string> defaults;
};

// The report_gather of the producers whose reports nobody waits on to answer a request: the
// dispatcher's and the workers'. 5 ms: at half the dev stack's sustainable rate their delivery
// threads went from ~0.4 to 0.05 blocks per trigger (docs/performance.md).
inline constexpr std::chrono::microseconds kOffPathReportGather{5000};

class Producer {
 public:
  // Idempotent (enable.idempotence=true implies acks=all) unless the properties say otherwise.
  // Throws KafkaError on a bad property.
  Producer(const Settings& settings, const ProducerOptions& options);
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues one record. On success the handler (if any) gets exactly one OnDelivery, on the poll
  // thread, when the broker acknowledged or librdkafka gave up (message.timeout.ms). On failure
  // (returned error, e.g. RD_KAFKA_RESP_ERR__QUEUE_FULL) the handler is not called.
  // The handler must stay alive until called; DeliveryGroup users keep a shared_ptr for that.
  rd_kafka_resp_err_t Produce(std::string_view topic, std::string_view key, std::string_view value,
                              std::span<const Header> headers = {}, DeliveryHandler* handler = nullptr,
                              std::int32_t partition = RD_KAFKA_PARTITION_UA);

  // Produce with a DeliveryGroup that the producer keeps alive until the report.
  rd_kafka_resp_err_t Produce(std::string_view topic, std::string_view key, std::string_view value,
                              std::span<const Header> headers, const std::shared_ptr<DeliveryGroup>& group,
                              std::int32_t partition = RD_KAFKA_PARTITION_UA);

  // Waits up to `timeout` for every queued record; returns the number still queued.
  int Flush(std::chrono::milliseconds timeout);
  // Records waiting in librdkafka's queue or in flight to a broker.
  int QueueLength() const;
  // Whether a metadata request is answered within `timeout`.
  // With a topic, the request asks for its partitions' leaders too, which the producer then keeps:
  // the first record to it does not wait for a metadata round trip.
  bool BrokersReachable(std::chrono::milliseconds timeout, const std::string& topic = {}) const;
  // Learns each topic's partition leaders now (a metadata request each, up to `timeout` each) and
  // keeps the topics known for the producer's life, so that the first records of a busy start do not
  // wait in the queue for them (seen on the dev broker: 40,000 records queued for most of a second).
  // A topic that did not answer is logged (topic_metadata_unavailable) and learnt on first use.
  void WarmUp(const std::vector<std::string>& topics, std::chrono::milliseconds timeout);
  // librdkafka's fatal error ("NAME: reason"), once one happened: the producer can never produce
  // again (e.g. an idempotence sequence gap) and its owner should exit so it is restarted.
  std::optional<std::string> FatalError() const;
  // Raises a fatal error as if the cluster had caused one (librdkafka's rd_kafka_test_fatal_error):
  // for the tests of what an owner does then. False when there already was one.
  bool InjectFatalError(rd_kafka_resp_err_t err, const char* reason);
  // The largest record (key + value + headers, with framing) this producer will send:
  // message.max.bytes. Produce refuses a larger one with RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE.
  size_t MaxMessageBytes() const;

 private:
  void PollLoop();
  static void DeliveryReport(rd_kafka_t* rk, const rd_kafka_message_t* msg, void* opaque);

  rd_kafka_t* rk_ = nullptr;
  std::vector<rd_kafka_topic_t*> warm_topics_;  // WarmUp's, destroyed with the producer
  std::atomic<bool> stop_{false};
  std::chrono::microseconds report_gather_{0};
  std::thread poll_thread_;
};

// Owns one message returned by a consumer poll.
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
using Message = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;

inline std::string_view Payload(const rd_kafka_message_t* m) {
  return {static_cast<const char*>(m->payload), m->payload ? m->len : 0};
}
inline std::string_view Key(const rd_kafka_message_t* m) {
  return {static_cast<const char*>(m->key), m->key ? m->key_len : 0};
}
// The last value of a header, if present.
std::optional<std::string> HeaderValue(const rd_kafka_message_t* m, const char* name);
std::map<std::string, std::string> Headers(const rd_kafka_message_t* m);

struct ConsumerOptions {
  std::string group_id;
  std::string client_id = "pv";
  std::map<std::string, std::string> defaults;  // like ProducerOptions::defaults
};

// Owns a partition list (rd_kafka_assignment's, or one made with rd_kafka_topic_partition_list_new).
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// How far one assigned partition is behind its high watermark.
struct PartitionLag {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t lag = 0;
};

// A consumer group member. Offsets are committed automatically in the background, but only the
// positions the application stored with StoreOffset (enable.auto.offset.store=false), so nothing
// is committed that was not finished. Partition assignment is cooperative-sticky.
class Consumer {
 public:
  using RebalanceListener =
      std::function<void(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions)>;
  // `offsets` are what the group now holds as committed (per element: err, and the next offset to
  // read), for the automatic commits and CommitAsync.
  using CommitListener =
      std::function<void(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets)>;

  Consumer(const Settings& settings, const ConsumerOptions& options);
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void Subscribe(const std::vector<std::string>& topics);
  // Called on the polling thread before partitions are assigned (kind = ASSIGN_PARTITIONS) or
  // revoked (REVOKE_PARTITIONS); on revoke, finish or abandon work of those partitions inside it.
  void SetRebalanceListener(RebalanceListener listener) { listener_ = std::move(listener); }
  // Called on the polling thread (from Poll) with the result of each commit.
  void SetCommitListener(CommitListener listener) { commit_listener_ = std::move(listener); }
  // A message, or nullptr on timeout. Messages with err set (e.g. partition EOF) are returned too.
  Message Poll(std::chrono::milliseconds timeout);
  // Stores `next_offset` (the offset of the next record to read) for commit.
  void StoreOffset(std::string_view topic, std::int32_t partition, std::int64_t next_offset);
  // Commits the stored offsets and waits for the answer, at most `timeout` (librdkafka's own sync
  // commit waits for the group coordinator for as long as it takes to answer). False when it gave up
  // waiting (logged `kafka_commit_timeout`). A commit the broker refused is logged
  // (`kafka_commit_failed`: during a rebalance, say) and returns true: Close commits again. The
  // answer also reaches the commit listener.
  bool CommitSync(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Commits the stored offsets now rather than at the next auto-commit tick; the result reaches
  // the commit listener.
  void CommitAsync();
  void Pause(std::string_view topic, std::int32_t partition);
  void Resume(std::string_view topic, std::int32_t partition);
  // Pauses (or resumes) every partition assigned now; partitions assigned later are not paused.
  // False when the assignment could not be read (nothing changed).
  bool SetAssignmentPaused(bool paused);
  // Whether librdkafka considers the current assignment lost (session timed out, fenced): its work
  // must not be committed.
  bool AssignmentLost() const;
  // Each assigned partition's lag: the cached high watermark (no broker round trip) minus the
  // position, or minus the low watermark before anything was consumed; partitions without a
  // watermark yet are left out.
  std::vector<PartitionLag> Lag() const;
  // Has librdkafka write an 8-byte 1 to `eventfd` whenever records reach the consumer queue, so a
  // loop that sleeps on its own descriptors wakes for them; -1 stops it. The descriptor must stay
  // open until then or until the consumer is destroyed.
  void WakeOnRecords(int eventfd);
  // Leaves the group (commits stored offsets; revoke callbacks run on this thread), waiting at most
  // `timeout` for the brokers (the rebalance listener's own time not counted): librdkafka's own close
  // waits for them however long they do not answer. Past it the consumer is destroyed without a close
  // (the group notices at its session timeout; offsets not committed are read again by the next
  // owner). True when it closed. Idempotent.
  bool Close(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // A librdkafka property as this consumer was built with it (nullopt when unknown): what the
  // operator's settings and our defaults added up to.
  std::optional<std::string> Property(const char* name) const;

 private:
  static void Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                        void* opaque);
  static void Committed(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                        void* opaque);
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* wake_queue_ = nullptr;  // WakeOnRecords' consumer queue
  bool closed_ = false;
  bool close_abandoned_ = false;  // Close gave up: destroy without closing again
  std::chrono::steady_clock::duration in_listener_{};  // spent in the rebalance listener, in all
  RebalanceListener listener_;
  CommitListener commit_listener_;
};

}  // namespace pv::kafka
