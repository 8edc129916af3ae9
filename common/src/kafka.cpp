#include "pv/kafka.hpp"

#include <fmt/format.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <ctime>

#include "pv/config.hpp"
#include "pv/log.hpp"

namespace pv::kafka {
namespace {

// librdkafka's log lines, as our JSON log lines (its default prints to stderr in its own format).
void LogCallback(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
  pv::log::Level our = level <= 3   ? pv::log::Level::kError
                       : level <= 5 ? pv::log::Level::kWarn
                                    : pv::log::Level::kDebug;
  if (!pv::log::Enabled(our)) return;
  pv::log::Write(our, "librdkafka",
                 {{"client", rd_kafka_name(rk)}, {"facility", facility}, {"message", message}});
}

}  // namespace

rd_kafka_conf_t* BuildConf(const Settings& settings,
                           const std::map<std::string, std::string>& role_properties,
                           const std::string& client_id, const std::map<std::string, std::string>& defaults,
                           const std::map<std::string, std::string>& fixed) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& name, const std::string& value) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw KafkaError(fmt::format("kafka property {}={}: {}", name, value, err));
    }
  };
  if (settings.brokers.empty()) {
    rd_kafka_conf_destroy(conf);
    throw KafkaError("kafka.brokers is empty (set it in the config file or PV_KAFKA_BROKERS)");
  }
  set("bootstrap.servers", settings.brokers);
  set("client.id", client_id);
  for (const auto& [name, value] : defaults) {
    if (settings.properties.count(name) == 0 && role_properties.count(name) == 0) set(name, value);
  }
  for (const auto& [name, value] : settings.properties) set(name, value);
  for (const auto& [name, value] : role_properties) set(name, value);
  for (const auto& [name, value] : fixed) set(name, value);
  rd_kafka_conf_set_log_cb(conf, LogCallback);
  return conf;
}

Settings LoadSettings(const Config& config) {
  Settings settings;
  settings.brokers = config.GetString("kafka.brokers", "");
  settings.properties = config.GetStringMap("kafka.properties");
  settings.producer_properties = config.GetStringMap("kafka.producer_properties");
  settings.consumer_properties = config.GetStringMap("kafka.consumer_properties");
  return settings;
}

// ---- DeliveryGroup ----

namespace {
long Futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}
}  // namespace

void DeliveryGroup::Complete(int count, rd_kafka_resp_err_t err) {
  if (countdown_.Report(count, err)) {
    OnComplete();
    // A wake only when a waiter said it may sleep: most groups are never waited for (the worker's
    // outcomes, the dispatcher's forwards), and a FUTEX_WAKE nobody needs was half of an HTTP-provider
    // worker's futex calls (docs/performance.md).
    if (done_.exchange(kDone, std::memory_order_acq_rel) == kWaited)
      Futex(&done_, FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr);
  }
}

void DeliveryGroup::OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) {
  last_partition_.store(partition, std::memory_order_relaxed);
  last_offset_.store(offset, std::memory_order_relaxed);
  Complete(1, err);
}

void DeliveryGroup::Abandon(int count, rd_kafka_resp_err_t err) {
  Complete(count, err);
}

bool DeliveryGroup::Wait(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    std::uint32_t state = done_.load(std::memory_order_acquire);
    if (state == kDone) return true;
    // Say that a waiter may sleep, so that the last report wakes it; lost to the report: look again.
    if (state == kPending &&
        !done_.compare_exchange_strong(state, kWaited, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return false;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
    // Sleeps only while the word still says a waiter; EAGAIN (done already), EINTR and timeouts loop.
    Futex(&done_, FUTEX_WAIT_PRIVATE, kWaited, &ts);
  }
}

// ---- Producer ----

namespace {
// The opaque of a record produced for a shared DeliveryGroup: keeps the group alive until the report.
struct SharedHandler final : DeliveryHandler {
  explicit SharedHandler(std::shared_ptr<DeliveryGroup> g) : group(std::move(g)) {}
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t partition, std::int64_t offset) override {
    group->OnDelivery(err, partition, offset);
    delete this;  // NOLINT(cppcoreguidelines-owning-memory): one report per record, then gone
  }
  std::shared_ptr<DeliveryGroup> group;
};
}  // namespace

Producer::Producer(const Settings& settings, const ProducerOptions& options) {
  std::map<std::string, std::string> defaults = {
      {"enable.idempotence", "true"},
      // Idempotence requires acks=all; stated so a reader need not know the implication.
      {"acks", "all"},
  };
  for (const auto& [k, v] : options.defaults) defaults[k] = v;
  rd_kafka_conf_t* conf = BuildConf(settings, settings.producer_properties, options.client_id, defaults);
  rd_kafka_conf_set_dr_msg_cb(conf, &Producer::DeliveryReport);
  char err[512];
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw KafkaError(fmt::format("kafka producer: {}", err));
  }
  report_gather_ = options.report_gather;
  poll_thread_ = std::thread([this] { PollLoop(); });
}

Producer::~Producer() {
  // Owners flush with their own deadline before destroying; this is the last resort.
  Flush(std::chrono::milliseconds(2000));
  stop_.store(true);
  // End the poll thread's wait now. rd_kafka_yield() only works from a callback; a yield on the main
  // queue (what rd_kafka_poll serves) works from any thread, and stays set if it is not waiting yet.
  if (rd_kafka_queue_t* main_queue = rd_kafka_queue_get_main(rk_)) {
    rd_kafka_queue_yield(main_queue);
    rd_kafka_queue_destroy(main_queue);
  }
  if (poll_thread_.joinable()) poll_thread_.join();
  for (rd_kafka_topic_t* rkt : warm_topics_) rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk_);
}

void Producer::PollLoop() {
  // Delivery reports are served here, off the request threads. rd_kafka_poll returns as soon as a report
  // is ready, so its timeout adds no latency; it only sets how often an idle producer wakes (the
  // destructor ends the wait with a queue yield). It was 100 ms: ten wake-ups a second per process for
  // nothing, a measurable share of the idle dev stack's CPU (docs/performance.md).
  // With report_gather, a poll that served reports is followed by a sleep and a poll that does not
  // wait; one that served none blocks again.
  ::pthread_setname_np(::pthread_self(), "pv-delivery");
  bool gathering = false;
  while (!stop_.load(std::memory_order_relaxed)) {
    int served = rd_kafka_poll(rk_, gathering ? 0 : 1000);
    gathering = served > 0 && report_gather_.count() > 0;
    if (gathering) std::this_thread::sleep_for(report_gather_);
  }
  rd_kafka_poll(rk_, 0);
}

void Producer::DeliveryReport(rd_kafka_t* /*rk*/, const rd_kafka_message_t* msg, void* /*opaque*/) {
  auto* handler = static_cast<DeliveryHandler*>(msg->_private);
  if (handler != nullptr) handler->OnDelivery(msg->err, msg->partition, msg->offset);
}

rd_kafka_resp_err_t Producer::Produce(std::string_view topic, std::string_view key, std::string_view value,
                                      std::span<const Header> headers, DeliveryHandler* handler,
                                      std::int32_t partition) {
  rd_kafka_headers_t* hdrs = nullptr;
  if (!headers.empty()) {
    hdrs = rd_kafka_headers_new(headers.size());
    for (const auto& h : headers) {
      rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()), h.value.data(),
                          static_cast<ssize_t>(h.value.size()));
    }
  }
  std::string topic_name(topic);
  // rd_kafka_produceva, not the RD_KAFKA_V_* macros: they are C casts that -Wold-style-cast rejects.
  // Key and value are copied (RD_KAFKA_MSG_F_COPY); the headers only when there are any.
  rd_kafka_vu_t vus[] = {{RD_KAFKA_VTYPE_TOPIC, {.cstr = topic_name.c_str()}},
                         {RD_KAFKA_VTYPE_PARTITION, {.i32 = partition}},
                         {RD_KAFKA_VTYPE_KEY, {.mem = {const_cast<char*>(key.data()), key.size()}}},
                         {RD_KAFKA_VTYPE_VALUE, {.mem = {const_cast<char*>(value.data()), value.size()}}},
                         {RD_KAFKA_VTYPE_MSGFLAGS, {.i = RD_KAFKA_MSG_F_COPY}},
                         {RD_KAFKA_VTYPE_OPAQUE, {.ptr = handler}},
                         {RD_KAFKA_VTYPE_HEADERS, {.headers = hdrs}}};
  size_t count = hdrs != nullptr ? 7 : 6;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (rd_kafka_error_t* error = rd_kafka_produceva(rk_, vus, count)) {
    err = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && hdrs != nullptr) rd_kafka_headers_destroy(hdrs);
  return err;
}

rd_kafka_resp_err_t Producer::Produce(std::string_view topic, std::string_view key, std::string_view value,
                                      std::span<const Header> headers,
                                      const std::shared_ptr<DeliveryGroup>& group, std::int32_t partition) {
  auto* handler = new SharedHandler(group);  // NOLINT(cppcoreguidelines-owning-memory): freed on report
  rd_kafka_resp_err_t err = Produce(topic, key, value, headers, handler, partition);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) delete handler;  // NOLINT(cppcoreguidelines-owning-memory)
  return err;
}

int Producer::Flush(std::chrono::milliseconds timeout) {
  rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
  return rd_kafka_outq_len(rk_);
}

int Producer::QueueLength() const {
  return rd_kafka_outq_len(rk_);
}

bool Producer::BrokersReachable(std::chrono::milliseconds timeout, const std::string& topic) const {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_topic_t* rkt = topic.empty() ? nullptr : rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, rkt, &md, static_cast<int>(timeout.count()));
  if (rkt != nullptr) rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  bool ok = md->broker_cnt > 0;
  rd_kafka_metadata_destroy(md);
  return ok;
}

void Producer::WarmUp(const std::vector<std::string>& topics, std::chrono::milliseconds timeout) {
  for (const auto& name : topics) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
    if (rkt == nullptr) continue;
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, rkt, &md, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      pv::log::Warn("topic_metadata_unavailable", {{"topic", name}, {"error", rd_kafka_err2str(err)}});
    } else {
      rd_kafka_metadata_destroy(md);
    }
    warm_topics_.push_back(rkt);
  }
}

std::optional<std::string> Producer::FatalError() const {
  char reason[512];
  rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk_, reason, sizeof(reason));
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return fmt::format("{}: {}", rd_kafka_err2name(err), reason);
}

bool Producer::InjectFatalError(rd_kafka_resp_err_t err, const char* reason) {
  return rd_kafka_test_fatal_error(rk_, err, reason) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

size_t Producer::MaxMessageBytes() const {
  char value[64];
  size_t size = sizeof(value);
  if (rd_kafka_conf_get(rd_kafka_conf(rk_), "message.max.bytes", value, &size) != RD_KAFKA_CONF_OK) {
    return 1000000;  // librdkafka's default
  }
  return static_cast<size_t>(std::strtoull(value, nullptr, 10));
}

// ---- headers ----

std::optional<std::string> HeaderValue(const rd_kafka_message_t* m, const char* name) {
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* value = nullptr;
  size_t size = 0;
  if (rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return std::string(static_cast<const char*>(value), value ? size : 0);
}

std::map<std::string, std::string> Headers(const rd_kafka_message_t* m) {
  std::map<std::string, std::string> out;
  rd_kafka_headers_t* hdrs = nullptr;
  if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i) {
    out[name] = std::string(static_cast<const char*>(value), value ? size : 0);
  }
  return out;
}

// ---- Consumer ----

Consumer::Consumer(const Settings& settings, const ConsumerOptions& options) {
  if (options.group_id.empty()) throw KafkaError("kafka consumer: group id is empty");
  std::map<std::string, std::string> defaults = {
      {"group.id", options.group_id},
      {"enable.auto.commit", "true"},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", "earliest"},
      {"partition.assignment.strategy", "cooperative-sticky"},
      // A request unanswered this long tears its connection down (librdkafka's 60 s default): a hung
      // broker is noticed sooner, and a close given up on (Close) does not hold the destroy for a
      // minute while the group's last commit and LeaveGroup wait for an answer that will not come.
      {"socket.timeout.ms", "10000"},
  };
  for (const auto& [k, v] : options.defaults) defaults[k] = v;
  rd_kafka_conf_t* conf = BuildConf(settings, settings.consumer_properties, options.client_id, defaults);
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_rebalance_cb(conf, &Consumer::Rebalance);
  rd_kafka_conf_set_offset_commit_cb(conf, &Consumer::Committed);
  char err[512];
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw KafkaError(fmt::format("kafka consumer: {}", err));
  }
  rd_kafka_poll_set_consumer(rk_);
}

Consumer::~Consumer() {
  Close();
  WakeOnRecords(-1);
  rd_kafka_destroy_flags(rk_, close_abandoned_ ? RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE : 0);
}

void Consumer::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                         void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
  // The listener sees the change first: revoked or lost, it finishes or abandons these partitions'
  // work, so no offset is stored for a partition this member no longer owns.
  if (self->listener_) {
    auto started = std::chrono::steady_clock::now();
    self->listener_(err, partitions);
    self->in_listener_ += std::chrono::steady_clock::now() - started;
  }
  if (std::string_view(rd_kafka_rebalance_protocol(rk)) != "COOPERATIVE") {
    rd_kafka_assign(rk, assign ? partitions : nullptr);
  } else if (rd_kafka_error_t* e = assign ? rd_kafka_incremental_assign(rk, partitions)
                                          : rd_kafka_incremental_unassign(rk, partitions)) {
    pv::log::Error(assign ? "kafka_assign_failed" : "kafka_unassign_failed",
                   {{"error", rd_kafka_error_string(e)}});
    rd_kafka_error_destroy(e);
  }
}

void Consumer::Committed(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t* offsets, void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  if (self->commit_listener_ && offsets != nullptr) self->commit_listener_(err, offsets);
}

void Consumer::Subscribe(const std::vector<std::string>& topics) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()));
  for (const auto& t : topics) rd_kafka_topic_partition_list_add(list, t.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw KafkaError(fmt::format("subscribe: {}", rd_kafka_err2str(err)));
}

Message Consumer::Poll(std::chrono::milliseconds timeout) {
  return Message(rd_kafka_consumer_poll(rk_, static_cast<int>(timeout.count())));
}

void Consumer::StoreOffset(std::string_view topic, std::int32_t partition, std::int64_t next_offset) {
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  std::string name(topic);
  rd_kafka_topic_partition_list_add(list, name.c_str(), partition)->offset = next_offset;
  rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Happens when the partition was revoked meanwhile: its records will be redelivered.
    pv::log::Warn("kafka_offset_store_failed", {{"topic", topic},
                                                {"partition", partition},
                                                {"offset", next_offset},
                                                {"error", rd_kafka_err2str(err)}});
  }
}

namespace {
void Commit(rd_kafka_t* rk, int async) {
  rd_kafka_resp_err_t err = rd_kafka_commit(rk, nullptr, async);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    pv::log::Warn("kafka_commit_failed", {{"error", rd_kafka_err2str(err)}});
  }
}
}  // namespace

bool Consumer::CommitSync(std::chrono::milliseconds timeout) {
  struct Result {
    Consumer* self;
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  } result{this};
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk_);
  auto on_commit = [](rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* offsets,
                      void* opaque) {
    auto* r = static_cast<Result*>(opaque);
    r->done = true;
    r->err = err;
    if (r->self->commit_listener_ && offsets != nullptr) r->self->commit_listener_(err, offsets);
  };
  rd_kafka_resp_err_t err = rd_kafka_commit_queue(rk_, nullptr, queue, on_commit, &result);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Served here only: if it gives up, nobody serves the queue again and the callback never runs.
  while (err == RD_KAFKA_RESP_ERR_NO_ERROR && !result.done && std::chrono::steady_clock::now() < deadline)
    rd_kafka_queue_poll_callback(queue, 100);
  rd_kafka_queue_destroy(queue);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && !result.done) {
    pv::log::Warn("kafka_commit_timeout", {{"timeout_ms", static_cast<std::int64_t>(timeout.count())}});
    return false;
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = result.err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
    pv::log::Warn("kafka_commit_failed", {{"error", rd_kafka_err2str(err)}});
  return true;
}

void Consumer::CommitAsync() {
  Commit(rk_, 1);
}

void Consumer::Pause(std::string_view topic, std::int32_t partition) {
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), std::string(topic).c_str(), partition);
  rd_kafka_pause_partitions(rk_, list.get());
}

void Consumer::Resume(std::string_view topic, std::int32_t partition) {
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), std::string(topic).c_str(), partition);
  rd_kafka_resume_partitions(rk_, list.get());
}

bool Consumer::SetAssignmentPaused(bool paused) {
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(rk_, &raw) != RD_KAFKA_RESP_ERR_NO_ERROR || raw == nullptr) return false;
  PartitionList list(raw);
  if (paused) {
    rd_kafka_pause_partitions(rk_, list.get());
  } else {
    rd_kafka_resume_partitions(rk_, list.get());
  }
  return true;
}

void Consumer::WakeOnRecords(int eventfd) {
  static const std::uint64_t kOne = 1;
  if (eventfd < 0) {
    if (wake_queue_ == nullptr) return;
    rd_kafka_queue_io_event_enable(wake_queue_, -1, nullptr, 0);
    rd_kafka_queue_destroy(wake_queue_);
    wake_queue_ = nullptr;
    return;
  }
  if (wake_queue_ == nullptr) wake_queue_ = rd_kafka_queue_get_consumer(rk_);
  rd_kafka_queue_io_event_enable(wake_queue_, eventfd, &kOne, sizeof(kOne));
}

std::optional<std::string> Consumer::Property(const char* name) const {
  char value[512];
  size_t size = sizeof(value);
  if (rd_kafka_conf_get(rd_kafka_conf(rk_), name, value, &size) != RD_KAFKA_CONF_OK) return std::nullopt;
  return std::string(value);
}

bool Consumer::AssignmentLost() const {
  return rd_kafka_assignment_lost(rk_) != 0;
}

std::vector<PartitionLag> Consumer::Lag() const {
  std::vector<PartitionLag> out;
  rd_kafka_topic_partition_list_t* raw = nullptr;
  if (rd_kafka_assignment(rk_, &raw) != RD_KAFKA_RESP_ERR_NO_ERROR || raw == nullptr) return out;
  PartitionList list(raw);
  rd_kafka_position(rk_, list.get());
  for (int i = 0; i < list->cnt; ++i) {
    const auto& e = list->elems[i];
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (rd_kafka_get_watermark_offsets(rk_, e.topic, e.partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    std::int64_t position = e.offset >= 0 ? e.offset : low;
    out.push_back({e.topic, e.partition, std::max<std::int64_t>(0, high - position)});
  }
  return out;
}

bool Consumer::Close(std::chrono::milliseconds timeout) {
  if (closed_) return !close_abandoned_;
  closed_ = true;
  rd_kafka_queue_t* queue = rd_kafka_queue_new(rk_);
  if (rd_kafka_error_t* error = rd_kafka_consumer_close_queue(rk_, queue)) {
    pv::log::Warn("kafka_close_failed", {{"error", rd_kafka_error_string(error)}});
    rd_kafka_error_destroy(error);
    rd_kafka_queue_destroy(queue);
    close_abandoned_ = true;
    return false;
  }
  // The close's rebalance callbacks come through this queue: served here, on the caller's thread,
  // as rd_kafka_consumer_close would. The bound is on waiting for the brokers: the time the listener
  // spends on a revoke (finishing the partitions' work, revoke_timeout_ms in a worker) does not count.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto listener_before = in_listener_;
  // Served as rd_kafka_consumer_poll serves the consumer queue (callbacks for rebalances and
  // commits, records returned), not with rd_kafka_queue_poll_callback: records fetched ahead and not
  // taken come through this queue too, and served as callbacks (none is set for records) librdkafka
  // 2.0.2 aborts the process ("rd_kafka_q_serve: assert: res != RD_KAFKA_OP_RES_PASS"). Returned,
  // they are dropped: their offsets were never stored, so the next owner reads them.
  while (rd_kafka_consumer_closed(rk_) == 0 &&
         std::chrono::steady_clock::now() < deadline + (in_listener_ - listener_before)) {
    if (rd_kafka_message_t* dropped = rd_kafka_consume_queue(queue, 100)) rd_kafka_message_destroy(dropped);
  }
  bool closed = rd_kafka_consumer_closed(rk_) != 0;
  rd_kafka_queue_destroy(queue);
  if (!closed) {
    close_abandoned_ = true;
    pv::log::Warn("kafka_close_timeout", {{"timeout_ms", static_cast<std::int64_t>(timeout.count())},
                                          {"action", "leaving without closing: offsets not committed are read again"}});
  }
  return closed;
}

}  // namespace pv::kafka
