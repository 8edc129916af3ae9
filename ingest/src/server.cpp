#include "pv/ingest/server.hpp"

#include <fmt/format.h>
#include <httplib.h>
#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "pv/ids.hpp"
#include "pv/ingest/trigger.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/validate.hpp"

namespace pv::ingest {
namespace {

constexpr const char* kJson = "application/json";

std::string RouteName(int route) {
  static const char* kNames[] = {"trigger", "trigger_batch", "healthz", "readyz", "metrics", "other"};
  return kNames[route];
}

// mtime and size of every file under a path: cheap to compute each second, changes on every edit.
std::string Signature(const std::string& path) {
  namespace fs = std::filesystem;
  std::string out;
  std::error_code ec;
  auto add = [&out](const fs::path& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) {
      out += fmt::format("{}:{}.{}:{};", p.string(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec, st.st_size);
    }
  };
  if (fs::is_directory(path, ec)) {
    for (auto it = fs::recursive_directory_iterator(path, ec); it != fs::recursive_directory_iterator();
         ++it) {
      if (it->is_regular_file()) add(it->path());
    }
  } else {
    add(path);
  }
  return out;
}

void SendError(httplib::Response& res, int status, std::string_view message,
               const std::vector<FieldError>& errors = {}) {
  res.status = status;
  res.set_content(ErrorBody(message, errors), kJson);
}

bool IsJsonContentType(const std::string& value) {
  // "application/json" optionally followed by parameters ("; charset=utf-8"); case-insensitive type.
  std::string_view v(value);
  size_t semi = v.find(';');
  std::string_view type = v.substr(0, semi);
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  if (type.size() != 16) return false;
  for (size_t i = 0; i < type.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(type[i])) != "application/json"[i]) return false;
  }
  return true;
}

}  // namespace

IngestOptions IngestOptions::FromConfig(const Config& config) {
  IngestOptions o;
  o.host = config.GetString("ingest.host", o.host);
  o.port = static_cast<int>(config.GetInt("ingest.port", o.port, 0, 65535));
  o.threads = static_cast<int>(config.GetInt("ingest.threads", o.threads, 1, 4096));
  o.max_body_bytes = static_cast<size_t>(
      config.GetInt("ingest.max_body_bytes", static_cast<std::int64_t>(o.max_body_bytes), 1024));
  o.ack_timeout = config.GetMillis("ingest.ack_timeout_ms", o.ack_timeout);
  if (o.ack_timeout.count() < 1) throw ConfigError("setting ingest.ack_timeout_ms must be at least 1");
  o.max_batch = static_cast<int>(config.GetInt("ingest.max_batch", o.max_batch, 1, 100000));
  o.retry_after_seconds =
      static_cast<int>(config.GetInt("ingest.retry_after_seconds", o.retry_after_seconds, 0, 3600));
  o.keep_alive_max_requests =
      static_cast<int>(config.GetInt("ingest.keep_alive_max_requests", o.keep_alive_max_requests, 1));
  o.keep_alive_timeout_seconds = static_cast<int>(
      config.GetInt("ingest.keep_alive_timeout_seconds", o.keep_alive_timeout_seconds, 1, 3600));
  o.reload_interval = config.GetMillis("ingest.reload_interval_ms", o.reload_interval);
  o.catalog_dir = config.GetString("catalog_dir", o.catalog_dir);
  o.keys_file = config.GetString("keys_file", o.keys_file);
  o.topic = config.GetString("ingest.topic", o.topic);
  o.keys_topic = config.GetString("ingest.keys_topic", o.keys_topic);
  o.linger_ms = config.GetDouble("ingest.linger_ms", o.linger_ms);
  if (o.linger_ms < 0 || o.linger_ms > 1000)
    throw ConfigError("setting ingest.linger_ms must be within [0, 1000]");
  return o;
}

IngestServer::IngestServer(IngestOptions options, const kafka::Settings& kafka_settings)
    : options_(std::move(options)) {
  validate::WarmUpTimeZones();
  catalog_.store(Catalog::LoadDirectory(options_.catalog_dir));
  file_keys_ = KeyStore::LoadFile(options_.keys_file)->keys();
  keys_.store(KeyStore::FromKeys(file_keys_));
  catalog_signature_ = Signature(options_.catalog_dir);
  keys_signature_ = Signature(options_.keys_file);
  log::Info("catalog_loaded", {{"dir", options_.catalog_dir}, {"campaigns", catalog_.load()->size()}});
  log::Info("keys_loaded", {{"file", options_.keys_file}, {"keys", file_keys_.size()}});

  kafka::ProducerOptions producer_options;
  producer_options.client_id = "pv-ingest";
  producer_options.defaults = {
      // librdkafka fails a record it could not deliver by this deadline, so every produced record
      // gets its report by then and a request never waits longer than ack_timeout.
      {"message.timeout.ms", std::to_string(options_.ack_timeout.count())},
      {"linger.ms", fmt::format("{}", options_.linger_ms)},
      {"socket.nagle.disable", "true"},
  };
  producer_ = std::make_unique<kafka::Producer>(kafka_settings, producer_options);
  if (!options_.keys_topic.empty()) {
    key_feed_ = std::make_unique<KeyFeed>(
        kafka_settings, options_.keys_topic, [this](const std::vector<ApiKey>& keys) {
          {
            std::lock_guard lock(key_sources_mutex_);
            topic_keys_ = keys;
          }
          PublishKeys();
          log::Info("keys_updated_from_topic", {{"topic", options_.keys_topic}, {"keys", keys.size()}});
        });
  }

  requests_ = &registry_.AddCounter("pv_ingest_requests_total", "HTTP requests by route and status",
                                    {"route", "status"});
  request_seconds_ =
      &registry_.AddHistogram("pv_ingest_request_duration_seconds", "HTTP request latency by route",
                              {"route"}, metrics::LatencyBuckets());
  ack_seconds_ =
      &registry_
           .AddHistogram("pv_ingest_broker_ack_duration_seconds",
                         "Time from produce to the broker's acknowledgement of a request's records", {},
                         metrics::LatencyBuckets())
           .Get();
  in_flight_ = &registry_.AddGauge("pv_ingest_in_flight_requests", "HTTP requests being served").Get();
  published_ =
      &registry_.AddCounter("pv_ingest_triggers_published_total", "Triggers acknowledged by the broker")
           .Get();
  publish_failures_ = &registry_
                           .AddCounter("pv_ingest_publish_failures_total",
                                       "Requests answered 503 because the broker did not acknowledge in time")
                           .Get();
  auto& reloads =
      registry_.AddCounter("pv_ingest_reloads_total", "Catalog and key reloads by result", {"result"});
  reloads_ok_ = &reloads.With({"ok"});
  reloads_failed_ = &reloads.With({"failed"});
  registry_.AddCallbackGauge("pv_ingest_producer_queue_depth", "Records in the producer's queue or in flight",
                             [this] { return static_cast<double>(producer_->QueueLength()); });
  for (int r = 0; r < static_cast<int>(Route::kCount); ++r)
    route_seconds_[r] = &request_seconds_->With({RouteName(r)});

  http_ = std::make_unique<httplib::Server>();
  int threads = options_.threads;
  http_->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  http_->set_tcp_nodelay(true);
  // cpp-httplib listens with a backlog of 5 (a compile-time constant of the Debian build): 64 clients
  // connecting at once overflow it and wait a 1 s SYN retransmit. Keep the listening socket's fd
  // (this callback sees it before bind) to listen again with a real backlog in Bind().
  http_->set_socket_options([this](int fd) {
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listen_fd_ = fd;
  });
  http_->set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_max_requests));
  http_->set_keep_alive_timeout(options_.keep_alive_timeout_seconds);
  // Bodies over the limit get 413 from cpp-httplib before they are read (Content-Length checked
  // first; chunked bodies stop at the limit).
  http_->set_payload_max_length(options_.max_body_bytes);
  http_->set_read_timeout(10, 0);
  http_->set_write_timeout(10, 0);

  http_->Post(R"(/api/client/campaigns/([^/]+)/trigger)",
              [this](const httplib::Request& req, httplib::Response& res) {
                auto start = std::chrono::steady_clock::now();
                HandleTrigger(req, res, false);
                Finish(Route::kTrigger, req, res, start);
              });
  http_->Post(R"(/api/client/campaigns/([^/]+)/trigger/batch)",
              [this](const httplib::Request& req, httplib::Response& res) {
                auto start = std::chrono::steady_clock::now();
                HandleTrigger(req, res, true);
                Finish(Route::kBatch, req, res, start);
              });
  http_->Get("/healthz", [this](const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    res.set_content(R"({"status":"ok"})", kJson);
    Finish(Route::kHealth, req, res, start);
  });
  http_->Get("/readyz", [this](const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    if (Ready() && !stopping_.load()) {
      res.set_content(R"({"status":"ready"})", kJson);
    } else {
      res.status = 503;
      res.set_content(stopping_.load() ? R"({"status":"stopping"})" : R"({"status":"kafka unreachable"})",
                      kJson);
    }
    Finish(Route::kReady, req, res, start);
  });
  http_->Get("/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    auto start = std::chrono::steady_clock::now();
    res.set_content(registry_.Render(), "text/plain; version=0.0.4");
    Finish(Route::kMetrics, req, res, start);
  });
  // Everything else: a JSON 404/405 in our error shape rather than cpp-httplib's empty body.
  http_->set_error_handler([](const httplib::Request& /*req*/, httplib::Response& res) {
    if (!res.body.empty()) return;
    const char* message = res.status == 404   ? "no such endpoint"
                          : res.status == 413 ? "request body too large"
                          : res.status == 405 ? "method not allowed"
                                              : "request error";
    res.set_content(ErrorBody(message), kJson);
  });
  // 413s never reach a handler: count them here so /metrics shows them.
  http_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    if (res.status == 413 || res.status == 404 || res.status == 405) {
      requests_->With({"other", std::to_string(res.status)}).Inc();
      (void)req;
    }
  });
}

IngestServer::~IngestServer() {
  Stop();
  if (watcher_.joinable()) watcher_.join();
}

int IngestServer::Bind() {
  if (options_.port == 0) {
    port_ = http_->bind_to_any_port(options_.host.c_str());
  } else {
    port_ = http_->bind_to_port(options_.host.c_str(), options_.port) ? options_.port : -1;
  }
  if (port_ < 0) {
    throw std::runtime_error(fmt::format("cannot listen on {}:{}", options_.host, options_.port));
  }
  // Linux lets listen() be called again to change the backlog of a listening socket.
  if (listen_fd_ >= 0 && ::listen(listen_fd_, SOMAXCONN) != 0) {
    log::Warn("listen_backlog_not_raised", {{"error", std::strerror(errno)}});
  }
  watcher_ = std::thread([this] { WatchFiles(); });
  return port_;
}

void IngestServer::Run() {
  log::Info("listening", {{"host", options_.host}, {"port", port_}, {"threads", options_.threads}});
  http_->listen_after_bind();
}

void IngestServer::Stop() {
  // call_once: a second caller (main after Run returned, while the signal thread is still
  // flushing) waits for the first to finish before the server may be destroyed.
  std::call_once(stop_once_, [this] { StopOnce(); });
}

void IngestServer::StopOnce() {
  stopping_.store(true);
  log::Info("stopping", {{"in_flight", static_cast<std::int64_t>(in_flight_->Value())}});
  {
    std::lock_guard lock(watcher_mutex_);
    watcher_cv_.notify_all();
  }
  // cpp-httplib's stop closes the listening socket; connections finish the request they are
  // serving and close, and the pool joins them. Then every acknowledged record is flushed.
  http_->stop();
  key_feed_.reset();
  int left = producer_->Flush(options_.ack_timeout + std::chrono::seconds(1));
  log::Info("stopped", {{"unflushed_records", left}});
}

bool IngestServer::Ready() {
  std::lock_guard lock(ready_mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - ready_checked_ > std::chrono::seconds(1)) {
    ready_ = producer_->BrokersReachable(std::chrono::milliseconds(1000));
    ready_checked_ = std::chrono::steady_clock::now();
  }
  return ready_;
}

bool IngestServer::ReloadKeys() {
  std::string signature = Signature(options_.keys_file);
  if (signature == keys_signature_) return true;
  try {
    auto keys = KeyStore::LoadFile(options_.keys_file);
    {
      std::lock_guard lock(key_sources_mutex_);
      file_keys_ = keys->keys();
    }
    PublishKeys();
    keys_signature_ = signature;
    reloads_ok_->Inc();
    log::Info("keys_reloaded", {{"file", options_.keys_file}, {"keys", keys->keys().size()}});
    return true;
  } catch (const std::exception& e) {
    keys_signature_ = signature;  // report a bad file once, not every second
    reloads_failed_->Inc();
    log::Error("keys_reload_failed", {{"file", options_.keys_file}, {"error", e.what()}});
    return false;
  }
}

void IngestServer::PublishKeys() {
  std::lock_guard lock(key_sources_mutex_);
  std::vector<ApiKey> all = file_keys_;
  all.insert(all.end(), topic_keys_.begin(), topic_keys_.end());
  keys_.store(KeyStore::FromKeys(all));
}

bool IngestServer::ReloadCatalog() {
  std::string signature = Signature(options_.catalog_dir);
  if (signature == catalog_signature_) return true;
  try {
    auto catalog = Catalog::LoadDirectory(options_.catalog_dir);
    catalog_.store(catalog);
    catalog_signature_ = signature;
    reloads_ok_->Inc();
    log::Info("catalog_reloaded", {{"dir", options_.catalog_dir}, {"campaigns", catalog->size()}});
    return true;
  } catch (const std::exception& e) {
    catalog_signature_ = signature;
    reloads_failed_->Inc();
    log::Error("catalog_reload_failed", {{"dir", options_.catalog_dir}, {"error", e.what()}});
    return false;
  }
}

bool IngestServer::Reload() {
  std::lock_guard lock(reload_mutex_);
  // Forget the signatures so SIGHUP always re-reads, even when mtimes did not change.
  keys_signature_.clear();
  catalog_signature_.clear();
  bool keys_ok = ReloadKeys();
  bool catalog_ok = ReloadCatalog();
  return keys_ok && catalog_ok;
}

void IngestServer::WatchFiles() {
  std::unique_lock lock(watcher_mutex_);
  while (!stopping_.load()) {
    watcher_cv_.wait_for(lock, options_.reload_interval);
    if (stopping_.load()) break;
    std::lock_guard reload_lock(reload_mutex_);
    ReloadKeys();
    ReloadCatalog();
  }
}

void IngestServer::Finish(Route route, const httplib::Request& /*req*/, httplib::Response& res,
                          std::chrono::steady_clock::time_point start) {
  int r = static_cast<int>(route);
  int status = res.status < 0 || res.status >= 600 ? 599 : res.status;
  auto& slot = request_counters_[r][status];
  metrics::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_->With({RouteName(r), std::to_string(status)});
    slot.store(counter, std::memory_order_release);
  }
  counter->Inc();
  route_seconds_[r]->Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void IngestServer::HandleTrigger(const httplib::Request& req, httplib::Response& res, bool batch) {
  in_flight_->Add(1);
  struct InFlight {
    metrics::Gauge* g;
    ~InFlight() { g->Add(-1); }
  } in_flight_guard{in_flight_};

  if (stopping_.load(std::memory_order_relaxed)) {
    res.set_header("Retry-After", std::to_string(options_.retry_after_seconds));
    return SendError(res, 503, "server is shutting down; retry");
  }

  // --- authentication (401 / 403) ---
  const std::string& auth = req.get_header_value("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.empty()) {
    res.set_header("WWW-Authenticate", "Bearer");
    return SendError(res, 401, "missing Authorization header (expected: Bearer sk_...)");
  }
  if (auth.size() <= kBearer.size() || std::string_view(auth).substr(0, kBearer.size()) != kBearer ||
      !LooksLikeKey(std::string_view(auth).substr(kBearer.size()))) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return SendError(res, 401, "malformed Authorization header (expected: Bearer sk_...)");
  }
  std::string_view token = std::string_view(auth).substr(kBearer.size());
  // A client sends the same key on every request of a connection, and a connection stays on one
  // thread: remembering the last key's hash per thread saves a SHA-256 per request.
  thread_local std::string last_token;
  thread_local std::string last_hash;
  if (token != last_token) {
    last_hash = HashKey(token);
    last_token.assign(token);
  }
  std::shared_ptr<const KeyStore> keys = keys_.load();
  KeyStore::Match match = keys->AuthenticateHash(last_hash);
  if (match.result != KeyStore::Result::kOk) {
    res.set_header("WWW-Authenticate", "Bearer error=\"invalid_token\"");
    return SendError(
        res, 401,
        match.result == KeyStore::Result::kRevoked ? "API key has been revoked" : "unknown API key");
  }
  const ApiKey& key = *match.key;
  if (key.scope != KeyScope::kSecret) {
    return SendError(res, 403, "a public (pk_) key cannot trigger campaigns; use a secret (sk_) key");
  }

  // --- campaign (404 / 409) ---
  const std::string campaign_id = req.matches[1].str();
  std::shared_ptr<const Catalog> catalog = catalog_.load();
  const Campaign* campaign = catalog->Find(campaign_id);
  if (campaign == nullptr || campaign->deleted || campaign->project != key.project) {
    // Another project's campaign is indistinguishable from a missing one: no probing across projects.
    return SendError(res, 404, fmt::format("campaign {} not found", campaign_id));
  }
  if (!campaign->enabled) return SendError(res, 409, fmt::format("campaign {} is disabled", campaign_id));

  // --- body (415 / 400 / 422) ---
  if (!IsJsonContentType(req.get_header_value("Content-Type"))) {
    return SendError(res, 415, "Content-Type must be application/json");
  }
  auto idempotency_header = req.headers.find("Idempotency-Key");
  const std::string empty;
  const std::string& idempotency_key =
      idempotency_header == req.headers.end() ? empty : idempotency_header->second;
  if (idempotency_header != req.headers.end() &&
      (idempotency_key.empty() || idempotency_key.size() > kMaxIdempotencyKeyBytes)) {
    return SendError(res, 422, fmt::format("Idempotency-Key must be 1 to {} bytes", kMaxIdempotencyKeyBytes),
                     {{"header:Idempotency-Key", "Idempotency-Key must be 1 to 255 bytes"}});
  }
  // Parse into a per-thread buffer: RapidJSON's default pool would malloc (and free) a 64 KiB chunk
  // per request, which showed up as malloc_consolidate in profiles. Larger bodies spill to the heap.
  thread_local char parse_buffer[32 * 1024];
  rapidjson::MemoryPoolAllocator<> allocator(parse_buffer, sizeof(parse_buffer));
  rapidjson::Document doc(&allocator);
  doc.Parse(req.body.data(), req.body.size());
  if (doc.HasParseError()) {
    return SendError(res, 400,
                     fmt::format("invalid JSON at offset {}: {}", doc.GetErrorOffset(),
                                 rapidjson::GetParseError_En(doc.GetParseError())));
  }

  std::vector<const rapidjson::Value*> items;
  std::vector<FieldError> errors;
  if (!batch) {
    ValidateTrigger(doc, campaign->channel, "", errors);
    items.push_back(&doc);
  } else {
    const rapidjson::Value* list = doc.IsObject() ? FindMember(doc, "triggers") : nullptr;
    if (!doc.IsObject()) {
      errors.push_back({"", "the body must be a JSON object with a triggers list"});
    } else if (list == nullptr || !list->IsArray()) {
      errors.push_back({"/triggers", "triggers is required and must be a list"});
    } else if (list->Empty()) {
      errors.push_back({"/triggers", "triggers must not be empty"});
    } else if (list->Size() > static_cast<rapidjson::SizeType>(options_.max_batch)) {
      errors.push_back({"/triggers", fmt::format("triggers has {} items; at most {} are allowed",
                                                 list->Size(), options_.max_batch)});
    } else {
      for (const auto& member : doc.GetObject()) {
        if (AsStringView(member.name) != "triggers") {
          errors.push_back(
              {"/" + std::string(AsStringView(member.name)),
               fmt::format("{} is not a known field (expected triggers)", AsStringView(member.name))});
        }
      }
      for (rapidjson::SizeType i = 0; i < list->Size(); ++i) {
        ValidateTrigger((*list)[i], campaign->channel, fmt::format("/triggers/{}", i), errors);
        items.push_back(&(*list)[i]);
      }
    }
  }
  if (!errors.empty()) return SendError(res, 422, errors.front().message, errors);

  // --- publish, then wait for the broker's acknowledgement of every record (204 / 503) ---
  const std::string received_at = FormatTimestamp(std::chrono::system_clock::now());
  auto group = std::make_shared<kafka::DeliveryGroup>(static_cast<int>(items.size()));
  auto produce_start = std::chrono::steady_clock::now();
  std::string first_trigger_id;
  for (size_t i = 0; i < items.size(); ++i) {
    std::string trigger_id =
        idempotency_key.empty()
            ? NewTriggerId()
            : DerivedTriggerId(key.project, campaign_id, idempotency_key, batch ? static_cast<int>(i) : -1);
    if (i == 0) first_trigger_id = trigger_id;
    std::string record = BuildTriggerRecord(*items[i], trigger_id, key.project, campaign_id, received_at);
    std::string_view external_id = AsStringView((*items[i])["user"]["external_id"]);
    kafka::Header headers[] = {{"pv-trigger-id", trigger_id}};
    rd_kafka_resp_err_t err = producer_->Produce(options_.topic, external_id, record, headers, group);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not enqueued (local queue full, or a fatal producer state): this record and the rest of
      // the batch are abandoned. Records already enqueued may still be delivered; a client that
      // retries with an Idempotency-Key gets the same trigger ids, so the workers send them once.
      group->Abandon(static_cast<int>(items.size() - i), err);
      break;
    }
  }
  auto deadline = produce_start + options_.ack_timeout + std::chrono::seconds(1);
  bool reported = group->Wait(deadline);
  rd_kafka_resp_err_t err = reported ? group->first_error() : RD_KAFKA_RESP_ERR__TIMED_OUT;
  ack_seconds_->Observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - produce_start).count());
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    publish_failures_->Inc();
    log::Warn("publish_failed", {{"campaign_id", campaign_id},
                                 {"records", items.size()},
                                 {"error", rd_kafka_err2name(err)},
                                 {"message", rd_kafka_err2str(err)}});
    res.set_header("Retry-After", std::to_string(options_.retry_after_seconds));
    const char* why = err == RD_KAFKA_RESP_ERR__QUEUE_FULL
                          ? "ingest is overloaded (producer queue full); retry"
                          : "the message broker did not acknowledge in time; retry";
    return SendError(res, 503, why);
  }
  published_->Inc(static_cast<double>(items.size()));
  if (!batch) res.set_header("X-Trigger-Id", first_trigger_id);
  res.status = 204;
}

}  // namespace pv::ingest
