// The ingest service: the trigger API on an event-driven front (http_front.hpp), and /healthz,
// /readyz, /metrics on a separate admin port. It authenticates, validates, publishes to
// pv.triggers, and answers 204 only after the broker acknowledged every record of the request:
// the delivery report completes the response, no thread waits for it. See docs/api.md for the
// contract and docs/architecture.md for why each choice was made.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "pv/admin_server.hpp"
#include "pv/campaign_feed.hpp"
#include "pv/catalog.hpp"
#include "pv/config.hpp"
#include "pv/ingest/http_front.hpp"
#include "pv/ingest/key_feed.hpp"
#include "pv/ingest/receipts.hpp"
#include "pv/ingest/status.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/metrics.hpp"

namespace pv::ingest {

struct IngestOptions {
  http::FrontOptions front;  // the public port: address, loops, every limit
  std::string admin_host = "127.0.0.1";
  int admin_port = 9110;  // /healthz, /readyz, /metrics; 0: any free port (admin_port())
  // SIGTERM: /readyz turns 503 at once, the API keeps serving this long so load balancers stop
  // sending, then the port closes and what is in flight finishes.
  std::chrono::milliseconds shutdown_delay{5000};
  std::chrono::milliseconds ack_timeout{5000};  // broker acknowledgement deadline (→ 503)
  int max_batch = 1000;
  int max_json_depth = 64;
  std::chrono::milliseconds reload_interval{1000};  // how often keys and catalog files are checked
  std::string catalog_dir = "catalog";
  std::string keys_file = "keys.yaml";
  std::string topic = "pv.triggers";
  // Compacted topic of key records published by pvctl; empty: keys come from keys_file only.
  std::string keys_topic = "pv.keys";
  // How long Run() holds the front back for keys_topic to be read to its end at start-up; after it,
  // the front serves and the API answers 503 until the topic is read.
  std::chrono::milliseconds keys_wait{10000};
  // Compacted topic of campaign records published by `pvctl campaigns apply` (campaigns_topic),
  // merged with catalog_dir: the newer version of a campaign wins. Empty: catalog_dir only.
  std::string campaigns_topic = "pv.campaigns";
  // How long a starting ingest waits to have read campaigns_topic before it serves
  // (campaigns_start_timeout_ms): a campaign that lives only on the topic would otherwise get 404
  // from a new replica for its first moments. Past it (broker down), it serves what it has.
  std::chrono::milliseconds campaigns_start_timeout{10000};
  // librdkafka producer defaults for ingest (kafka.properties overrides each).
  // 0: a record goes out as soon as the broker connection is free; batches still form under load
  // while earlier requests are in flight. A 204 waits for the broker, so lingering is pure latency
  // (docs/performance.md: 1 ms capped 64 connections at ~32k requests/s on the dev broker).
  double linger_ms = 0.0;
  // Provider receipts (receipts.hpp): their routes exist only for the providers configured here.
  receipts::ReceiptOptions receipts;
  // Trigger statuses (status.hpp): GET /api/client/triggers/:triggerId reads the status store
  // (status.redis_url, else the marks Redis, redis.url); with neither, or with status.enabled false,
  // the route is 404.
  StatusOptions status;

  static IngestOptions FromConfig(const Config& config);
};

class IngestServer final : public http::Handler {
 public:
  // Loads the catalog and keys (throws CatalogError / KeyError) and creates the producer.
  IngestServer(IngestOptions options, const kafka::Settings& kafka_settings);
  ~IngestServer() override;
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  // Binds the API and admin ports (throws std::runtime_error when it cannot); returns the API port.
  int Bind();
  // Serves until Stop() has finished. Call Bind() first.
  void Run();
  // Graceful, once (later callers wait for the first): unready, serve for shutdown_delay, close the
  // port, finish in-flight requests, flush the producer. Run() then returns.
  void Stop();
  // Reloads catalog and keys from disk; keeps the old ones when the new ones are invalid.
  bool Reload();

  // True once the producer hit a fatal error: Run() returned and the process should exit non-zero
  // so its supervisor restarts it (every request would otherwise get 503 for good).
  bool failed() const { return failed_.load(); }
  // The producer, for tests that inject its failures.
  kafka::Producer& producer() { return *producer_; }

  int port() const { return port_; }
  int admin_port() const { return admin_port_; }
  metrics::Registry& metrics() { return registry_; }

  // http::Handler: the API's routes.
  std::variant<http::Response, std::unique_ptr<http::Exchange>> OnHead(
      const http::RequestHead& head) override;
  std::string ErrorBody(std::string_view message) override;

  enum class Route { kTrigger = 0, kBatch, kStatus, kOther, kCount };
  // Counts a finished request and observes its duration (any thread).
  void Count(Route route, int status, std::chrono::steady_clock::time_point start);

 private:
  class TriggerExchange;
  class Publication;
  class StatusExchange;

  // GET /api/client/triggers/:triggerId up to the lookup (StatusExchange does the rest).
  std::variant<http::Response, std::unique_ptr<http::Exchange>> OnStatusHead(const http::RequestHead& head,
                                                                             std::string_view trigger_id);
  // The answer to a finished lookup, for the key's project `project` (any thread).
  http::Response StatusAnswer(StatusLookups::Result result, std::string_view trigger_id,
                              std::string_view project);

  // The steps of a request's head, in order; each returns the rejection that answers it, if any.
  // The body's steps (parse and validate, encode, publish) are TriggerExchange's.
  // The first steps of every API route: its method, the API keys read, then Authenticate.
  std::optional<http::Response> Admit(const http::RequestHead& head, std::string_view method,
                                      std::shared_ptr<const KeyStore>& keys, const ApiKey*& key) const;
  std::optional<http::Response> Authenticate(const http::RequestHead& head,
                                             std::shared_ptr<const KeyStore>& keys, const ApiKey*& key) const;
  std::optional<http::Response> ResolveCampaign(std::string_view campaign_id, const ApiKey& key,
                                                std::shared_ptr<const Catalog>& catalog,
                                                const Campaign*& campaign) const;
  static std::optional<http::Response> CheckBodyHeaders(const http::RequestHead& head,
                                                        std::optional<std::string>& idempotency_key);

  void StartFeeds(const kafka::Settings& kafka_settings);  // the keys and campaigns topics' readers
  void RegisterMetrics();
  void WatchFiles();
  // Re-reads `path` if it changed since `signature`: `load` reads, publishes, logs (throws: kept old).
  bool ReloadIfChanged(const std::string& path, std::string& signature, const char* failed_event,
                       const char* path_field, const std::function<void()>& load);
  bool ReloadKeys();
  // Publishes keys_file's keys merged with the topic's: the newest state of each key wins, from
  // either source (KeySupersedes); a deletion on the topic drops the key.
  void PublishKeys();
  bool ReloadCatalog();
  // Publishes catalog_dir's campaigns merged with the campaigns topic's (Catalog::Merge).
  void PublishCatalog();
  // Before serving: waits (until `start` + campaigns_start_timeout, or a stop) until the campaign
  // feed read the topic.
  void WaitForCampaigns(std::chrono::steady_clock::time_point start);
  void ProbeKafka();
  std::string NotReadyReason() const;
  std::string Health() const;
  void StopOnce();

  IngestOptions options_;
  metrics::Registry registry_;
  // Declared before the producer: destroyed after it, so no delivery report can reach a gone front.
  std::unique_ptr<http::HttpFront> front_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<receipts::ReceiptEndpoints> receipts_;  // before the producer, for the same reason
  std::unique_ptr<StatusLookups> status_;  // after the front: stopped (pending lookups answered) before it
  std::unique_ptr<kafka::Producer> producer_;
  size_t max_record_bytes_ = 0;
  int port_ = -1;
  int admin_port_ = -1;

  std::atomic<std::shared_ptr<const Catalog>> catalog_;
  std::atomic<std::shared_ptr<const KeyStore>> keys_;
  std::mutex key_sources_mutex_;
  std::vector<ApiKey> file_keys_;
  std::vector<ApiKey> topic_keys_;  // the newest state of each key on keys_topic, deletions included
  std::unique_ptr<KeyFeed> key_feed_;
  std::mutex catalog_sources_mutex_;
  std::shared_ptr<const Catalog> file_catalog_;  // the last good load of catalog_dir
  std::vector<TopicCampaign> topic_campaigns_;   // the newest state of each id on campaigns_topic
  std::unique_ptr<CampaignFeed> campaign_feed_;  // after what it updates: destroyed (stopped) first
  std::mutex reload_mutex_;
  std::string keys_signature_;
  std::string catalog_signature_;

  std::atomic<bool> serving_{false};   // the front accepts (readiness)
  std::atomic<bool> draining_{false};  // SIGTERM received (readiness)
  std::atomic<bool> kafka_reachable_{false};
  std::atomic<bool> failed_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> keys_current_{false};  // keys_topic read to its end once (or no keys_topic)
  std::once_flag stop_once_;
  std::thread watcher_;
  std::mutex watcher_mutex_;
  std::condition_variable watcher_cv_;
  std::mutex run_mutex_;
  std::condition_variable run_cv_;
  bool stopped_ = false;

  metrics::Family<metrics::Counter>* requests_ = nullptr;
  metrics::Histogram* ack_seconds_ = nullptr;
  metrics::Gauge* in_flight_ = nullptr;
  metrics::Counter* published_ = nullptr;
  metrics::Counter* publish_failures_ = nullptr;
  metrics::Counter* reloads_ok_ = nullptr;
  metrics::Counter* reloads_failed_ = nullptr;
  metrics::Family<metrics::Counter>* status_lookups_ = nullptr;  // {result}
  // Resolved series by route and status, filled lazily (statuses 100..599).
  std::atomic<metrics::Counter*> request_counters_[static_cast<int>(Route::kCount)][600] = {};
  metrics::Histogram* route_seconds_[static_cast<int>(Route::kCount)] = {};
};

}  // namespace pv::ingest
