// The ingest HTTP server: authenticates, validates, publishes to pv.triggers, and answers 204 only
// after the broker acknowledged every record of the request. See docs/api.md for the contract and
// docs/architecture.md for why each choice was made.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "pv/catalog.hpp"
#include "pv/config.hpp"
#include "pv/ingest/key_feed.hpp"
#include "pv/kafka.hpp"
#include "pv/keys.hpp"
#include "pv/metrics.hpp"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace pv::ingest {

struct IngestOptions {
  std::string host = "0.0.0.0";
  int port = 8080;  // 0: any free port (see IngestServer::port())
  // One thread serves one keep-alive connection at a time (cpp-httplib's model), so this bounds
  // the connections served concurrently; further ones wait in the accept queue.
  int threads = 128;
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds ack_timeout{5000};  // broker acknowledgement deadline (→ 503)
  int max_batch = 1000;
  int retry_after_seconds = 1;
  int keep_alive_max_requests = 100000;
  int keep_alive_timeout_seconds = 5;
  std::chrono::milliseconds reload_interval{1000};  // how often keys and catalog files are checked
  std::string catalog_dir = "catalog";
  std::string keys_file = "keys.yaml";
  std::string topic = "pv.triggers";
  // Compacted topic of key records published by pvctl; empty: keys come from keys_file only.
  std::string keys_topic = "pv.keys";
  // librdkafka producer defaults for ingest (kafka.properties overrides each).
  double linger_ms = 1.0;

  static IngestOptions FromConfig(const Config& config);
};

class IngestServer {
 public:
  // Loads the catalog and keys (throws CatalogError / KeyError) and creates the producer.
  IngestServer(IngestOptions options, const kafka::Settings& kafka_settings);
  ~IngestServer();
  IngestServer(const IngestServer&) = delete;
  IngestServer& operator=(const IngestServer&) = delete;

  // Binds the listening socket; returns the port. Throws std::runtime_error when it cannot bind.
  int Bind();
  // Serves until Stop(). Call Bind() first.
  void Run();
  // Graceful: stops accepting, lets in-flight requests finish, flushes the producer.
  void Stop();
  // Reloads catalog and keys from disk; keeps the old ones when the new ones are invalid.
  bool Reload();

  int port() const { return port_; }
  metrics::Registry& metrics() { return registry_; }

 private:
  enum class Route { kTrigger = 0, kBatch, kHealth, kReady, kMetrics, kOther, kCount };
  struct Handled;

  void HandleTrigger(const httplib::Request& req, httplib::Response& res, bool batch);
  void Finish(Route route, const httplib::Request& req, httplib::Response& res,
              std::chrono::steady_clock::time_point start);
  void WatchFiles();
  bool ReloadKeys();
  // Publishes keys_file's keys merged with the topic's (a topic record wins for the same id).
  void PublishKeys();
  bool ReloadCatalog();
  bool Ready();
  void StopOnce();

  IngestOptions options_;
  std::unique_ptr<kafka::Producer> producer_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = -1;
  int listen_fd_ = -1;

  std::atomic<std::shared_ptr<const Catalog>> catalog_;
  std::atomic<std::shared_ptr<const KeyStore>> keys_;
  std::mutex key_sources_mutex_;
  std::vector<ApiKey> file_keys_;
  std::vector<ApiKey> topic_keys_;
  std::unique_ptr<KeyFeed> key_feed_;
  std::mutex reload_mutex_;
  std::string keys_signature_;
  std::string catalog_signature_;

  std::atomic<bool> stopping_{false};
  std::once_flag stop_once_;
  std::thread watcher_;
  std::mutex watcher_mutex_;
  std::condition_variable watcher_cv_;

  std::mutex ready_mutex_;
  std::chrono::steady_clock::time_point ready_checked_{};
  bool ready_ = false;

  metrics::Registry registry_;
  metrics::Family<metrics::Counter>* requests_ = nullptr;
  metrics::Family<metrics::Histogram>* request_seconds_ = nullptr;
  metrics::Histogram* ack_seconds_ = nullptr;
  metrics::Gauge* in_flight_ = nullptr;
  metrics::Counter* published_ = nullptr;
  metrics::Counter* publish_failures_ = nullptr;
  metrics::Counter* reloads_ok_ = nullptr;
  metrics::Counter* reloads_failed_ = nullptr;
  // Resolved series by route and status class index (see server.cpp), filled lazily.
  std::atomic<metrics::Counter*> request_counters_[static_cast<int>(Route::kCount)][600] = {};
  metrics::Histogram* route_seconds_[static_cast<int>(Route::kCount)] = {};
};

}  // namespace pv::ingest
