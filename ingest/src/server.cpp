#include "pv/ingest/server.hpp"

#include <fmt/format.h>
#include <rapidjson/document.h>
#include <sys/stat.h>

#include <filesystem>

#include "publication.hpp"
#include "pv/ids.hpp"
#include "pv/ingest/trigger.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/produce_errors.hpp"
#include "pv/status_store.hpp"
#include "pv/strings.hpp"
#include "pv/validate.hpp"

namespace pv::ingest {
namespace {

using Clock = std::chrono::steady_clock;

const char* RouteName(int route) {
  static const char* kNames[] = {"trigger", "trigger_batch", "status", "other"};
  return kNames[route];
}

// mtime and size of every file under a path: cheap to compute each second, changes on every edit.
// Never throws: an unreadable or vanishing entry (a ConfigMap swap) is simply left out.
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
    fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      std::error_code file_ec;
      if (it->is_regular_file(file_ec)) add(it->path());
    }
    if (ec) out += fmt::format("!{}", ec.message());
  } else {
    add(path);
  }
  return out;
}

// "/api/client/campaigns/<id>/trigger[/batch]" (a query string is ignored).
bool MatchRoute(std::string_view target, IngestServer::Route& route, std::string_view& campaign_id) {
  std::string_view path = target.substr(0, target.find('?'));
  constexpr std::string_view kPrefix = "/api/client/campaigns/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  path.remove_prefix(kPrefix.size());
  size_t slash = path.find('/');
  if (slash == 0 || slash == std::string_view::npos) return false;
  campaign_id = path.substr(0, slash);
  std::string_view rest = path.substr(slash);
  if (rest != "/trigger" && rest != "/trigger/batch") return false;
  route = rest == "/trigger" ? IngestServer::Route::kTrigger : IngestServer::Route::kBatch;
  return true;
}

// "/api/client/triggers/<id>" (a query string is ignored); `trigger_id` is everything after the
// prefix, checked later (ValidStatusId). False for any other path.
bool MatchStatusRoute(std::string_view target, std::string_view& trigger_id) {
  std::string_view path = target.substr(0, target.find('?'));
  constexpr std::string_view kPrefix = "/api/client/triggers/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return false;
  trigger_id = path.substr(kPrefix.size());
  return true;
}

}  // namespace

IngestOptions IngestOptions::FromConfig(const Config& config) {
  IngestOptions o;
  http::FrontOptions& f = o.front;
  f.host = config.GetString("ingest.host", f.host);
  f.port = static_cast<int>(config.GetInt("ingest.port", f.port, 0, 65535));
  f.threads = static_cast<int>(config.GetInt("ingest.threads", f.threads, 0, 256));
  // A count or size: at least `min`, at most `max`.
  auto limit = [&config](const char* name, size_t& field, std::int64_t min, std::int64_t max = INT64_MAX) {
    field = static_cast<size_t>(config.GetInt(name, static_cast<std::int64_t>(field), min, max));
  };
  limit("ingest.max_connections", f.max_connections, 1);
  f.header_timeout = config.GetMillis("ingest.header_timeout_ms", f.header_timeout);
  f.body_timeout = config.GetMillis("ingest.body_timeout_ms", f.body_timeout);
  f.write_timeout = config.GetMillis("ingest.write_timeout_ms", f.write_timeout);
  f.idle_timeout = std::chrono::seconds(config.GetInt("ingest.keep_alive_timeout_seconds", 5, 1, 3600));
  limit("ingest.max_header_bytes", f.max_header_bytes, 1024, 1 << 20);
  limit("ingest.max_header_count", f.max_header_count, 8, 10000);
  limit("ingest.max_uri_bytes", f.max_uri_bytes, 64, 1 << 20);
  limit("ingest.max_body_bytes", f.max_body_bytes, 1024, 64 << 20);
  limit("ingest.max_pending_body_bytes", f.max_pending_body_bytes, 1 << 20);
  limit("ingest.keep_alive_max_requests", f.keep_alive_max_requests, 1);
  f.retry_after_seconds =
      static_cast<int>(config.GetInt("ingest.retry_after_seconds", f.retry_after_seconds, 0, 3600));
  for (auto [name, value] : {std::pair{"ingest.header_timeout_ms", f.header_timeout},
                             std::pair{"ingest.body_timeout_ms", f.body_timeout},
                             std::pair{"ingest.write_timeout_ms", f.write_timeout}}) {
    if (value.count() < 100) throw ConfigError(fmt::format("setting {} must be at least 100", name));
  }
  if (f.max_pending_body_bytes < f.max_body_bytes) {
    throw ConfigError("setting ingest.max_pending_body_bytes must be at least ingest.max_body_bytes");
  }

  o.admin_host = config.GetString("ingest.admin_host", o.admin_host);
  o.admin_port = static_cast<int>(config.GetInt("ingest.admin_port", o.admin_port, 0, 65535));
  o.shutdown_delay = config.GetMillis("ingest.shutdown_delay_ms", o.shutdown_delay);
  o.ack_timeout = config.GetMillis("ingest.ack_timeout_ms", o.ack_timeout);
  if (o.ack_timeout.count() < 1) throw ConfigError("setting ingest.ack_timeout_ms must be at least 1");
  o.max_batch = static_cast<int>(config.GetInt("ingest.max_batch", o.max_batch, 1, 100000));
  o.max_json_depth = static_cast<int>(config.GetInt("ingest.max_json_depth", o.max_json_depth, 4, 1000));
  o.reload_interval = config.GetMillis("ingest.reload_interval_ms", o.reload_interval);
  o.catalog_dir = config.GetString("catalog_dir", o.catalog_dir);
  o.keys_file = config.GetString("keys_file", o.keys_file);
  o.topic = config.GetString("ingest.topic", o.topic);
  o.keys_topic = config.GetString("ingest.keys_topic", o.keys_topic);
  o.keys_wait = config.GetMillis("ingest.keys_wait_ms", o.keys_wait);
  o.campaigns_topic = config.GetString("campaigns_topic", o.campaigns_topic);
  o.campaigns_start_timeout = config.GetMillis("campaigns_start_timeout_ms", o.campaigns_start_timeout);
  o.linger_ms = config.GetDouble("ingest.linger_ms", o.linger_ms);
  if (o.linger_ms < 0 || o.linger_ms > 1000)
    throw ConfigError("setting ingest.linger_ms must be within [0, 1000]");
  o.receipts = receipts::ReceiptOptions::FromConfig(config);
  o.status = StatusOptions::FromConfig(config);
  return o;
}

// ---- one request, from its accepted head to the broker's report ----

// One request's records on their way to the broker; the last report answers the client.
class IngestServer::Publication final : public CountedPublication {
 public:
  Publication(IngestServer& server, Route route, Clock::time_point start, int records, std::string trigger_id,
              http::Responder responder)
      : CountedPublication(records),
        server_(server),
        route_(route),
        start_(start),
        produce_start_(Clock::now()),
        records_(records),
        trigger_id_(std::move(trigger_id)),
        responder_(std::move(responder)) {}

 private:
  void Finish(rd_kafka_resp_err_t err) override {
    IngestServer& s = server_;
    s.ack_seconds_->Observe(std::chrono::duration<double>(Clock::now() - produce_start_).count());
    s.in_flight_->Add(-1);
    http::Response response;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      s.published_->Inc(static_cast<double>(records_));
      if (route_ == Route::kTrigger) response.headers.emplace_back("X-Trigger-Id", std::move(trigger_id_));
    } else if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
      // Never a 503: a client would retry a record the broker can never take forever.
      response = Error(413, "a trigger is larger than the broker accepts");
    } else {
      s.publish_failures_->Inc();
      log::Warn(
          "publish_failed",
          {{"records", records_}, {"error", rd_kafka_err2name(err)}, {"message", rd_kafka_err2str(err)}});
      response = Unavailable(err == RD_KAFKA_RESP_ERR__QUEUE_FULL
                                 ? "ingest is overloaded (producer queue full); retry"
                                 : "the message broker did not acknowledge in time; retry",
                             s.options_.front.retry_after_seconds);
    }
    s.Count(route_, response.status, start_);
    responder_.Send(std::move(response));
  }

  IngestServer& server_;
  Route route_;
  Clock::time_point start_;
  Clock::time_point produce_start_;
  int records_;
  std::string trigger_id_;
  http::Responder responder_;
};

// A trigger request whose head passed authentication, campaign and header checks: what the body
// step needs from them.
class IngestServer::TriggerExchange final : public http::Exchange {
 public:
  TriggerExchange(IngestServer& server, Route route, Clock::time_point start, std::string project,
                  std::string campaign_id, Channel channel, std::optional<std::string> idempotency_key)
      : server_(server),
        route_(route),
        start_(start),
        project_(std::move(project)),
        campaign_id_(std::move(campaign_id)),
        channel_(channel),
        idempotency_key_(std::move(idempotency_key)) {
    server_.in_flight_->Add(1);
  }
  // A request whose body never came (deadline, disconnect) leaves without OnBody: it is no longer
  // in flight. Once OnBody ran, the answer (Answer or the Publication) takes it off.
  ~TriggerExchange() override {
    if (!body_seen_) server_.in_flight_->Add(-1);
  }
  TriggerExchange(const TriggerExchange&) = delete;
  TriggerExchange& operator=(const TriggerExchange&) = delete;

  void OnBody(std::string body, http::Responder responder) override {
    body_seen_ = true;
    // Parse into a per-thread buffer: RapidJSON's default pool would malloc (and free) a 64 KiB
    // chunk per request. Larger bodies spill to the heap. Loop threads are few and fixed.
    thread_local char parse_buffer[32 * 1024];
    rapidjson::MemoryPoolAllocator<> allocator(parse_buffer, sizeof(parse_buffer));
    rapidjson::Document doc(&allocator);
    std::vector<const rapidjson::Value*> items;
    if (auto rejection = ParseAndValidate(body, doc, items)) return Answer(std::move(*rejection), responder);
    std::vector<std::string> records;
    std::vector<std::string> ids;
    if (auto rejection = Encode(items, records, ids)) return Answer(std::move(*rejection), responder);
    Publish(items, records, ids, std::move(responder));
  }

 private:
  void Answer(http::Response response, http::Responder& responder) {
    server_.in_flight_->Add(-1);
    server_.Count(route_, response.status, start_);
    responder.Send(std::move(response));
  }

  // 400 for a body that is not JSON (or nested too deep), 422 listing every problem.
  std::optional<http::Response> ParseAndValidate(const std::string& body, rapidjson::Document& doc,
                                                 std::vector<const rapidjson::Value*>& items) const {
    std::string parse_error = ParseLimited(doc, body, server_.options_.max_json_depth);
    if (!parse_error.empty()) return Error(400, parse_error);
    std::vector<FieldError> errors;
    if (route_ == Route::kTrigger) {
      ValidateTrigger(doc, channel_, "", errors);
      items.push_back(&doc);
    } else {
      ValidateBatch(doc, channel_, server_.options_.max_batch, errors, items);
    }
    if (!errors.empty()) return Error(422, errors.front().message, errors);
    return std::nullopt;
  }

  // Builds every record first: a batch with one record the broker could never take publishes none.
  std::optional<http::Response> Encode(const std::vector<const rapidjson::Value*>& items,
                                       std::vector<std::string>& records,
                                       std::vector<std::string>& ids) const {
    const std::string received_at = FormatTimestamp(std::chrono::system_clock::now());
    bool batch = route_ == Route::kBatch;
    records.reserve(items.size());
    ids.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      ids.push_back(idempotency_key_ ? DerivedTriggerId(project_, campaign_id_, *idempotency_key_,
                                                        batch ? static_cast<int>(i) : -1)
                                     : NewTriggerId());
      records.push_back(BuildTriggerRecord(*items[i], ids.back(), project_, campaign_id_, received_at));
      // Measured as the dispatcher measures its outputs, so a trigger accepted here fits pv.triggers
      // by the same rule (a deferred or dead-lettered copy adds headers: docs/dispatcher.md).
      kafka::Header id_header{"pv-trigger-id", ids.back()};
      size_t size = kafka::RecordBytes(AsStringView((*items[i])["user"]["external_id"]), records.back(),
                                       std::span<const kafka::Header>(&id_header, 1));
      if (size > server_.max_record_bytes_) {
        return Error(
            413, fmt::format("{} is {} bytes once encoded; the broker accepts records of at most {} bytes",
                             batch ? fmt::format("triggers[{}]", i) : std::string("the trigger"), size,
                             server_.max_record_bytes_));
      }
    }
    return std::nullopt;
  }

  void Publish(const std::vector<const rapidjson::Value*>& items, const std::vector<std::string>& records,
               const std::vector<std::string>& ids, http::Responder responder) {
    auto* publication = new Publication(  // NOLINT(cppcoreguidelines-owning-memory): freed by its last report
        server_, route_, start_, static_cast<int>(records.size()), ids.front(), std::move(responder));
    // A client that retries an abandoned batch with an Idempotency-Key gets the same trigger ids, so the
    // workers send the records that were delivered anyway once.
    CountedPublication::ProduceAll(
        publication, records.size(), [&](size_t i, kafka::DeliveryHandler* handler) {
          std::string_view external_id = AsStringView((*items[i])["user"]["external_id"]);
          kafka::Header headers[] = {{"pv-trigger-id", ids[i]}};
          return server_.producer_->Produce(server_.options_.topic, external_id, records[i], headers,
                                            handler);
        });
  }

  IngestServer& server_;
  Route route_;
  Clock::time_point start_;
  std::string project_;
  std::string campaign_id_;
  Channel channel_;
  std::optional<std::string> idempotency_key_;
  bool body_seen_ = false;
};

// A status request whose head passed: the lookup goes to the status thread, whose answer comes back
// to the connection's loop through the Responder. A body (GET has none) is read and ignored.
class IngestServer::StatusExchange final : public http::Exchange {
 public:
  StatusExchange(IngestServer& server, Clock::time_point start, std::string project, std::string trigger_id)
      : server_(server), start_(start), project_(std::move(project)), trigger_id_(std::move(trigger_id)) {}

  void OnBody(std::string /*body*/, http::Responder responder) override {
    // std::function needs a copyable callable; the Responder is moved into a shared one.
    auto shared = std::make_shared<http::Responder>(std::move(responder));
    IngestServer& server = server_;
    server.status_->Submit(trigger_id_, [&server, start = start_, project = project_, id = trigger_id_,
                                         shared](StatusLookups::Result result) {
      http::Response response = server.StatusAnswer(std::move(result), id, project);
      server.Count(Route::kStatus, response.status, start);
      shared->Send(std::move(response));
    });
  }

 private:
  IngestServer& server_;
  Clock::time_point start_;
  std::string project_;
  std::string trigger_id_;
};

// ---- the head: route, authenticate, resolve the campaign, check the body's headers ----
// Each step returns the rejection that answers the request, or nothing to go on.

namespace {

std::optional<http::Response> Unauthorized(std::string_view challenge, std::string_view message) {
  http::Response r = Error(401, message);
  r.headers.emplace_back("WWW-Authenticate", std::string(challenge));
  return r;
}

}  // namespace

// 401 / 403. On success `key` points into `keys`, which the caller keeps alive.
std::optional<http::Response> IngestServer::Authenticate(const http::RequestHead& head,
                                                         std::shared_ptr<const KeyStore>& keys,
                                                         const ApiKey*& key) const {
  std::optional<std::string_view> auth = head.Header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!auth || auth->empty()) {
    return Unauthorized("Bearer", "missing Authorization header (expected: Bearer sk_...)");
  }
  if (auth->size() <= kBearer.size() || auth->substr(0, kBearer.size()) != kBearer ||
      !LooksLikeKey(auth->substr(kBearer.size()))) {
    return Unauthorized("Bearer error=\"invalid_token\"",
                        "malformed Authorization header (expected: Bearer sk_...)");
  }
  std::string_view token = auth->substr(kBearer.size());
  // A connection stays on one loop thread and a client sends the same key on every request:
  // remembering the last key's hash per thread saves a SHA-256 per request.
  thread_local std::string last_token;
  thread_local std::string last_hash;
  if (token != last_token) {
    last_hash = HashKey(token);
    last_token.assign(token);
  }
  keys = keys_.load();
  KeyStore::Match match = keys->AuthenticateHash(last_hash);
  if (match.result != KeyStore::Result::kOk) {
    return Unauthorized("Bearer error=\"invalid_token\"", match.result == KeyStore::Result::kRevoked
                                                              ? "API key has been revoked"
                                                              : "unknown API key");
  }
  if (match.key->scope != KeyScope::kSecret) {
    return Error(403, "a public (pk_) key cannot trigger campaigns; use a secret (sk_) key");
  }
  key = match.key;
  return std::nullopt;
}

// 404 / 409. On success `campaign` points into `catalog`, which the caller keeps alive.
std::optional<http::Response> IngestServer::ResolveCampaign(std::string_view campaign_id, const ApiKey& key,
                                                            std::shared_ptr<const Catalog>& catalog,
                                                            const Campaign*& campaign) const {
  catalog = catalog_.load();
  const Campaign* found = catalog->Find(std::string(campaign_id));
  if (found == nullptr || found->deleted || found->project != key.project) {
    // Another project's campaign is indistinguishable from a missing one: no probing across projects.
    return Error(404, fmt::format("campaign {} not found", campaign_id));
  }
  if (!found->enabled) return Error(409, fmt::format("campaign {} is disabled", campaign_id));
  campaign = found;
  return std::nullopt;
}

// 415 / 422 / 400, before a byte of the body is read.
std::optional<http::Response> IngestServer::CheckBodyHeaders(const http::RequestHead& head,
                                                             std::optional<std::string>& idempotency_key) {
  if (!EqualsIgnoreCase(MediaType(head.Header("Content-Type").value_or("")), "application/json")) {
    return Error(415, "Content-Type must be application/json");
  }
  if (auto encoding = head.Header("Content-Encoding"); encoding && *encoding != "identity") {
    // Decompressing would let a small body become a large one; bodies are small JSON anyway.
    return Error(415, fmt::format("Content-Encoding {} is not supported; send the body uncompressed",
                                  encoding->substr(0, 32)));
  }
  if (auto header = head.Header("Idempotency-Key")) {
    if (header->empty() || header->size() > kMaxIdempotencyKeyBytes) {
      auto message = fmt::format("Idempotency-Key must be 1 to {} bytes", kMaxIdempotencyKeyBytes);
      return Error(422, message, {{"header:Idempotency-Key", message}});
    }
    idempotency_key.emplace(*header);
  }
  if (!head.has_body()) return Error(400, "the request has no body (expected a JSON trigger)");
  return std::nullopt;
}

std::optional<http::Response> IngestServer::Admit(const http::RequestHead& head, std::string_view method,
                                                  std::shared_ptr<const KeyStore>& keys,
                                                  const ApiKey*& key) const {
  if (head.method() != method) {
    http::Response r = Error(405, fmt::format("method not allowed (use {})", method));
    r.headers.emplace_back("Allow", std::string(method));
    return r;
  }
  if (!keys_current_.load(std::memory_order_acquire)) {
    // keys_file alone could let a key revoked on the topic through: refuse until the topic is read.
    return Unavailable(
        fmt::format("starting: API keys are still being read from {}; retry shortly", options_.keys_topic),
        options_.front.retry_after_seconds);
  }
  return Authenticate(head, keys, key);
}

std::variant<http::Response, std::unique_ptr<http::Exchange>> IngestServer::OnHead(
    const http::RequestHead& head) {
  auto start = Clock::now();
  Route route = Route::kOther;
  std::string_view campaign_id;
  auto refuse = [&](http::Response response) {
    Count(route, response.status, start);
    return response;
  };
  // Provider receipts carry their own proof (a signature), not an API key: receipts.cpp.
  if (receipts::ReceiptEndpoints::Matches(head.target())) return receipts_->OnHead(head);
  if (std::string_view trigger_id; status_ && MatchStatusRoute(head.target(), trigger_id))
    return OnStatusHead(head, trigger_id);
  if (!MatchRoute(head.target(), route, campaign_id)) {
    route = Route::kOther;
    return refuse(Error(404, "no such endpoint"));
  }
  std::shared_ptr<const KeyStore> keys;
  const ApiKey* key = nullptr;
  if (auto rejection = Admit(head, "POST", keys, key)) return refuse(std::move(*rejection));
  std::shared_ptr<const Catalog> catalog;
  const Campaign* campaign = nullptr;
  if (auto rejection = ResolveCampaign(campaign_id, *key, catalog, campaign))
    return refuse(std::move(*rejection));
  std::optional<std::string> idempotency_key;
  if (auto rejection = CheckBodyHeaders(head, idempotency_key)) return refuse(std::move(*rejection));
  return std::make_unique<TriggerExchange>(*this, route, start, key->project, std::string(campaign_id),
                                           campaign->channel, std::move(idempotency_key));
}

std::variant<http::Response, std::unique_ptr<http::Exchange>> IngestServer::OnStatusHead(
    const http::RequestHead& head, std::string_view trigger_id) {
  auto start = Clock::now();
  auto refuse = [&](http::Response response) {
    Count(Route::kStatus, response.status, start);
    return response;
  };
  std::shared_ptr<const KeyStore> keys;
  const ApiKey* key = nullptr;
  if (auto rejection = Admit(head, "GET", keys, key)) return refuse(std::move(*rejection));
  if (!ValidStatusId(trigger_id)) {
    // No trigger has such an id: the same answer as an unknown one (the id is not echoed: it may be
    // anything up to ingest.max_uri_bytes).
    status_lookups_->With({"invalid_id"}).Inc();
    return refuse(Error(404, "trigger not found"));
  }
  return std::make_unique<StatusExchange>(*this, start, key->project, std::string(trigger_id));
}

http::Response IngestServer::StatusAnswer(StatusLookups::Result result, std::string_view trigger_id,
                                          std::string_view project) {
  switch (result.outcome) {
    case StatusLookups::Outcome::kUnavailable: {
      status_lookups_->With({"unavailable"}).Inc();
      return Unavailable(fmt::format("trigger statuses are unavailable ({}); retry", result.why),
                         options_.front.retry_after_seconds);
    }
    case StatusLookups::Outcome::kNotFound:
      status_lookups_->With({"not_found"}).Inc();
      return Error(404, fmt::format("trigger {} not found", trigger_id));
    case StatusLookups::Outcome::kFound:
      break;
  }
  std::string owner = result.status.project;
  if (owner.empty()) {
    // Only events without a project so far (the dispatcher's, which names it, still on its way):
    // the campaign's project decides.
    const Campaign* campaign = catalog_.load()->Find(result.status.campaign_id);
    if (campaign != nullptr) owner = campaign->project;
  }
  if (owner != project) {
    // Another project's trigger is indistinguishable from a missing one.
    status_lookups_->With({"other_project"}).Inc();
    return Error(404, fmt::format("trigger {} not found", trigger_id));
  }
  status_lookups_->With({"found"}).Inc();
  http::Response r = http::Response::Json(200, std::move(result.status.json));
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

std::string IngestServer::ErrorBody(std::string_view message) {
  return ingest::ErrorBody(message);
}

void IngestServer::Count(Route route, int status, Clock::time_point start) {
  int r = static_cast<int>(route);
  int s = status < 100 || status >= 600 ? 599 : status;
  auto& slot = request_counters_[r][s];
  metrics::Counter* counter = slot.load(std::memory_order_acquire);
  if (counter == nullptr) {
    counter = &requests_->With({RouteName(r), std::to_string(s)});
    slot.store(counter, std::memory_order_release);
  }
  counter->Inc();
  route_seconds_[r]->Observe(std::chrono::duration<double>(Clock::now() - start).count());
}

// ---- lifetime ----

IngestServer::IngestServer(IngestOptions options, const kafka::Settings& kafka_settings)
    : options_(std::move(options)) {
  validate::WarmUpTimeZones();
  file_catalog_ = Catalog::LoadDirectory(options_.catalog_dir);
  catalog_.store(file_catalog_);
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
      // gets its report by then: no request waits longer than ack_timeout, and none forever.
      {"message.timeout.ms", std::to_string(options_.ack_timeout.count())},
      {"linger.ms", fmt::format("{}", options_.linger_ms)},
      {"socket.nagle.disable", "true"},
  };
  producer_ = std::make_unique<kafka::Producer>(kafka_settings, producer_options);
  max_record_bytes_ = producer_->MaxMessageBytes();
  receipts_ = std::make_unique<receipts::ReceiptEndpoints>(options_.receipts, *producer_, registry_,
                                                           options_.front.retry_after_seconds);
  StartFeeds(kafka_settings);
  RegisterMetrics();
  if (options_.status.enabled && !options_.status.redis_url.empty()) {
    status_ = std::make_unique<StatusLookups>(options_.status, registry_);
  }
  front_ = std::make_unique<http::HttpFront>(options_.front, *this, registry_);
  admin_ = std::make_unique<AdminServer>(
      registry_, [this] { return NotReadyReason(); }, [this] { return Health(); });
}

void IngestServer::StartFeeds(const kafka::Settings& kafka_settings) {
  if (!options_.keys_topic.empty()) {
    key_feed_ = std::make_unique<KeyFeed>(
        kafka_settings, options_.keys_topic,
        [this](const std::vector<ApiKey>& states) {
          {
            std::lock_guard lock(key_sources_mutex_);
            topic_keys_ = states;
          }
          PublishKeys();
          log::Info("keys_updated_from_topic", {{"topic", options_.keys_topic}, {"keys", states.size()}});
        },
        [this] {
          std::lock_guard lock(run_mutex_);
          keys_current_.store(true);
          run_cv_.notify_all();
        });
  } else {
    keys_current_.store(true);
  }
  if (!options_.campaigns_topic.empty()) {
    auto& records = registry_.AddCounter(
        "pv_ingest_campaign_records_total",
        "Records read from the campaigns topic, by result (applied, older, invalid, over_limit)", {"result"});
    // Ingest renders nothing, so it does not compile templates: the record's own rules are its check
    // (pvctl compiled them before publishing; the dispatcher compiles them again).
    campaign_feed_ = std::make_unique<CampaignFeed>(
        kafka_settings, options_.campaigns_topic, "pv-ingest-campaigns", records, CampaignFeed::Check(),
        [this](const std::vector<TopicCampaign>& states) {
          {
            std::lock_guard lock(catalog_sources_mutex_);
            topic_campaigns_ = states;
          }
          PublishCatalog();
          log::Info("catalog_updated_from_topic", {{"topic", options_.campaigns_topic},
                                                   {"topic_campaigns", states.size()},
                                                   {"campaigns", catalog_.load()->size()}});
        });
  }
}

void IngestServer::RegisterMetrics() {
  requests_ = &registry_.AddCounter("pv_ingest_requests_total", "API requests by route and status",
                                    {"route", "status"});
  auto& request_seconds = registry_.AddHistogram("pv_ingest_request_duration_seconds",
                                                 "API request latency by route (head read to answer)",
                                                 {"route"}, metrics::LatencyBuckets());
  ack_seconds_ =
      &registry_
           .AddHistogram("pv_ingest_broker_ack_duration_seconds",
                         "Time from produce to the broker's acknowledgement of a request's records", {},
                         metrics::LatencyBuckets())
           .Get();
  in_flight_ =
      &registry_.AddGauge("pv_ingest_in_flight_requests", "API requests read and not yet answered").Get();
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
  registry_.AddCallbackGauge("pv_ingest_kafka_reachable",
                             "1 when the brokers answered the last metadata probe (each second)",
                             [this] { return kafka_reachable_.load() ? 1.0 : 0.0; });
  registry_.AddCallbackGauge("pv_ingest_catalog_campaigns",
                             "Campaigns served: catalog_dir merged with the campaigns topic",
                             [this] { return static_cast<double>(catalog_.load()->size()); });
  registry_.AddCallbackGauge("pv_ingest_ready", "1 while /readyz answers 200",
                             [this] { return NotReadyReason().empty() ? 1.0 : 0.0; });
  for (int r = 0; r < static_cast<int>(Route::kCount); ++r)
    route_seconds_[r] = &request_seconds.With({RouteName(r)});

  status_lookups_ = &registry_.AddCounter(
      "pv_ingest_status_lookups_total",
      "Trigger status lookups by result (found, not_found, other_project, invalid_id, unavailable)",
      {"result"});
}

IngestServer::~IngestServer() {
  Stop();
  status_.reset();  // its thread may still be answering through the catalog; joined before that goes
  if (watcher_.joinable()) watcher_.join();
}

int IngestServer::Bind() {
  port_ = front_->Bind();
  admin_port_ = admin_->Start(options_.admin_host, options_.admin_port);
  watcher_ = std::thread([this] { WatchFiles(); });
  return port_;
}

void IngestServer::WaitForCampaigns(Clock::time_point start) {
  if (!campaign_feed_) return;
  while (!draining_.load() && Clock::now() - start < options_.campaigns_start_timeout) {
    if (campaign_feed_->WaitCaughtUp(std::chrono::milliseconds(100))) {
      log::Info("campaigns_topic_read",
                {{"topic", options_.campaigns_topic},
                 {"waited_ms",
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()}});
      return;
    }
  }
  if (!draining_.load()) {
    log::Warn("campaigns_topic_not_read",
              {{"topic", options_.campaigns_topic},
               {"waited_ms", options_.campaigns_start_timeout.count()},
               {"action", "serving catalog_dir and what was read; the rest applies as it arrives"}});
  }
}

void IngestServer::Run() {
  auto start = Clock::now();
  {
    // The front starts once every key on keys_topic is known (a revocation there must win over the
    // file), or after keys_wait: requests that came meanwhile wait in the listen backlog, and past
    // keys_wait the API answers 503 until the topic is read (OnHead).
    std::unique_lock lock(run_mutex_);
    if (!run_cv_.wait_for(lock, options_.keys_wait,
                          [this] { return keys_current_.load() || stopping_.load(); })) {
      log::Warn("keys_not_current", {{"topic", options_.keys_topic},
                                     {"waited_ms", options_.keys_wait.count()},
                                     {"note", "serving; API requests get 503 until the topic is read"}});
    }
  }
  // Both feeds read from the start on, so this wait is mostly over by now.
  WaitForCampaigns(start);
  {
    std::lock_guard lock(run_mutex_);
    if (!stopping_.load()) {
      front_->Start();
      serving_.store(true);
      log::Info("listening", {{"host", options_.front.host},
                              {"port", port_},
                              {"admin_port", admin_port_},
                              {"threads", options_.front.threads}});
    }
  }
  std::unique_lock lock(run_mutex_);
  run_cv_.wait(lock, [this] { return stopped_; });
}

void IngestServer::Stop() {
  // call_once: a second caller (main after Run returned, while the signal thread is still
  // flushing) waits for the first to finish before the server may be destroyed.
  std::call_once(stop_once_, [this] { StopOnce(); });
}

void IngestServer::StopOnce() {
  draining_.store(true);
  bool was_serving = serving_.load();
  log::Info("stopping", {{"in_flight", static_cast<std::int64_t>(in_flight_->Value())},
                         {"shutdown_delay_ms", was_serving ? options_.shutdown_delay.count() : 0}});
  // Unready first, still serving: load balancers see /readyz fail and stop sending new requests.
  // Not after a fatal producer error: every request would only get 503.
  if (was_serving && !failed_.load()) std::this_thread::sleep_for(options_.shutdown_delay);
  {
    std::lock_guard lock(run_mutex_);
    stopping_.store(true);
    run_cv_.notify_all();
  }
  {
    std::lock_guard lock(watcher_mutex_);
    watcher_cv_.notify_all();
  }
  // Stop accepting; requests being read or waiting for the broker finish (their report comes by
  // ack_timeout); then the loops stop. Every acknowledged record is then flushed.
  size_t left =
      front_->Shutdown(options_.front.body_timeout + options_.ack_timeout + std::chrono::seconds(1));
  serving_.store(false);
  key_feed_.reset();
  campaign_feed_.reset();
  int unflushed = producer_->Flush(options_.ack_timeout + std::chrono::seconds(1));
  admin_->Stop();
  log::Info("stopped", {{"connections_cut", left}, {"unflushed_records", unflushed}});
  std::lock_guard lock(run_mutex_);
  stopped_ = true;
  run_cv_.notify_all();
}

std::string IngestServer::NotReadyReason() const {
  if (failed_.load()) return "kafka producer failed; exiting";
  if (draining_.load()) return "stopping";
  if (!keys_current_.load()) return fmt::format("reading API keys from {}", options_.keys_topic);
  if (!serving_.load()) return "starting";
  // A Kafka outage is not unreadiness: every replica would drop out of the load balancer at once,
  // while each can still answer 503 with Retry-After. It shows in /healthz and metrics instead.
  return {};
}

std::string IngestServer::Health() const {
  return fmt::format(R"({{"status":"ok","kafka":"{}","serving":{},"draining":{},"connections":{}}})",
                     kafka_reachable_.load() ? "reachable" : "unreachable", serving_.load(), draining_.load(),
                     front_->open_connections());
}

void IngestServer::ProbeKafka() {
  // Asking for the trigger topic keeps its leaders known: the first trigger after start does not
  // wait for a metadata round trip (it took ~0.4 s on the dev stack).
  bool reachable = producer_->BrokersReachable(std::chrono::milliseconds(1000), options_.topic);
  if (reachable != kafka_reachable_.exchange(reachable)) {
    if (reachable) {
      log::Info("kafka_reachable", {});
    } else {
      log::Warn("kafka_unreachable", {{"note", "API requests get 503 with Retry-After until it answers"}});
    }
  }
}

bool IngestServer::ReloadIfChanged(const std::string& path, std::string& signature, const char* failed_event,
                                   const char* path_field, const std::function<void()>& load) {
  std::string now = Signature(path);
  if (now == signature) return true;
  signature = now;  // a bad file is reported once, not every second
  try {
    load();
    reloads_ok_->Inc();
    return true;
  } catch (const std::exception& e) {
    reloads_failed_->Inc();
    log::Error(failed_event, {{path_field, path}, {"error", e.what()}});
    return false;
  }
}

bool IngestServer::ReloadKeys() {
  return ReloadIfChanged(options_.keys_file, keys_signature_, "keys_reload_failed", "file", [this] {
    auto keys = KeyStore::LoadFile(options_.keys_file);
    {
      std::lock_guard lock(key_sources_mutex_);
      file_keys_ = keys->keys();
    }
    PublishKeys();
    log::Info("keys_reloaded", {{"file", options_.keys_file}, {"keys", keys->keys().size()}});
  });
}

void IngestServer::PublishKeys() {
  std::lock_guard lock(key_sources_mutex_);
  std::vector<ApiKey> all = file_keys_;
  all.insert(all.end(), topic_keys_.begin(), topic_keys_.end());
  keys_.store(KeyStore::FromKeys(all));
}

bool IngestServer::ReloadCatalog() {
  return ReloadIfChanged(options_.catalog_dir, catalog_signature_, "catalog_reload_failed", "dir", [this] {
    auto catalog = Catalog::LoadDirectory(options_.catalog_dir);
    {
      std::lock_guard lock(catalog_sources_mutex_);
      file_catalog_ = catalog;
    }
    // Merged again with the topic's campaigns: a reload from files never drops them.
    PublishCatalog();
    log::Info(
        "catalog_reloaded",
        {{"dir", options_.catalog_dir}, {"files", catalog->size()}, {"campaigns", catalog_.load()->size()}});
  });
}

void IngestServer::PublishCatalog() {
  std::lock_guard lock(catalog_sources_mutex_);
  catalog_.store(topic_campaigns_.empty() ? file_catalog_ : Catalog::Merge(*file_catalog_, topic_campaigns_));
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
  ProbeKafka();
  auto last_probe = Clock::now();
  std::unique_lock lock(watcher_mutex_);
  while (!stopping_.load()) {
    watcher_cv_.wait_for(lock, std::min(options_.reload_interval, std::chrono::milliseconds(1000)));
    if (stopping_.load()) break;
    {
      std::lock_guard reload_lock(reload_mutex_);
      ReloadKeys();
      ReloadCatalog();
    }
    if (Clock::now() - last_probe >= std::chrono::seconds(1)) {
      ProbeKafka();
      last_probe = Clock::now();
    }
    if (auto fatal = producer_->FatalError()) {
      log::Error(
          "kafka_fatal_error",
          {{"error", *fatal}, {"action", "stopping; exit status 1 so the supervisor restarts ingest"}});
      failed_.store(true);
      lock.unlock();  // Stop() takes this lock to wake the watcher
      Stop();
      return;
    }
  }
}

}  // namespace pv::ingest
