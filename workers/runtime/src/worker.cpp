#include "pv/workers/worker.hpp"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/produce_errors.hpp"
#include "pv/sent_message.hpp"
#include "pv/workers/curl_loop.hpp"
#include "pv/workers/outcome_records.hpp"

namespace pv::workers {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How often an idle worker asks Redis whether it is there (see Run): a PING every few seconds costs
// nothing and bounds how long /readyz can say ready about a store that went away.
constexpr auto kIdleStoreProbe = 3s;

// What other threads hand to the loop: provider answers (CurlLoop thread) and delivery reports of
// outcome records (producer poll thread). Shared ownership, so a late callback never touches a
// destroyed worker. Its descriptor also wakes the loop for records (Consumer::WakeOnRecords).
namespace {
struct Answer {
  std::uint64_t job;
  DeliveryResult result;
  double seconds;
};
struct Ack {
  std::uint64_t job;
  rd_kafka_resp_err_t err;
};
}  // namespace
// What the providers and the producer report to the loop. A post from the loop's own thread (a
// transfer of the driven loop answering in its turn, a provider refusing at once, a produce failing
// at enqueue) writes no wake-up: Sleep does not wait while the inbox holds anything. Against an HTTP
// provider that saved the loop an eventfd write and read per turn with answers.
struct Worker::Inbox : kafka::CompletionQueue<Answer, Ack> {
  template <typename T>
  void PostFromAny(T item) {
    Post(std::move(item), std::this_thread::get_id() != owner.load(std::memory_order_relaxed));
  }
  std::atomic<std::thread::id> owner{};  // the thread in Run
};

// The outcome records of one job: reports to the loop once every record was acknowledged (or one
// failed). A DeliveryGroup, so that ladder::Schedule can report to it like any produce.
class Worker::AckGroup final : public kafka::DeliveryGroup {
 public:
  AckGroup(std::shared_ptr<Inbox> inbox, std::uint64_t job, int expected)
      : kafka::DeliveryGroup(expected), inbox_(std::move(inbox)), job_(job) {}

 private:
  void OnComplete() override { inbox_->PostFromAny(Ack{job_, first_error()}); }
  std::shared_ptr<Inbox> inbox_;
  std::uint64_t job_;
};

struct Worker::Job : SendAttempt {
  std::uint64_t id = 0;
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::uint64_t generation = 0;
  Stage stage = Stage::kClaim;
  Provider* provider = nullptr;
  bool abandon = false;  // release the claim, then drop without an outcome (drain, revoke)
  bool unmarked = false;  // delivered, not yet marked sent in Redis: counted in unmarked_
  Clock::time_point started{};
  std::string message_id;
  Outcome outcome;
};

kafka::ProducerOptions OutcomeProducerOptions(const WorkerOptions& options) {
  kafka::ProducerOptions o;
  o.client_id = "pv-" + std::string(ChannelTopicSuffix(options.channel)) + "-worker";
  // Its reports end outcomes already delivered (offsets, counts): served in batches.
  o.report_gather = kafka::kOffPathReportGather;
  o.defaults = {{"linger.ms", std::to_string(options.outcome_linger_ms)}};
  return o;
}

Worker::Worker(WorkerOptions options, std::unique_ptr<DedupeStore> store,
               std::map<std::string, std::unique_ptr<Provider>> providers, metrics::Registry& registry)
    : options_(std::move(options)),
      channel_name_(ChannelName(options_.channel)),
      send_topic_(topics::Send(options_.channel)),
      dlq_topic_(topics::DeadLetter(options_.channel)),
      store_(std::move(store)),
      providers_(std::make_move_iterator(providers.begin()), std::make_move_iterator(providers.end())),
      planner_(options_.channel, options_.max_attempts, options_.backoff),
      metrics_(registry),
      in_flight_gauge_(metrics_.in_flight.With({channel_name_})),
      buffered_gauge_(metrics_.buffered.With({channel_name_})),
      paused_gauge_(metrics_.paused.With({channel_name_})),
      send_latency_(metrics_.send_latency.With({channel_name_})),
      inbox_(std::make_shared<Inbox>()),
      delivered_(static_cast<std::size_t>(options_.DeliveredMemory())),
      rng_(std::random_device{}()) {
  if (options_.tiers.empty()) options_.tiers = ladder::ParseTiers(topics::DefaultDelayTiers());
  options_.max_in_flight = std::max(1, options_.max_in_flight);
  options_.max_buffered = options_.Buffered();
  options_.claim_batch = std::max(1, options_.claim_batch);
  std::string suffix(ChannelTopicSuffix(options_.channel));
  producer_ = std::make_unique<kafka::Producer>(options_.kafka, OutcomeProducerOptions(options_));
  max_message_bytes_ = producer_->MaxMessageBytes();
  kafka::ConsumerOptions consumer_options;
  consumer_options.group_id = options_.group_id.empty() ? "pv-" + suffix + "-worker" : options_.group_id;
  consumer_options.client_id = "pv-" + suffix + "-worker";
  // Stored offsets are committed every second (librdkafka's default is 5 s): the delivered-send
  // memory holds what a commit has not covered yet, so at 20,000 sends/s five seconds of them
  // filled its 65,536 and paused the worker; a crash also redoes less. kafka.properties overrides it.
  consumer_options.defaults = {{"auto.commit.interval.ms", "1000"}};
  consumer_ = std::make_unique<kafka::Consumer>(options_.kafka, consumer_options);
  consumer_->SetRebalanceListener(
      [this](rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* parts) {
        OnRebalance(kind, parts);
      });
  consumer_->SetCommitListener(
      [this](rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets) {
        OnCommitted(err, offsets);
      });
  consumer_->WakeOnRecords(inbox_->fd());
}

Worker::~Worker() {
  consumer_.reset();  // stops its writes to the inbox's descriptor
  producer_.reset();
}

void Worker::Stop() {
  stop_requested_.store(true);
  inbox_->Wake();
}

std::string Worker::NotReadyReason() const {
  if (fatal_.load()) return "kafka producer fatal error";
  if (!running_.load()) return "starting";
  if (draining_.load()) return "draining";
  if (!store_->Reachable()) return "redis unreachable";
  return "";
}

std::string Worker::FatalError() const {
  return fatal_.load() ? fatal_error_ : std::string();
}

double Worker::ConsumerLag() const {
  double lag = 0;
  for (const kafka::PartitionLag& p : consumer_->Lag()) lag += static_cast<double>(p.lag);
  return lag;
}

// ---- the loop ----

int Worker::Run() {
  inbox_->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  consumer_->Subscribe({send_topic_});
  running_.store(true);
  pv::log::Info("worker_started", {{"channel", channel_name_},
                                   {"topic", send_topic_},
                                   {"worker_id", options_.worker_id},
                                   {"max_in_flight", options_.max_in_flight},
                                   {"providers", static_cast<std::int64_t>(providers_.size())}});
  Clock::time_point deadline{};
  Clock::time_point force_settle_at{};
  bool clean = false;
  while (true) {
    Clock::time_point now = Clock::now();
    if (CheckFatal(now)) break;
    if (stop_requested_.load() && !draining_.load()) {
      BeginDrain();
      deadline = now + options_.drain_timeout;
      force_settle_at = now + options_.drain_timeout / 2;
    }
    if (!draining_.load()) {
      // Flow control: take no more than the buffer has room for; what we leave waits in librdkafka's
      // prefetch queue (bounded by queued.max.messages.kbytes). Pausing partitions instead would make
      // librdkafka drop its prefetched messages and fetch them again on every resume. While paused
      // (Redis away) keep polling anyway: rebalance callbacks arrive through the same queue.
      std::size_t room = jobs_.size() < static_cast<std::size_t>(options_.max_buffered)
                             ? static_cast<std::size_t>(options_.max_buffered) - jobs_.size()
                             : 0;
      if (paused_ || room > 0) {
        TakeMessages(static_cast<int>(std::clamp<std::size_t>(room, 1, 2 * options_.claim_batch)));
      }
    }
    MoveDueWaits();
    StartDeliveries();
    std::chrono::milliseconds loop_wait = TurnTransfers();
    CollectInbox();
    // One Redis round trip for both: the answered sends' settles, the new ones' claims, which start
    // now (a transfer loop of the worker's own starts them at its next turn, which comes at once:
    // a submission wakes its descriptor).
    bool force_settle = draining_.load() && now >= force_settle_at;
    ClaimAndSettle(!draining_.load(), force_settle);
    if (StartDeliveries()) {
      // A provider that answers at once (`log`, a refusal before any request) has answered already:
      // settle those now, not one more turn later. (Transfers on a transfer loop of this thread's own
      // answer only inside its turn; on a loop with a thread, an answer may also be here already.)
      CollectInbox();
      if (!settle_queue_.empty()) ClaimAndSettle(!draining_.load(), force_settle);
    }
    if (!draining_.load()) ProbeStore(now);
    RecordOutcomes();
    in_flight_gauge_.Set(static_cast<double>(delivering_));
    buffered_gauge_.Set(static_cast<double>(jobs_.size()));
    if (draining_.load()) {
      if (Busy() == 0) {
        clean = true;
        break;
      }
      if (Clock::now() >= deadline) {
        pv::log::Error("worker_drain_timeout", {{"unfinished", static_cast<std::int64_t>(Busy())}});
        break;
      }
    }
    UpdatePause();
    Sleep(std::min(SleepTime(), loop_wait));
  }
  AwaitExchange(true);  // its requests view jobs' strings: nothing may be left begun (but a probe)
  // Outcome records still in librdkafka's queue: give them a moment, then store what was acknowledged.
  // After a fatal error nothing more will be acknowledged: only what already was is committed.
  if (!fatal_.load()) producer_->Flush(std::chrono::milliseconds(5000));
  CollectInbox();
  // Bounded, both: with a broker that does not answer they would wait for as long as it does not. What
  // is not committed is read again by the next owner (and deduped): the exit status then says the
  // stop was not clean.
  bool answered = consumer_->CommitSync(std::chrono::seconds(5));
  bool closed = consumer_->Close(std::chrono::seconds(10));
  clean = clean && answered && closed;
  pv::log::Info("worker_stopped", {{"channel", channel_name_},
                                   {"clean", clean},
                                   {"fatal", fatal_.load()},
                                   {"unfinished", static_cast<std::int64_t>(Busy())}});
  return clean && !fatal_.load() ? 0 : 1;
}

std::chrono::milliseconds Worker::TurnTransfers() {
  if (options_.transfer_loop == nullptr) return 1000ms;  // it has a thread of its own
  return std::chrono::milliseconds(options_.transfer_loop->Turn());
}

void Worker::Sleep(std::chrono::milliseconds timeout) {
  // What this thread posted or submitted itself wrote no wake-up: no sleep while any waits.
  if (!inbox_->Empty()) return;
  if (options_.transfer_loop != nullptr && options_.transfer_loop->HasSubmissions()) return;
  pollfd fds[3] = {{inbox_->fd(), POLLIN, 0}};
  nfds_t n = 1;
  if (options_.transfer_loop != nullptr) fds[n++] = {options_.transfer_loop->fd(), POLLIN, 0};
  if (auto [fd, events] = store_->WaitOn(); fd >= 0) fds[n++] = {fd, events, 0};
  if (::poll(fds, n, static_cast<int>(timeout.count())) > 0 && (fds[0].revents & POLLIN) != 0)
    inbox_->TakeWake();
}

void Worker::ProbeStore(Clock::time_point now) {
  // The Redis client connects on first use and learns of a lost connection only when used: at start
  // and while idle, ask the store itself every few seconds, so /readyz and the pause tell the truth
  // before the next send needs it; while it is down, every turn (the client's backoff spaces the
  // connects). The question is an exchange like the others: the loop never waits for its answer
  // (FinishExchange takes it), as it never waits for a connect (made in the background).
  if (store_->Pending() > 0) return;  // an exchange is asking it already
  if (!claim_queue_.empty() || !settle_queue_.empty()) return;  // theirs will
  if (!store_down_ && now < store_probe_at_) return;
  store_probe_at_ = now + kIdleStoreProbe;
  if (store_->BeginProbe()) {
    exchanges_.emplace_back().probe = true;
    return;
  }
  if (store_->Connecting()) {
    store_probe_at_ = now;  // being made in the background (at start): asked again next turn, not down
    return;
  }
  if (!store_down_) {
    metrics_.redis_errors.With({channel_name_}).Inc();
    SetStoreDown(true);
  }
}

void Worker::ClaimAndSettle(bool claim, bool force_settle) {
  // Every exchange whose replies are in, oldest first; after a failure, none begun this turn (the
  // Redis client's backoff throttles reconnects).
  bool failed = false;
  while (store_->Pending() > 0) {
    std::optional<ExchangeResult> result = store_->Collect();
    if (!result) break;  // its replies are on their way: Sleep waits for them too
    Exchange e = std::move(exchanges_.front());
    exchanges_.pop_front();
    if (!FinishExchange(std::move(e), *result, force_settle)) failed = true;
  }
  if (failed || exchanges_.size() >= kMaxExchanges) return;
  // Claim ahead of free slots, but not so far that claims wait long for a slot (their lease runs).
  std::size_t claims_in_flight = 0;
  for (const Exchange& begun : exchanges_) claims_in_flight += begun.claim_ids.size();
  bool claiming = claim && !claim_queue_.empty() &&
                  ready_queue_.size() + claims_in_flight < static_cast<std::size_t>(options_.max_in_flight);
  if (settle_queue_.empty() && !claiming) return;
  Exchange& e = exchanges_.emplace_back();
  TakeSettles(e.settle_ids, settles_);
  claims_.clear();
  if (claiming) TakeClaims(e.claim_ids, claims_);
  if (e.settle_ids.empty() && e.claim_ids.empty()) {  // only sends that failed unclaimed
    exchanges_.pop_back();
    return;
  }
  if (!store_->Begin(settles_, claims_)) {
    Exchange unsent = std::move(exchanges_.back());
    exchanges_.pop_back();
    FinishExchange(std::move(unsent), {false, std::nullopt}, force_settle);
  }
}

void Worker::AwaitExchange(bool force_settle) {
  while (store_->Pending() > 0) {
    // A probe left alone views nothing and decides nothing a pause, a revoke or the stop needs:
    // not waited for (a Redis that stopped answering would hold them for its timeout).
    if (exchanges_.size() == 1 && exchanges_.front().probe) return;
    ExchangeResult result = store_->Await();
    Exchange e = std::move(exchanges_.front());
    exchanges_.pop_front();
    FinishExchange(std::move(e), result, force_settle);
  }
}

bool Worker::FinishExchange(Exchange e, const ExchangeResult& result, bool force_settle) {
  if (e.probe) {
    bool up = result.settled && result.claims.has_value();
    if (!up && !store_down_) metrics_.redis_errors.With({channel_name_}).Inc();
    SetStoreDown(!up);
    return up;
  }
  bool go_on = true;
  if (!e.settle_ids.empty()) go_on = FinishSettles(e.settle_ids, result.settled, force_settle);
  if (!e.claim_ids.empty()) go_on = FinishClaims(e.claim_ids, result.claims) && go_on;
  return go_on;
}

// Until the next work: none when some is ready, else until the next wait is due, at most 100 ms
// (50 ms while the store is down).
std::chrono::milliseconds Worker::SleepTime() const {
  std::chrono::milliseconds timeout = 100ms;
  bool room = jobs_.size() < static_cast<std::size_t>(options_.max_buffered);
  if ((kafka_more_ && room) || !record_queue_.empty() ||
      (!ready_queue_.empty() && delivering_ + unmarked_ < static_cast<std::size_t>(options_.max_in_flight))) {
    timeout = 0ms;
  } else if (!wait_queue_.empty()) {
    auto until =
        std::chrono::duration_cast<std::chrono::milliseconds>(wait_queue_.begin()->first - Clock::now());
    timeout = std::clamp(until + 1ms, 0ms, timeout);
  }
  return store_down_ ? std::min(timeout, 50ms) : timeout;
}

// A fatal producer error (librdkafka's idempotence guarantees broken) means no outcome record will
// ever be acknowledged again: stop, unready, exit non-zero so the supervisor starts a fresh producer.
// Unfinished sends keep their offsets unstored and are read again by the next owner; Redis claims
// and `sent:` marks turn what this worker already delivered into `deduped`.
bool Worker::CheckFatal(Clock::time_point now) {
  if (fatal_.load()) return true;
  if (now < fatal_check_at_) return false;
  fatal_check_at_ = now + 1s;
  auto error = producer_->FatalError();
  if (!error) return false;
  fatal_error_ = *error;
  fatal_.store(true);
  pv::log::Error("kafka_fatal_error",
                 {{"error", *error},
                  {"channel", channel_name_},
                  {"unfinished", static_cast<std::int64_t>(Busy())},
                  {"action", "stopping; exit status 1 so the supervisor restarts the worker"}});
  return true;
}

void Worker::TakeMessages(int max) {
  for (int i = 0; i < max; ++i) {
    kafka::Message m = consumer_->Poll(0ms);
    if (!m) {
      kafka_more_ = false;
      return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        pv::log::Warn("kafka_consume_error", {{"error", rd_kafka_message_errstr(m.get())}});
      }
      continue;
    }
    NewJob(std::move(m));
  }
  kafka_more_ = true;
}

void Worker::NewJob(kafka::Message m) {
  auto job = std::make_unique<Job>();
  job->id = next_job_id_++;
  job->topic = rd_kafka_topic_name(m->rkt);
  job->partition = m->partition;
  job->offset = m->offset;
  job->generation = book_.Generation(job->topic, m->partition);
  book_.Begin(job->topic, m->partition, m->offset);
  std::string error;
  std::shared_ptr<Send> partial;
  job->send = ParseSend(kafka::Payload(m.get()), kafka::Key(m.get()), options_.channel, error, &partial);
  if (!job->send && !partial) {
    // Not even a send_id: the dead letter carries the record as received (a send has its own copy).
    job->value.assign(kafka::Payload(m.get()));
    job->key.assign(kafka::Key(m.get()));
  }
  Job& j = *job;
  jobs_.emplace(j.id, std::move(job));
  if (!j.send) {
    j.send = partial;  // may be null: then only a DLQ record is written
    if (j.send) j.attempt = j.send->attempt;
    pv::log::Warn("send_invalid",
                  {{"topic", j.topic}, {"partition", j.partition}, {"offset", j.offset}, {"error", error}});
    Fail(j, ErrorKind::kInvalidRecord, error, std::nullopt);
    return;
  }
  j.attempt = j.send->attempt;
  // Asking a record without headers for one costs librdkafka a parse each time: ask once whether any.
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m.get(), &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (auto header = kafka::HeaderValue(m.get(), ladder::kAttempt)) {
      // A bad header is not worth losing the send over: keep the value's attempt.
      j.attempt = ladder::ParseAttempt(*header).value_or(j.attempt);
    }
    if (auto header = kafka::HeaderValue(m.get(), ladder::kPinnedProvider)) j.pinned_provider = *header;
  }
  j.send->attempt = j.attempt;
  if (const DeliveredMemory::Delivery* done = delivered_.Find(j.send->send_id)) {
    // Delivered by this worker already, its record read again before the offset was committed:
    // whatever Redis says now (it may have lost the mark), it is not sent again.
    j.provider_name = done->provider;
    pv::log::Debug("send_redelivered",
                   {{"send_id", j.send->send_id}, {"partition", j.partition}, {"offset", j.offset}});
    planner_.Deduped(j, done->provider_message_id, std::chrono::system_clock::now(), j.outcome);
    Conclude(j);
    return;
  }
  j.stage = Stage::kClaim;
  claim_queue_.push_back(j.id);
}

void Worker::MoveDueWaits() {
  Clock::time_point now = Clock::now();
  while (!wait_queue_.empty() && wait_queue_.begin()->first <= now) {
    std::uint64_t id = wait_queue_.begin()->second;
    wait_queue_.erase(wait_queue_.begin());
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    if (it->second->stage == Stage::kWait) {
      it->second->stage = Stage::kClaim;
      claim_queue_.push_front(id);  // it was first in line before the rate limit held it
    } else if (it->second->stage == Stage::kRecord) {
      record_queue_.push_back(id);
    }
  }
}

Provider* Worker::ChooseProvider(Job& job) {
  const Send& s = *job.send;
  auto find = [&](std::string_view name) -> Provider* {
    auto it = providers_.find(name);
    return it == providers_.end() ? nullptr : it->second.get();
  };
  if (!job.pinned_provider.empty()) {
    // An earlier attempt may have been accepted there: only that provider can recognise the
    // repeat (same send_id, same idempotency key); any other would deliver a second copy.
    job.provider = find(job.pinned_provider);
    job.provider_name = job.pinned_provider;
    return job.provider;
  }
  Provider* primary = find(s.provider);
  Provider* fallback = s.fallback_provider.empty() ? nullptr : find(s.fallback_provider);
  bool circuit_open = false;
  if (auto it = circuits_.find(s.provider); it != circuits_.end())
    circuit_open = it->second.IsOpen(Clock::now());
  bool use_fallback = fallback != nullptr &&
                      (primary == nullptr || job.attempt > options_.fallback_after_attempts || circuit_open);
  job.provider = use_fallback ? fallback : primary;
  job.provider_name = use_fallback ? s.fallback_provider : s.provider;
  return job.provider;
}

Worker::Job* Worker::PopLive(std::deque<std::uint64_t>& queue) {
  while (!queue.empty()) {
    std::uint64_t id = queue.front();
    queue.pop_front();
    if (auto it = jobs_.find(id); it != jobs_.end()) return it->second.get();
  }
  return nullptr;
}

void Worker::TakeClaims(std::vector<std::uint64_t>& ids, std::vector<ClaimRequest>& requests) {
  ids.clear();
  requests.clear();
  while (requests.size() < static_cast<std::size_t>(options_.claim_batch)) {
    Job* next = PopLive(claim_queue_);
    if (next == nullptr) break;
    Job& job = *next;
    if (ChooseProvider(job) == nullptr) {
      Fail(job, ErrorKind::kNotConfigured,
           fmt::format("provider '{}' is not configured for the {} worker", job.provider_name, channel_name_),
           std::nullopt);
      continue;
    }
    ids.push_back(job.id);
    requests.push_back({job.send->send_id, job.provider_name, job.provider->Cost(*job.send)});
  }
}

bool Worker::FinishClaims(const std::vector<std::uint64_t>& ids,
                          const std::optional<std::vector<ClaimResult>>& results) {
  if (!results) {
    metrics_.redis_errors.With({channel_name_}).Inc();
    SetStoreDown(true);
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) claim_queue_.push_front(*it);
    return false;
  }
  SetStoreDown(false);
  Clock::time_point now = Clock::now();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    Job& job = *jobs_.at(ids[i]);
    const ClaimResult& r = (*results)[i];
    switch (r.status) {
      case ClaimStatus::kClaimed:
        job.claimed = true;
        job.stage = Stage::kReady;
        ready_queue_.push_back(job.id);
        break;
      case ClaimStatus::kAlreadySent:
        planner_.Deduped(job, r.detail, std::chrono::system_clock::now(), job.outcome);
        Conclude(job);
        break;
      case ClaimStatus::kInFlightElsewhere:
        // Another worker (or our killed predecessor) holds it: if that one delivers, the retry is
        // deduped; if its lease runs out, the retry delivers.
        Fail(job, ErrorKind::kInFlightElsewhere, "claimed by " + r.detail, std::nullopt);
        break;
      case ClaimStatus::kRateLimited:
        metrics_.rate_limited.With({channel_name_, job.provider_name}).Inc();
        if (r.retry_after <= options_.rate_limit_max_wait) {
          job.stage = Stage::kWait;
          wait_queue_.emplace(now + r.retry_after, job.id);
        } else {
          planner_.Deferred(job, r.retry_after, std::chrono::system_clock::now(), job.outcome);
          Conclude(job);
        }
        break;
    }
  }
  return true;
}

bool Worker::StartDeliveries() {
  bool any = false;
  // A slot is held until the send is marked sent in Redis, not only until the provider answers: a
  // worker killed with sends accepted and unmarked has them delivered again (after the claim's lease),
  // and that is bounded by max_in_flight. (The loop does not wait for its Redis exchange, so answers
  // would otherwise pile up unmarked behind it while new sends start.)
  while (delivering_ + unmarked_ < static_cast<std::size_t>(options_.max_in_flight) && !ready_queue_.empty()) {
    std::uint64_t id = ready_queue_.front();
    ready_queue_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    job.stage = Stage::kDelivering;
    job.started = Clock::now();
    ++delivering_;
    any = true;
    std::shared_ptr<Inbox> inbox = inbox_;
    Clock::time_point started = job.started;
    job.provider->Deliver(job.send, [inbox, id, started](DeliveryResult result) {
      double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      inbox->PostFromAny(Answer{id, std::move(result), seconds});
    });
  }
  return any;
}

void Worker::CollectInbox() {
  std::vector<Answer> completions;
  std::vector<Ack> acks;
  inbox_->Take(completions, acks);
  for (auto& c : completions) {
    auto it = jobs_.find(c.job);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    --delivering_;
    ProviderLatency(job.provider_name).Observe(c.seconds);
    if (c.result.ok) {
      if (job.send->received_at) {
        auto since = std::chrono::system_clock::now() - *job.send->received_at;
        send_latency_.Observe(std::max(0.0, std::chrono::duration<double>(since).count()));
      }
      job.message_id = std::move(c.result.provider_message_id);
      Circuit(job.provider_name).OnAnswer();
      delivered_.Add(job.partition, job.offset, job.send->send_id, job.provider_name, job.message_id);
      planner_.Sent(job, job.message_id, std::chrono::system_clock::now(), job.outcome);
      Conclude(job);
      if (job.stage == Stage::kSettle) {
        job.unmarked = true;
        ++unmarked_;
      }
    } else {
      Fail(job, c.result.kind, c.result.error, c.result.retry_after);
    }
  }
  for (const auto& a : acks) {
    auto it = jobs_.find(a.job);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    --acking_;
    if (a.err == RD_KAFKA_RESP_ERR__FATAL) fatal_check_at_ = {};  // look at once, not in a second
    if (a.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Finish(job);
      continue;
    }
    bool never = kafka::ProduceErrorClassOf(a.err) == kafka::ProduceErrorClass::kNeverSucceeds;
    if (never && OnOutcomeRefused(job.outcome.records, a.err, dlq_topic_, std::chrono::system_clock::now()) ==
                     RefusedOutcome::kGiveUp) {
      // Refused for good even as a dead letter (outcome_records.hpp): the offset moves on without it.
      std::string reason(kafka::ProduceFailureName(kafka::ProduceFailureOf(a.err)));
      metrics_.outcome_skipped.With({channel_name_, reason}).Inc();
      pv::log::Error("outcome_skipped", {{"send_id", job.send ? job.send->send_id : ""},
                                         {"reason", reason},
                                         {"error", rd_kafka_err2str(a.err)},
                                         {"partition", job.partition},
                                         {"offset", job.offset}});
      Finish(job);
      continue;
    }
    if (never) RetryBecameDead(job);
    // Not acknowledged: produce the outcome again (the offset waits for it). A full local queue
    // clears fast; a broker problem takes longer.
    bool full = a.err == RD_KAFKA_RESP_ERR__QUEUE_FULL;
    if (!full)
      pv::log::Warn("outcome_not_acknowledged",
                    {{"send_id", job.send ? job.send->send_id : ""}, {"error", rd_kafka_err2str(a.err)}});
    job.stage = Stage::kRecord;
    wait_queue_.emplace(Clock::now() + (full ? 20ms : 1000ms), job.id);
  }
}

metrics::Counter& Worker::SendsCounter(const std::string& provider, std::string_view status) {
  auto& sends = series_[provider].sends;
  for (auto& [name, counter] : sends)
    if (name == status) return *counter;
  metrics::Counter& counter = metrics_.sends.With({channel_name_, provider, std::string(status)});
  sends.emplace_back(std::string(status), &counter);
  return counter;
}

metrics::Histogram& Worker::ProviderLatency(const std::string& provider) {
  metrics::Histogram*& latency = series_[provider].latency;
  if (latency == nullptr) latency = &metrics_.provider_latency.With({channel_name_, provider});
  return *latency;
}

CircuitBreaker& Worker::Circuit(const std::string& provider) {
  return circuits_.try_emplace(provider, options_.circuit_failures, options_.circuit_open).first->second;
}

void Worker::Fail(Job& job, ErrorKind kind, const std::string& error,
                  std::optional<std::chrono::milliseconds> retry_after) {
  ErrorClass error_class = ClassOf(kind);
  std::string_view code = ErrorKindName(kind);
  if (!job.provider_name.empty()) {
    metrics_.provider_errors
        .With({channel_name_, job.provider_name, std::string(code), std::string(ErrorClassName(error_class))})
        .Inc();
  }
  if (job.provider != nullptr && kind != ErrorKind::kInFlightElsewhere) {
    CircuitBreaker& circuit = Circuit(job.provider_name);
    if (error_class == ErrorClass::kPermanent) {
      circuit.OnAnswer();  // the provider answered; the send was the problem
    } else if (circuit.OnFailure(Clock::now())) {
      pv::log::Warn("provider_circuit_open",
                    {{"provider", job.provider_name},
                     {"failures", options_.circuit_failures},
                     {"open_ms", static_cast<std::int64_t>(options_.circuit_open.count())}});
    }
  }
  std::string_view send_id = job.send ? job.send->send_id : std::string_view();
  if (error_class == ErrorClass::kConfiguration) {
    pv::log::Error("provider_configuration_error",
                   {{"provider", job.provider_name}, {"send_id", send_id}, {"code", code}, {"error", error}});
  } else {
    pv::log::Debug("delivery_failed", {{"provider", job.provider_name},
                                       {"send_id", send_id},
                                       {"code", code},
                                       {"class", ErrorClassName(error_class)},
                                       {"attempt", job.attempt},
                                       {"error", error}});
  }
  planner_.Failed(job, kind, error, retry_after, std::chrono::system_clock::now(), rng_, job.outcome);
  if (job.outcome.status == std::string_view("dead") && DispositionOf(error_class) == Disposition::kRetry) {
    pv::log::Warn(
        "send_dead",
        {{"send_id", send_id}, {"reason", "max_attempts"}, {"attempt", job.attempt}, {"code", code}});
  }
  Conclude(job);
}

void Worker::Conclude(Job& job) {
  if (job.outcome.settle == Settle::kNone) {
    ToRecord(job);
    return;
  }
  job.stage = Stage::kSettle;
  settle_queue_.push_back(job.id);
}

// A retry record that became the send's dead letter (outcome_records.hpp) ends the send.
void Worker::RetryBecameDead(Job& job) {
  const OutcomeRecord* dead_letter =
      planner_.RetryBecameDead(job, job.outcome, std::chrono::system_clock::now());
  if (dead_letter == nullptr) return;
  pv::log::Warn("send_dead", {{"send_id", job.send->send_id},
                              {"reason", dead_letter->Header(ladder::kErrorCode)},
                              {"attempt", job.attempt}});
}

void Worker::ToRecord(Job& job) {
  job.stage = Stage::kRecord;
  record_queue_.push_back(job.id);
}

void Worker::TakeSettles(std::vector<std::uint64_t>& ids, std::vector<SettleRequest>& requests) {
  ids.clear();
  requests.clear();
  while (requests.size() < static_cast<std::size_t>(options_.claim_batch)) {
    Job* next = PopLive(settle_queue_);
    if (next == nullptr) break;
    Job& job = *next;
    ids.push_back(job.id);
    bool sent = job.outcome.settle == Settle::kMarkSent;
    requests.push_back({job.send->send_id, sent, job.message_id, {}, {}});
    if (sent && !job.message_id.empty() && job.provider != nullptr && job.provider->RecordsMessageIds()) {
      SentMessage m{std::string(job.send->send_id), std::string(job.send->trigger_id),
                    std::string(job.send->campaign_id), job.provider_name, std::string(job.send->address)};
      requests.back().message_key = SentMessageKey(job.provider->type(), job.message_id);
      requests.back().message_value = SentMessageJson(m);
    }
  }
}

bool Worker::FinishSettles(const std::vector<std::uint64_t>& ids, bool settled, bool force) {
  if (settled) SetStoreDown(false);
  if (!settled) {
    metrics_.redis_errors.With({channel_name_}).Inc();
    if (!force) {
      SetStoreDown(true);
      for (auto it = ids.rbegin(); it != ids.rend(); ++it) settle_queue_.push_front(*it);
      return false;
    }
    // Draining and Redis still away: record the outcomes anyway rather than lose them. The cost
    // is weaker dedupe for these sends (a replay of a sent one would deliver again).
    pv::log::Warn("settle_skipped", {{"count", static_cast<std::int64_t>(ids.size())}});
  }
  for (std::uint64_t id : ids) {
    Job& job = *jobs_.at(id);
    job.claimed = false;
    if (job.unmarked) {
      job.unmarked = false;
      --unmarked_;
    }
    if (job.abandon) {
      Erase(id);
    } else {
      ToRecord(job);
    }
  }
  return true;
}

void Worker::RecordOutcomes() {
  while (!record_queue_.empty()) {
    std::uint64_t id = record_queue_.front();
    record_queue_.pop_front();
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    job.stage = Stage::kAcking;
    ++acking_;
    std::string_view key = job.send ? job.send->key : std::string_view(job.key);
    FitOutcomeRecords(job.outcome.records, key, max_message_bytes_, send_topic_, dlq_topic_,
                      std::chrono::system_clock::now());
    RetryBecameDead(job);
    int count = static_cast<int>(job.outcome.records.size());
    auto group = std::make_shared<AckGroup>(inbox_, id, count);
    for (int i = 0; i < count; ++i) {
      const OutcomeRecord& out = job.outcome.records[static_cast<std::size_t>(i)];
      std::vector<kafka::Header> headers;
      headers.reserve(out.headers.size());
      for (const auto& [name, value] : out.headers) headers.push_back({name, value});
      rd_kafka_resp_err_t err;
      if (out.ladder) {
        err = ladder::Schedule(*producer_, options_.tiers, send_topic_, key, out.value, out.due,
                               out.next_attempt, headers, group);
      } else {
        std::string_view record_key = out.topic == topics::kEvents && job.send ? job.send->send_id : key;
        err = producer_->Produce(out.topic, record_key, out.value, headers, group);
      }
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        group->Abandon(count - i, err);
        break;
      }
    }
  }
}

void Worker::Finish(Job& job) {
  SendsCounter(job.provider_name, job.outcome.status).Inc();
  std::int64_t next = book_.Finish(job.topic, job.partition, job.offset, job.generation);
  if (next >= 0) consumer_->StoreOffset(job.topic, job.partition, next);
  Erase(job.id);
}

void Worker::Erase(std::uint64_t id) {
  jobs_.erase(id);
}

std::size_t Worker::Busy() const {
  return static_cast<std::size_t>(std::count_if(jobs_.begin(), jobs_.end(), [](const auto& entry) {
    Stage stage = entry.second->stage;
    return stage == Stage::kDelivering || stage == Stage::kSettle || stage == Stage::kRecord ||
           stage == Stage::kAcking;
  }));
}

void Worker::UpdateMemoryFull() {
  if (delivered_.Full() && !memory_full_) {
    // Forget first what only a partition we no longer own would need; then make the next commit
    // come now rather than at the auto-commit tick, and take no records until it freed room.
    for (std::int32_t p : delivered_.Partitions()) {
      if (book_.Generation(send_topic_, p) == 0) delivered_.Forget(p);
    }
    if (!delivered_.Full()) return;
    memory_full_ = true;
    pv::log::Warn("worker_paused", {{"reason", "delivered-send memory full, waiting for a commit"},
                                    {"remembered", static_cast<std::int64_t>(delivered_.size())}});
    consumer_->CommitAsync();
  } else if (memory_full_ && delivered_.size() < delivered_.capacity() / 2) {
    memory_full_ = false;
    pv::log::Info("worker_resumed", {{"reason", "delivered-send memory has room"}});
  }
}

void Worker::OnCommitted(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* offsets) {
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return;
  for (int i = 0; i < offsets->cnt; ++i) {
    const auto& tp = offsets->elems[i];
    if (tp.err == RD_KAFKA_RESP_ERR_NO_ERROR && tp.offset >= 0 && send_topic_ == tp.topic) {
      delivered_.Committed(tp.partition, tp.offset);
    }
  }
}

void Worker::UpdatePause() {
  UpdateMemoryFull();
  bool want = draining_.load() || store_down_ || memory_full_;
  if (want == paused_ && !(want && reapply_pause_)) return;
  consumer_->SetAssignmentPaused(want);
  if (want != paused_) {
    pv::log::Debug(want ? "consumer_paused" : "consumer_resumed",
                   {{"buffered", static_cast<std::int64_t>(jobs_.size())},
                    {"redis_down", store_down_},
                    {"memory_full", memory_full_}});
  }
  paused_ = want;
  reapply_pause_ = false;
  paused_gauge_.Set(want ? 1.0 : 0.0);
}

void Worker::BeginDrain() {
  draining_.store(true);
  pv::log::Info("worker_draining", {{"buffered", static_cast<std::int64_t>(jobs_.size())},
                                    {"in_flight", static_cast<std::int64_t>(delivering_)}});
  UpdatePause();
  AwaitExchange(false);  // its claims become ready work, released below
  ReleaseQueuedWork(nullptr);
}

void Worker::ReleaseQueuedWork(const std::set<std::int32_t>* partitions) {
  auto of = [&](std::uint64_t id) -> Job* {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || (partitions != nullptr && partitions->count(it->second->partition) == 0))
      return nullptr;
    return it->second.get();
  };
  // Not yet claimed: nothing to undo; their offsets stay unstored, so the next owner gets them.
  std::erase_if(claim_queue_, [&](std::uint64_t id) {
    if (of(id) == nullptr) return partitions == nullptr;  // gone already; on drain the queue empties
    Erase(id);
    return true;
  });
  std::erase_if(wait_queue_, [&](const auto& entry) {
    Job* job = of(entry.second);
    if (job == nullptr || job->stage != Stage::kWait) return false;
    Erase(entry.second);
    return true;
  });
  // Claimed but not started: release the claims so that the next owner need not wait for the lease.
  std::erase_if(ready_queue_, [&](std::uint64_t id) {
    Job* job = of(id);
    if (job == nullptr) return partitions == nullptr;
    job->abandon = true;
    job->outcome.settle = Settle::kRelease;
    job->stage = Stage::kSettle;
    settle_queue_.push_back(id);
    return true;
  });
}

void Worker::SetStoreDown(bool down) {
  if (down == store_down_) return;
  store_down_ = down;
  if (down) {
    pv::log::Warn("worker_paused", {{"reason", "redis unreachable"}});
  } else {
    pv::log::Info("worker_resumed", {{"reason", "redis reachable"}});
  }
}

void Worker::OnRebalance(rd_kafka_resp_err_t kind, const rd_kafka_topic_partition_list_t* partitions) {
  if (kind == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < partitions->cnt; ++i) {
      if (send_topic_ == partitions->elems[i].topic)
        book_.Assign(send_topic_, partitions->elems[i].partition);
      pv::log::Info("partition_assigned",
                    {{"topic", partitions->elems[i].topic}, {"partition", partitions->elems[i].partition}});
    }
    reapply_pause_ = true;  // new partitions start unpaused
    return;
  }
  std::set<std::int32_t> revoked;
  for (int i = 0; i < partitions->cnt; ++i) {
    if (send_topic_ == partitions->elems[i].topic) revoked.insert(partitions->elems[i].partition);
  }
  if (revoked.empty()) return;
  // Unclaimed work is dropped (the next owner takes it from the last stored offset); claimed work
  // that has not started is released; work past that point finishes here, within revoke_timeout,
  // so that its offsets are stored before the partition moves and the next owner sees `sent:` marks.
  AwaitExchange(false);  // its claims become ready work first
  ReleaseQueuedWork(&revoked);
  auto remaining = [&] {
    std::size_t n = 0;
    for (const auto& [id, job] : jobs_) n += revoked.count(job->partition);
    return n;
  };
  Clock::time_point start = Clock::now();
  Clock::time_point deadline = start + options_.revoke_timeout;
  while (remaining() > 0 && Clock::now() < deadline) {
    MoveDueWaits();
    StartDeliveries();
    std::chrono::milliseconds loop_wait = TurnTransfers();  // the started sends' answers come through it
    CollectInbox();
    ClaimAndSettle(false, Clock::now() >= start + options_.revoke_timeout / 2);
    RecordOutcomes();
    Sleep(std::min(20ms, loop_wait));
  }
  std::size_t left = remaining();
  for (std::int32_t p : revoked) {
    book_.Revoke(send_topic_, p);
    pv::log::Info("partition_revoked", {{"topic", send_topic_}, {"partition", p}});
  }
  if (left > 0) pv::log::Warn("revoke_unfinished", {{"jobs", static_cast<std::int64_t>(left)}});
}

}  // namespace pv::workers
