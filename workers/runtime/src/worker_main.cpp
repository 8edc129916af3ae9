#include "pv/workers/worker_main.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>

#include "pv/admin_server.hpp"
#include "pv/ids.hpp"
#include "pv/log.hpp"
#include "pv/redis_url.hpp"
#include "pv/service.hpp"
#include "pv/workers/providers/factory.hpp"
#include "pv/workers/providers/jwt.hpp"

namespace pv::workers {
namespace {

// worker.<channel>.X overrides workers.X.
class Settings {
 public:
  Settings(const Config& config, Channel channel)
      : config_(config), own_("worker." + std::string(ChannelTopicSuffix(channel)) + ".") {}

  std::int64_t Int(const std::string& name, std::int64_t def, std::int64_t min = INT64_MIN,
                   std::int64_t max = INT64_MAX) const {
    return config_.GetInt(own_ + name, config_.GetInt("workers." + name, def, min, max), min, max);
  }
  std::chrono::milliseconds Millis(const std::string& name, std::chrono::milliseconds def) const {
    return config_.GetMillis(own_ + name, config_.GetMillis("workers." + name, def));
  }
  double Double(const std::string& name, double def) const {
    return config_.GetDouble(own_ + name, config_.GetDouble("workers." + name, def));
  }
  std::string String(const std::string& name, const std::string& def) const {
    return config_.GetString(own_ + name, config_.GetString("workers." + name, def));
  }

 private:
  const Config& config_;
  std::string own_;
};

std::string DefaultWorkerId(Channel channel) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return fmt::format("{}-{}-{}-{}", ChannelTopicSuffix(channel), host, ::getpid(), RandomHex(3));
}

}  // namespace

WorkerOptions LoadWorkerOptions(const Config& config, Channel channel) {
  Settings s(config, channel);
  WorkerOptions o;
  o.channel = channel;
  o.worker_id = s.String("id", "");
  if (o.worker_id.empty()) o.worker_id = DefaultWorkerId(channel);
  o.kafka = kafka::LoadSettings(config);
  o.group_id = s.String("group_id", "pv-" + std::string(ChannelTopicSuffix(channel)) + "-worker");
  // Every default is WorkerOptions' (worker.hpp); max_buffered's and delivered_memory's follow the
  // settings read before them.
  o.max_in_flight = static_cast<int>(s.Int("max_in_flight", o.max_in_flight, 1, 100000));
  o.max_buffered = static_cast<int>(s.Int("max_buffered", o.Buffered(), 1, 10000000));
  o.claim_batch = static_cast<int>(s.Int("claim_batch", o.claim_batch, 1, 10000));
  o.outcome_linger_ms = static_cast<int>(s.Int("outcome_linger_ms", o.outcome_linger_ms, 0, 1000));
  o.delivered_memory = static_cast<int>(s.Int("delivered_memory", o.DeliveredMemory(), 1, 100000000));
  o.max_attempts = static_cast<int>(s.Int("max_attempts", o.max_attempts, 1, 1000));
  o.backoff.base = s.Millis("backoff_base_ms", o.backoff.base);
  o.backoff.max = s.Millis("backoff_max_ms", o.backoff.max);
  o.backoff.jitter = s.Double("backoff_jitter", o.backoff.jitter);
  o.fallback_after_attempts =
      static_cast<int>(s.Int("fallback_after_attempts", o.fallback_after_attempts, 0));
  o.circuit_failures = static_cast<int>(s.Int("circuit_failures", o.circuit_failures, 1));
  o.circuit_open = s.Millis("circuit_open_ms", o.circuit_open);
  o.rate_limit_max_wait = s.Millis("rate_limit_max_wait_ms", o.rate_limit_max_wait);
  o.drain_timeout = s.Millis("drain_timeout_ms", o.drain_timeout);
  o.revoke_timeout = s.Millis("revoke_timeout_ms", o.revoke_timeout);
  // The ladder's tiers are the dispatcher's: it is the one that consumes them.
  std::vector<std::string> tiers = config.GetList("dispatcher.delay_tiers", topics::DefaultDelayTiers());
  try {
    o.tiers = ladder::ParseTiers(tiers);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("dispatcher.delay_tiers: {}", e.what()));
  }
  return o;
}

RedisDedupeOptions LoadDedupeOptions(const Config& config, Channel channel, const std::string& worker_id) {
  Settings s(config, channel);
  RedisDedupeOptions o;
  o.redis.url = config.GetString("redis.url", "redis://127.0.0.1:6379");
  o.redis.timeout = s.Millis("redis_timeout_ms", o.redis.timeout);
  o.redis.reconnect_backoff = s.Millis("redis_reconnect_ms", o.redis.reconnect_backoff);
  // The worker's loop also drives its transfers: it must not stop for a Redis that does not answer.
  o.redis.connect_in_background = true;
  o.worker_id = worker_id;
  o.lease = s.Millis("claim_lease_ms", o.lease);
  o.sent_ttl = s.Millis("sent_ttl_ms", o.sent_ttl);
  RedisUrl url;
  std::string error;
  if (!ParseRedisUrl(o.redis.url, url, error)) throw ConfigError(fmt::format("redis.url: {}", error));
  return o;
}

int RunWorkerMain(Channel channel, int argc, char** argv) {
  service::BlockStopSignals();
  std::string suffix(ChannelTopicSuffix(channel));
  std::string name = suffix + "-worker";
  service::Args args;
  if (auto code =
          service::ParseArgs(argc, argv, name,
                             fmt::format("Delivers {} sends from pv.send.{}: claims each in Redis, sends it "
                                         "through its campaign's provider, records the outcome in pv.events "
                                         "(retries through the delay ladder, dead letters to pv.dlq.{}).",
                                         ChannelName(channel), suffix, suffix),
                             args)) {
    return *code;
  }
  // Signals first: every thread started afterwards (librdkafka's, libcurl's) inherits the mask.
  std::atomic<Worker*> running{nullptr};
  std::atomic<bool> stop{false};
  service::Signals signals([&] {
    stop.store(true);
    if (Worker* w = running.load()) w->Stop();
  });
  try {
    Config config = service::LoadConfig(args, name);
    WorkerOptions options = LoadWorkerOptions(config, channel);
    Settings s(config, channel);
    std::string admin_host = s.String("admin_host", "127.0.0.1");
    // 9111 email, 9112 sms, 9113 push (ingest has 9110).
    int admin_port = static_cast<int>(s.Int("admin_port", 9111 + static_cast<int>(channel), 0, 65535));
    CurlLoopOptions loop_options;
    loop_options.max_connections = static_cast<int>(s.Int("max_connections", 2 * options.max_in_flight, 1));
    loop_options.max_host_connections = static_cast<int>(s.Int("max_host_connections", 0, 0));
    // "worker" (default): the providers' transfers run on the worker's own loop, which saves two
    // thread hand-offs per send; "thread": on a thread of their own, the way before 2026-12-04, kept
    // as a fallback (no faster with a slow Redis: docs/performance.md "A far Redis, measured").
    std::string transfer_loop = s.String("transfer_loop", "worker");
    if (transfer_loop != "worker" && transfer_loop != "thread")
      throw ConfigError(fmt::format(
          "setting transfer_loop (worker.{}.transfer_loop or workers.transfer_loop) must be \"worker\" or "
          "\"thread\", not \"{}\"",
          ChannelTopicSuffix(channel), transfer_loop));
    loop_options.driven = transfer_loop == "worker";
    auto loop = std::make_unique<CurlLoop>(loop_options);
    if (loop_options.driven) options.transfer_loop = loop.get();
    auto loaded = providers::LoadProviders(config, channel, *loop);
    RedisDedupeOptions dedupe = LoadDedupeOptions(config, channel, options.worker_id);
    dedupe.rate_limits = loaded.rate_limits;
    if (args.print_config) {
      fmt::print("{}", config.Describe());
      return 0;
    }
    metrics::Registry registry;
    // However this scope ends (a Kafka error thrown from Run included): the signal handler forgets
    // the worker, then the transfer loop stops, then the worker and its providers (which the loop's
    // callbacks point into) are destroyed. The admin server, declared later, is gone before that.
    struct Teardown {
      std::atomic<Worker*>& running;
      CurlLoop& loop;
      std::unique_ptr<Worker> worker;
      ~Teardown() {
        running.store(nullptr);
        loop.Stop();
        worker.reset();
      }
    } teardown{running, *loop, nullptr};
    teardown.worker =
        std::make_unique<Worker>(std::move(options), std::make_unique<RedisDedupeStore>(std::move(dedupe)),
                                 std::move(loaded.providers), registry);
    Worker* w = teardown.worker.get();
    registry.AddCallbackGauge("pv_worker_consumer_lag", "Records in assigned partitions not yet consumed",
                              [w] { return w->ConsumerLag(); });
    AdminServer admin(registry, [w] { return w->NotReadyReason(); });
    int port = admin.Start(admin_host, admin_port);
    if (!args.port_file.empty()) service::WritePortFile(args.port_file, port);
    running.store(w);
    if (stop.load()) w->Stop();
    int rc = w->Run();
    admin.Stop();
    return rc;
  } catch (const ConfigError& e) {
    pv::log::Error("config_error", {{"error", e.what()}});
    return 2;
  } catch (const providers::KeyError& e) {
    pv::log::Error("config_error", {{"error", e.what()}});
    return 2;
  } catch (const std::exception& e) {
    pv::log::Error("fatal", {{"error", e.what()}});
    return 1;
  }
}

}  // namespace pv::workers
