#include "worker_env.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/kafka.hpp"

namespace pv::testing {

using namespace std::chrono_literals;

std::string FakesDir() {
  return PV_FAKES_DIR;
}

std::string WorkerBinary(Channel channel) {
  switch (channel) {
    case Channel::kEmail:
      return PV_EMAIL_WORKER_BIN;
    case Channel::kSms:
      return PV_SMS_WORKER_BIN;
    case Channel::kPush:
      return PV_PUSH_WORKER_BIN;
  }
  return PV_EMAIL_WORKER_BIN;
}

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  auto res = c.Get(path.c_str());
  if (!res) return {-1, ""};
  return {res->status, res->body};
}

std::pair<int, std::string> HttpPost(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  auto res = c.Post(path.c_str(), body, "application/json");
  if (!res) return {-1, ""};
  return {res->status, res->body};
}

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  if (d.HasParseError()) throw std::runtime_error("not JSON: " + text.substr(0, 200));
  return d;
}

namespace {

int WaitPortFile(const std::string& path, Subprocess& process, const std::string& log,
                 std::chrono::seconds timeout) {
  bool ok = WaitFor([&] { return std::filesystem::exists(path) || !process.Running(); }, timeout);
  if (!ok || !process.Running()) {
    throw std::runtime_error("process did not start (" + path + "): " + ReadFile(log));
  }
  return std::stoi(Trim(ReadFile(path)));
}

}  // namespace

// ---- RedisServer ----

RedisServer::RedisServer() : dir_("pv-redis"), port_(FreePort()) {
  Start();
}

RedisServer::~RedisServer() {
  Stop();
}

void RedisServer::Start() {
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir",
                               dir_.path()},
      std::map<std::string, std::string>{}, dir_.File("redis.log"));
  bool up = WaitFor(
      [&] {
        if (!process_->Running()) return true;
        timeval tv{0, 200000};
        redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
        bool ok = c != nullptr && c->err == 0;
        if (ok) {
          auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
          ok = r != nullptr && r->type == REDIS_REPLY_STATUS;
          if (r != nullptr) freeReplyObject(r);
        }
        if (c != nullptr) redisFree(c);
        return ok;
      },
      10s);
  if (!up || !process_->Running())
    throw std::runtime_error("redis-server did not start: " + ReadFile(dir_.File("redis.log")));
}

void RedisServer::Stop() {
  if (process_) process_->Stop(SIGKILL, 5s);
  process_.reset();
}

std::string RedisServer::Command(const std::vector<std::string>& args) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    if (c != nullptr) redisFree(c);
    throw std::runtime_error("cannot connect to redis");
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r =
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out;
  if (r != nullptr) {
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR) {
      out.assign(r->str, r->len);
    } else if (r->type == REDIS_REPLY_INTEGER) {
      out = std::to_string(r->integer);
    } else if (r->type == REDIS_REPLY_ARRAY) {
      for (size_t i = 0; i < r->elements; ++i) {
        if (r->element[i]->type == REDIS_REPLY_STRING)
          out += std::string(r->element[i]->str, r->element[i]->len) + "\n";
      }
    }
    freeReplyObject(r);
  }
  redisFree(c);
  return out;
}

// ---- fakes ----

ProviderFake::ProviderFake(const std::vector<std::string>& args) : dir_("pv-fake") {
  std::vector<std::string> argv = {"/usr/bin/node", FakesDir() + "/provider_fake.js", "--port-file",
                                   dir_.File("port")};
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, dir_.File("fake.log"));
  port_ = WaitPortFile(dir_.File("port"), *process_, dir_.File("fake.log"), 15s);
  control_port_ = std::filesystem::exists(dir_.File("port.control"))
                      ? std::stoi(ReadFile(dir_.File("port.control")))
                      : port_;
}

ProviderFake::~ProviderFake() {
  process_->Stop(SIGTERM, 5s);
}

void ProviderFake::Script(const std::string& json) {
  auto [status, body] = HttpPost(control_port_, "/_fake/script", json);
  if (status != 200) throw std::runtime_error("fake script failed: " + body);
}

void ProviderFake::Reset() {
  HttpPost(control_port_, "/_fake/reset", "{}");
}

rapidjson::Document ProviderFake::Stats() {
  return ParseJson(HttpGet(control_port_, "/_fake/stats").second);
}

rapidjson::Document ProviderFake::Requests() {
  return ParseJson(HttpGet(control_port_, "/_fake/requests").second);
}

long long ProviderFake::Stat(const char* name) {
  auto d = Stats();
  return d.HasMember(name) && d[name].IsInt64() ? d[name].GetInt64() : -1;
}

SmtpFake::SmtpFake(const std::vector<std::string>& args) : dir_("pv-smtp") {
  std::vector<std::string> argv = {
      "/usr/bin/python3",         FakesDir() + "/smtp_fake.py", "--port-file", dir_.File("port"), "--out",
      dir_.File("messages.jsonl")};
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, dir_.File("smtp.log"));
  port_ = WaitPortFile(dir_.File("port"), *process_, dir_.File("smtp.log"), 15s);
}

SmtpFake::~SmtpFake() {
  process_->Stop(SIGTERM, 5s);
}

std::vector<rapidjson::Document> SmtpFake::Messages() {
  std::vector<rapidjson::Document> out;
  std::ifstream in(dir_.File("messages.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(ParseJson(line));
  }
  return out;
}

// ---- keys ----

namespace {

std::string PemOf(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::string SelfSigned(EVP_PKEY* key) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"),
                             -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost"},
                            {NID_basic_constraints, "critical,CA:TRUE"},
                            {NID_key_usage, "digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(x);
  return out;
}

}  // namespace

const TestKeys& TestKeys::Get() {
  static const TestKeys keys = [] {
    TestKeys k;
    EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    EVP_PKEY* tls = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (rsa == nullptr || ec == nullptr || tls == nullptr) throw std::runtime_error("key generation failed");
    k.rsa_pem = PemOf(rsa);
    k.ec_pem = PemOf(ec);
    k.cert_key_pem = PemOf(tls);
    k.cert_pem = SelfSigned(tls);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(tls);
    return k;
  }();
  return keys;
}

// ---- sends ----

std::string NewSendId() {
  return SendIdFor(NewTriggerId(), "x");
}

std::string SendValue(const SendSpec& s, std::string* send_id_out) {
  std::string send_id = s.send_id.empty() ? NewSendId() : s.send_id;
  if (send_id_out != nullptr) *send_id_out = send_id;
  std::string channel(ChannelName(s.channel));
  std::string out = R"({"v":1,"send_id":)";
  AppendJsonString(out, send_id);
  out += R"(,"trigger_id":)";
  AppendJsonString(out, "trg-" + send_id);
  out += R"(,"project":"demo","campaign_id":)";
  AppendJsonString(out, s.campaign_id);
  out += R"(,"channel":)";
  AppendJsonString(out, channel);
  out += R"(,"provider":)";
  AppendJsonString(out, s.provider);
  if (!s.fallback_provider.empty()) {
    out += R"(,"fallback_provider":)";
    AppendJsonString(out, s.fallback_provider);
  }
  out += fmt::format(R"(,"attempt":{},"created_at":"2026-01-01T00:00:00.000Z","to":{{)", s.attempt);
  switch (s.channel) {
    case Channel::kEmail:
      out += R"("email":)";
      AppendJsonString(out, s.address.empty() ? "ana@example.com" : s.address);
      break;
    case Channel::kSms:
      out += R"("phone":)";
      AppendJsonString(out, s.address.empty() ? "+34600111222" : s.address);
      break;
    case Channel::kPush:
      out += R"("device_token":)";
      AppendJsonString(out, s.address.empty() ? "a1b2c3d4e5f60718293a4b5c6d7e8f90" : s.address);
      break;
  }
  out += R"(,"external_id":)";
  AppendJsonString(out, s.external_id);
  out += R"(},"content":)";
  switch (s.channel) {
    case Channel::kEmail:
      out += R"({"from":"Demo Shop <orders@demo.example>","reply_to":"support@demo.example",)"
             R"("subject":"Your order ships","html":"<p>Hi Ana</p>","text":"Hi Ana"})";
      break;
    case Channel::kSms:
      out += R"({"body":"123456 is your Demo verification code."})";
      break;
    case Channel::kPush:
      out += R"({"title":"Still thinking?","body":"Your cart is waiting.","sound":"default","badge":2,)"
             R"("data":{"screen":"cart","cart_id":"c-9"}})";
      break;
  }
  out += '}';
  return out;
}

void ProduceAll(const std::string& bootstrap, const std::string& topic,
                const std::vector<std::pair<std::string, std::string>>& key_values) {
  kafka::Settings settings;
  settings.brokers = bootstrap;
  settings.properties["log_level"] = "3";
  kafka::ProducerOptions options;
  options.client_id = "pv-test-producer";
  options.defaults["linger.ms"] = "5";
  kafka::Producer producer(settings, options);
  auto group = std::make_shared<kafka::DeliveryGroup>(static_cast<int>(key_values.size()));
  for (const auto& [key, value] : key_values) {
    while (true) {
      rd_kafka_resp_err_t err = producer.Produce(topic, key, value, {}, group);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) throw std::runtime_error(rd_kafka_err2str(err));
      std::this_thread::sleep_for(5ms);
    }
  }
  if (!group->Wait(std::chrono::steady_clock::now() + 30s) ||
      group->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("produce not acknowledged");
  }
}

// ---- processes ----

WorkerProcess::WorkerProcess(Channel channel, const std::string& config_yaml, const std::string& log_path)
    : channel_(channel), dir_("pv-worker"), log_path_(log_path) {
  WriteFile(dir_.File("config.yaml"), config_yaml);
}

WorkerProcess::~WorkerProcess() {
  if (process_) process_->Stop(SIGKILL, 5s);
}

void WorkerProcess::Start() {
  std::filesystem::remove(dir_.File("admin.port"));
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{WorkerBinary(channel_), "--config", dir_.File("config.yaml"), "--port-file",
                               dir_.File("admin.port")},
      std::map<std::string, std::string>{}, log_path_);
  admin_port_ = WaitPortFile(dir_.File("admin.port"), *process_, log_path_, 20s);
}

int WorkerProcess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (!process_) return -1;
  return process_->Stop(signal, timeout);
}

std::string WorkerProcess::Log() const {
  return ReadFile(log_path_);
}

DispatcherProcess::DispatcherProcess(const std::string& bootstrap, const std::string& redis_url,
                                     const std::string& tiers_yaml_list)
    : dir_("pv-dispatcher") {
  std::string config = fmt::format(
      "kafka:\n  brokers: \"{}\"\n  properties:\n    session.timeout.ms: \"6000\"\n    "
      "heartbeat.interval.ms: \"500\"\n"
      "    log_level: \"3\"\nredis:\n  url: \"{}\"\ncatalog_dir: \"{}\"\nlog:\n  level: warn\n"
      "dispatcher:\n  admin_port: 0\n  delay_tiers: {}\n",
      bootstrap, redis_url, PV_SOURCE_DIR "/catalog/demo", tiers_yaml_list);
  WriteFile(dir_.File("config.yaml"), config);
  process_ = std::make_unique<Subprocess>(
      std::vector<std::string>{PV_DISPATCHER_BIN, "--config", dir_.File("config.yaml"), "--port-file",
                               dir_.File("admin.port")},
      std::map<std::string, std::string>{}, dir_.File("dispatcher.log"));
  WaitPortFile(dir_.File("admin.port"), *process_, dir_.File("dispatcher.log"), 20s);
}

DispatcherProcess::~DispatcherProcess() {
  process_->Stop(SIGTERM, 10s);
}

std::string DispatcherProcess::Log() const {
  return ReadFile(dir_.File("dispatcher.log"));
}

}  // namespace pv::testing
