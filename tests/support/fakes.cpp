#include "pv/testing/fakes.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "pv/testing/http.hpp"

namespace pv::testing {

using namespace std::chrono_literals;

std::string FakesDir() {
  return PV_FAKES_DIR;
}

ProviderFake::ProviderFake(const std::vector<std::string>& args) : dir_("pv-fake") {
  std::vector<std::string> argv = {"/usr/bin/node", FakesDir() + "/provider_fake.js", "--port-file",
                                   dir_.File("port")};
  argv.insert(argv.end(), args.begin(), args.end());
  process_ = std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, dir_.File("fake.log"));
  port_ = WaitForPortFile(dir_.File("port"), *process_, 15s);
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
  port_ = WaitForPortFile(dir_.File("port"), *process_, 15s);
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

}  // namespace pv::testing
