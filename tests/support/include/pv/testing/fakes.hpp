// pv::testing: the protocol fakes under tests/fakes (Node for the HTTP and HTTP/2 providers, aiosmtpd
// for SMTP) as subprocesses on free loopback ports, and keys and certificates made for one test run.
#pragma once

#include <rapidjson/document.h>

#include <memory>
#include <string>
#include <vector>

#include "pv/testing/process.hpp"

namespace pv::testing {

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

// The tests/fakes directory of the source tree.
std::string FakesDir();

}  // namespace pv::testing
