// What the workers' provider and integration tests start and talk to: a real redis-server, the
// protocol fakes under tests/fakes (Node for HTTP and HTTP/2 services, aiosmtpd for SMTP), test keys
// and certificates, worker and dispatcher processes, and send records. Every process is started on
// free loopback ports and stopped by pid (pv::testing::Subprocess).
#pragma once

#include <rapidjson/document.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"
#include "pv/topics.hpp"

namespace pv::testing {

// HTTP on loopback: returns {status, body}; status -1 when nothing answered.
std::pair<int, std::string> HttpGet(int port, const std::string& path);
std::pair<int, std::string> HttpPost(int port, const std::string& path, const std::string& body);

rapidjson::Document ParseJson(const std::string& text);

// redis-server on a fixed free port, without persistence: Stop() then Start() is a restart that
// loses every key, like a crashed cache.
class RedisServer {
 public:
  RedisServer();
  ~RedisServer();
  void Start();
  void Stop();  // SIGKILL: no goodbye to clients
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // One command through redis-cli-free RESP over a socket; returns the raw reply line(s).
  std::string Command(const std::vector<std::string>& args);

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Subprocess> process_;
};

// tests/fakes/provider_fake.js. `args` are its options (e.g. {"--sendgrid-key", "k"}).
class ProviderFake {
 public:
  explicit ProviderFake(const std::vector<std::string>& args);
  ~ProviderFake();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Script(const std::string& json);
  void Reset();
  rapidjson::Document Stats();
  rapidjson::Document Requests();
  long long Stat(const char* name);

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
  int control_port_ = 0;  // the same as port_ except for the HTTP/2 fake
};

// tests/fakes/smtp_fake.py.
class SmtpFake {
 public:
  explicit SmtpFake(const std::vector<std::string>& args);
  ~SmtpFake();
  int port() const { return port_; }
  // Every message received so far (one JSON object each).
  std::vector<rapidjson::Document> Messages();

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};

// Keys and certificates made for one test run.
struct TestKeys {
  std::string rsa_pem;           // PKCS#8 RSA 2048 private key
  std::string ec_pem;            // PKCS#8 EC P-256 private key
  std::string cert_pem;          // self-signed certificate for 127.0.0.1 / localhost
  std::string cert_key_pem;      // its key
  static const TestKeys& Get();  // generated once per process
};

struct SendSpec {
  Channel channel = Channel::kEmail;
  std::string send_id;  // empty: a new UUID
  std::string campaign_id = "44";
  std::string provider = "log";
  std::string fallback_provider;
  std::string address;  // empty: a default for the channel
  std::string external_id = "user-1";
  int attempt = 1;
};

// A pv.send.<channel> value as the dispatcher writes it. `send_id` gets the id used.
std::string SendValue(const SendSpec& spec, std::string* send_id = nullptr);
std::string NewSendId();

// Produces records and waits for every acknowledgement (throws on failure).
void ProduceAll(const std::string& bootstrap, const std::string& topic,
                const std::vector<std::pair<std::string, std::string>>& key_values);

// A worker binary with its config file (YAML text appended to the generated basics).
class WorkerProcess {
 public:
  WorkerProcess(Channel channel, const std::string& config_yaml, const std::string& log_path);
  ~WorkerProcess();
  void Start();
  int Stop(int signal, std::chrono::milliseconds timeout);
  bool Running() { return process_ && process_->Running(); }
  int admin_port() const { return admin_port_; }
  pid_t pid() const { return process_ ? process_->pid() : -1; }
  std::string Log() const;

 private:
  Channel channel_;
  TempDir dir_;
  std::string log_path_;
  std::unique_ptr<Subprocess> process_;
  int admin_port_ = 0;
};

// pv-dispatcher, for its delay-ladder scheduler: re-publishes due pv.delay.<tier> records.
class DispatcherProcess {
 public:
  DispatcherProcess(const std::string& bootstrap, const std::string& redis_url,
                    const std::string& tiers_yaml_list);
  ~DispatcherProcess();
  std::string Log() const;

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
};

std::string FakesDir();
std::string WorkerBinary(Channel channel);

}  // namespace pv::testing
