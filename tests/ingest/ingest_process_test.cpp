// The pv-ingest binary as operators run it: command line, config errors, and SIGTERM while under
// load (stop accepting, finish in-flight requests, flush, exit 0, and every 204 is in the topic).
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "pv/keys.hpp"
#include "pv/testing/dev_broker.hpp"
#include "pv/testing/process.hpp"
#include "pv/testing/process_metrics.hpp"
#include "pv/testing/raw_http.hpp"
#include "pv/testing/topic_reader.hpp"

namespace {

using namespace std::chrono_literals;
using pv::testing::Subprocess;
using pv::testing::TempDir;

std::string IngestBin() {
  return PV_INGEST_BIN;
}

TEST(IngestProcess, HelpAndPrintConfig) {
  TempDir dir("pv-ingest-cli");
  Subprocess help({IngestBin(), "--help"}, {}, dir.File("help.log"));
  EXPECT_EQ(help.Wait(10s), 0);
  EXPECT_NE(pv::testing::ReadFile(dir.File("help.log")).find("Usage: pv-ingest"), std::string::npos);

  // Unknown options, missing values and stray arguments: exit 2 with one line naming the problem
  // (the same CLI11 parser as the dispatcher's and the workers', pv::service::ParseArgs).
  Subprocess bad({IngestBin(), "--bogus"}, {}, dir.File("bad.log"));
  EXPECT_EQ(bad.Wait(10s), 2);
  EXPECT_EQ(pv::testing::ReadFile(dir.File("bad.log")),
            "pv-ingest: unknown option '--bogus'; run 'pv-ingest --help'\n");
  Subprocess typo({IngestBin(), "--port-fil", "p"}, {}, dir.File("typo.log"));
  EXPECT_EQ(typo.Wait(10s), 2);
  EXPECT_NE(pv::testing::ReadFile(dir.File("typo.log")).find("did you mean '--port-file'?"),
            std::string::npos)
      << pv::testing::ReadFile(dir.File("typo.log"));
  Subprocess missing({IngestBin(), "--config"}, {}, dir.File("missing.log"));
  EXPECT_EQ(missing.Wait(10s), 2);
  EXPECT_NE(pv::testing::ReadFile(dir.File("missing.log")).find("--config needs a value"), std::string::npos);
  Subprocess version({IngestBin(), "--version"}, {}, dir.File("version.log"));
  EXPECT_EQ(version.Wait(10s), 0);
  EXPECT_EQ(pv::testing::ReadFile(dir.File("version.log")).rfind("pv-ingest ", 0), 0U);

  Subprocess print({IngestBin(), "--print-config"},
                   {{"PV_KAFKA_BROKERS", "127.0.0.1:1"}, {"PV_INGEST_PORT", "1234"}}, dir.File("print.log"));
  EXPECT_EQ(print.Wait(10s), 0);
  std::string out = pv::testing::ReadFile(dir.File("print.log"));
  EXPECT_NE(out.find("ingest.port = 1234 (env PV_INGEST_PORT)"), std::string::npos) << out;
  EXPECT_NE(out.find("ingest.max_body_bytes = 1048576 (default)"), std::string::npos) << out;
}

TEST(IngestProcess, BadConfigRefusesToStartAndSaysWhy) {
  TempDir dir("pv-ingest-badcfg");
  pv::testing::WriteFile(dir.File("config.yaml"), "ingest:\n  port: eighty\n");
  Subprocess p({IngestBin(), "--config", dir.File("config.yaml")}, {{"PV_KAFKA_BROKERS", "127.0.0.1:1"}},
               dir.File("out.log"));
  EXPECT_EQ(p.Wait(10s), 1);
  std::string out = pv::testing::ReadFile(dir.File("out.log"));
  EXPECT_NE(out.find("ingest.port"), std::string::npos) << out;
  EXPECT_NE(out.find("not an integer"), std::string::npos) << out;
}

TEST(IngestProcess, SigtermUnderLoadExitsZeroAndEvery204IsInTheTopic) {
  pv::testing::DevBroker broker(1);
  TempDir dir("pv-ingest-sigterm");
  std::string key = pv::GenerateKey(pv::KeyScope::kSecret);
  pv::KeyStore::SaveFile(dir.File("keys.yaml"),
                         {{"key_1", "t", "demo", pv::KeyScope::kSecret, pv::HashKey(key), "", "", ""}});
  pv::testing::WriteFile(dir.File("config.yaml"),
                         "log: {level: info}\ncatalog_dir: " PV_SOURCE_DIR
                         "/catalog\n"
                         "keys_file: " +
                             dir.File("keys.yaml") +
                             "\ningest: {host: 127.0.0.1, port: 0, admin_port: 0, shutdown_delay_ms: 200}\n");
  Subprocess ingest({IngestBin(), "--config", dir.File("config.yaml"), "--port-file", dir.File("port")},
                    {{"PV_KAFKA_BROKERS", broker.bootstrap()}}, dir.File("ingest.log"));
  ASSERT_TRUE(pv::testing::WaitFor([&] { return !pv::testing::ReadFile(dir.File("port")).empty(); }, 15s))
      << pv::testing::ReadFile(dir.File("ingest.log"));
  int port = std::stoi(pv::testing::ReadFile(dir.File("port")));

  std::mutex mutex;
  std::set<std::string> accepted;  // trigger ids answered 204
  std::atomic<int> other_status{0};
  std::map<int, int> other_statuses;
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  clients.reserve(8);
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      auto deadline = std::chrono::steady_clock::now() + 20s;
      int n = 0;
      while (!stop.load() && std::chrono::steady_clock::now() < deadline && n < 5000) {
        httplib::Client c("127.0.0.1", port);
        c.set_read_timeout(10, 0);
        std::string body = R"({"user":{"external_id":"sig-)" + std::to_string(t) + "-" + std::to_string(n++) +
                           R"(","email":"a@b.co"}})";
        auto res = c.Post("/api/client/campaigns/44/trigger", {{"Authorization", "Bearer " + key}}, body,
                          "application/json");
        if (!res) {
          if (!ingest.Running()) break;  // refused: the server has gone
          continue;
        }
        if (res->status == 204) {
          std::lock_guard lock(mutex);
          accepted.insert(res->get_header_value("X-Trigger-Id"));
        } else {
          other_status++;
          std::lock_guard lock(mutex);
          other_statuses[res->status]++;
        }
      }
    });
  }
  ASSERT_TRUE(pv::testing::WaitFor(
      [&] {
        std::lock_guard lock(mutex);
        return accepted.size() >= 50;
      },
      20s));
  int status = ingest.Stop(SIGTERM, 15s);
  stop.store(true);
  for (auto& c : clients) c.join();
  EXPECT_EQ(status, 0) << pv::testing::ReadFile(dir.File("ingest.log"));
  EXPECT_EQ(other_status.load(), 0) << "only 204 may be answered; first other status "
                                    << (other_statuses.empty() ? 0 : other_statuses.begin()->first);
  std::string log = pv::testing::ReadFile(dir.File("ingest.log"));
  EXPECT_NE(log.find("\"event\":\"stopped\""), std::string::npos) << log;
  EXPECT_EQ(log.find(key), std::string::npos) << "the API key must never be logged";

  pv::testing::TopicReader reader(broker.bootstrap(), {"pv.triggers"});
  std::set<std::string> in_topic;
  reader.ReadUntil(
      [&](const auto& records) {
        for (const auto& r : records) in_topic.insert(r.headers.at("pv-trigger-id"));
        for (const auto& id : accepted) {
          if (in_topic.count(id) == 0) return false;
        }
        return true;
      },
      20s);
  size_t missing = 0;
  for (const auto& id : accepted) missing += in_topic.count(id) == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0U) << "of " << accepted.size() << " triggers answered 204";
}

// A key created and revoked with pvctl on "another machine" (its own keys file) reaches an ingest
// that never sees that file, through the compacted pv.keys topic, within 5 s each way.
TEST(IngestProcess, KeysFromAnotherMachineTakeEffectWithin5sThroughTheTopic) {
  pv::testing::DevBroker broker(1);
  TempDir dir("pv-ingest-keyfeed");
  pv::testing::WriteFile(dir.File("config.yaml"),
                         "log: {level: info}\ncatalog_dir: " PV_SOURCE_DIR
                         "/catalog\n"
                         "keys_file: " +
                             dir.File("ingest-keys.yaml") +
                             "\ningest: {host: 127.0.0.1, port: 0, admin_port: 0, shutdown_delay_ms: 0}\n");
  Subprocess ingest({IngestBin(), "--config", dir.File("config.yaml"), "--port-file", dir.File("port")},
                    {{"PV_KAFKA_BROKERS", broker.bootstrap()}}, dir.File("ingest.log"));
  ASSERT_TRUE(pv::testing::WaitFor([&] { return !pv::testing::ReadFile(dir.File("port")).empty(); }, 15s));
  int port = std::stoi(pv::testing::ReadFile(dir.File("port")));

  std::map<std::string, std::string> env = {{"PV_KAFKA_BROKERS", broker.bootstrap()}};
  Subprocess create({PV_PVCTL_BIN, "keys", "create", "--project", "demo", "--name", "remote", "--json",
                     "--keys-file", dir.File("other-machine-keys.yaml")},
                    env, dir.File("create.out"));
  ASSERT_EQ(create.Wait(30s), 0) << pv::testing::ReadFile(dir.File("create.out"));
  std::string out = pv::testing::ReadFile(dir.File("create.out"));
  auto field = [&](const std::string& name) {
    auto at = out.find("\"" + name + "\":\"");
    if (at == std::string::npos) return std::string();
    at += name.size() + 4;
    return out.substr(at, out.find('"', at) - at);
  };
  std::string key = field("key");
  std::string id = field("id");
  ASSERT_FALSE(key.empty()) << out;
  EXPECT_EQ(pv::testing::ReadFile(dir.File("ingest-keys.yaml")).find(id), std::string::npos);

  auto post = [&] {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Post("/api/client/campaigns/44/trigger", {{"Authorization", "Bearer " + key}},
                      R"({"user":{"external_id":"remote","email":"a@b.co"}})", "application/json");
    return res ? res->status : -1;
  };
  auto created = std::chrono::steady_clock::now();
  EXPECT_TRUE(pv::testing::WaitFor([&] { return post() == 204; }, 5s))
      << pv::testing::ReadFile(dir.File("ingest.log"));
  EXPECT_LT(std::chrono::steady_clock::now() - created, 5s);

  Subprocess revoke({PV_PVCTL_BIN, "keys", "revoke", id, "--keys-file", dir.File("other-machine-keys.yaml")},
                    env, dir.File("revoke.out"));
  ASSERT_EQ(revoke.Wait(30s), 0) << pv::testing::ReadFile(dir.File("revoke.out"));
  EXPECT_TRUE(pv::testing::WaitFor([&] { return post() == 401; }, 5s));
  EXPECT_EQ(ingest.Stop(SIGTERM, 15s), 0);
}

// The issue's cases with the binaries: a key created where this ingest's keys file is (so the file
// and pv.keys both hold it, active). A revoke that cannot reach the topic exits 1, yet the ingest
// that reads the file refuses the key, its newer state beating the topic's older active record
// (before: exit 0 and the topic's record kept the key working). A delete from another machine
// drops a second key here although this ingest's file still lists it.
TEST(IngestProcess, AFileRevokeBeatsTheTopicsOlderRecordAndADeleteElsewhereDropsTheKey) {
  pv::testing::DevBroker broker(1);
  TempDir dir("pv-ingest-keymerge");
  std::string keys_file = dir.File("keys.yaml");
  pv::testing::WriteFile(
      dir.File("config.yaml"),
      "log: {level: info}\ncatalog_dir: " PV_SOURCE_DIR "/catalog\nkeys_file: " + keys_file +
          "\ningest: {host: 127.0.0.1, port: 0, admin_port: 0, shutdown_delay_ms: 0, "
          "reload_interval_ms: 100}\n");
  std::map<std::string, std::string> env = {{"PV_KAFKA_BROKERS", broker.bootstrap()}};
  auto pvctl = [&](std::vector<std::string> words, const std::string& name,
                   const std::map<std::string, std::string>& with_env) {
    words.insert(words.begin(), PV_PVCTL_BIN);
    Subprocess p(words, with_env, dir.File(name));
    return p.Wait(30s);
  };
  auto field = [&](const std::string& name, const std::string& out) {
    auto at = out.find("\"" + name + "\":\"");
    if (at == std::string::npos) return std::string();
    at += name.size() + 4;
    return out.substr(at, out.find('"', at) - at);
  };
  ASSERT_EQ(pvctl({"--json", "keys", "create", "--project", "demo", "--name", "a", "--keys-file", keys_file},
                  "create-a.out", env),
            0);
  std::string out_a = pv::testing::ReadFile(dir.File("create-a.out"));
  ASSERT_EQ(pvctl({"--json", "keys", "create", "--project", "demo", "--name", "b", "--keys-file", keys_file},
                  "create-b.out", env),
            0);
  std::string out_b = pv::testing::ReadFile(dir.File("create-b.out"));
  std::string key_a = field("key", out_a), id_a = field("id", out_a);
  std::string key_b = field("key", out_b), id_b = field("id", out_b);
  ASSERT_FALSE(key_a.empty() || key_b.empty()) << out_a << out_b;

  Subprocess ingest({IngestBin(), "--config", dir.File("config.yaml"), "--port-file", dir.File("port")}, env,
                    dir.File("ingest.log"));
  ASSERT_TRUE(pv::testing::WaitFor([&] { return !pv::testing::ReadFile(dir.File("port")).empty(); }, 15s));
  int port = std::stoi(pv::testing::ReadFile(dir.File("port")));
  auto post = [&](const std::string& key, std::string* body = nullptr) {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Post("/api/client/campaigns/44/trigger", {{"Authorization", "Bearer " + key}},
                      R"({"user":{"external_id":"merge","email":"a@b.co"}})", "application/json");
    if (res && body != nullptr) *body = res->body;
    return res ? res->status : -1;
  };
  ASSERT_TRUE(pv::testing::WaitFor([&] { return post(key_a) == 204 && post(key_b) == 204; }, 10s))
      << pv::testing::ReadFile(dir.File("ingest.log"));

  // The topic's (active) records have reached the ingest: from here on it merges both sources.
  ASSERT_TRUE(pv::testing::WaitFor(
      [&] {
        return pv::testing::ReadFile(dir.File("ingest.log")).find("keys_updated_from_topic") !=
               std::string::npos;
      },
      10s));

  // No brokers for pvctl: the revoke cannot reach pv.keys.
  EXPECT_EQ(
      pvctl({"keys", "revoke", id_a, "--keys-file", keys_file}, "revoke.out", {{"PV_KAFKA_BROKERS", ""}}), 1);
  EXPECT_NE(pv::testing::ReadFile(dir.File("revoke.out")).find("NOT revoked on the topic"),
            std::string::npos);
  std::string body;
  EXPECT_TRUE(pv::testing::WaitFor([&] { return post(key_a, &body) == 401; }, 5s));
  EXPECT_NE(body.find("revoked"), std::string::npos) << body;

  // Another machine (its own, empty keys file) deletes key b: a tombstone on pv.keys.
  ASSERT_EQ(pvctl({"keys", "delete", id_b, "--keys-file", dir.File("other-keys.yaml")}, "delete.out", env), 0)
      << pv::testing::ReadFile(dir.File("delete.out"));
  EXPECT_NE(pv::testing::ReadFile(keys_file).find(id_b), std::string::npos) << "this file still lists it";
  EXPECT_TRUE(pv::testing::WaitFor([&] { return post(key_b, &body) == 401; }, 5s));
  EXPECT_NE(body.find("unknown API key"), std::string::npos) << body;
  EXPECT_EQ(post(key_a), 401);
  EXPECT_EQ(ingest.Stop(SIGTERM, 15s), 0);
}

// An ingest process on free ports with the demo catalog and one secret key.
struct IngestUnderTest {
  explicit IngestUnderTest(const std::string& name, const std::string& extra_ingest_settings = "")
      : dir(name), key(pv::GenerateKey(pv::KeyScope::kSecret)), admin_port(pv::testing::FreePort()) {
    pv::KeyStore::SaveFile(dir.File("keys.yaml"),
                           {{"key_1", "t", "demo", pv::KeyScope::kSecret, pv::HashKey(key), "", "", ""}});
    pv::testing::WriteFile(
        dir.File("config.yaml"),
        "log: {level: info}\ncatalog_dir: " PV_SOURCE_DIR "/catalog\nkeys_file: " + dir.File("keys.yaml") +
            "\ningest:\n  host: 127.0.0.1\n  port: 0\n  admin_port: " + std::to_string(admin_port) + "\n" +
            extra_ingest_settings);
    process = std::make_unique<Subprocess>(
        std::vector<std::string>{IngestBin(), "--config", dir.File("config.yaml"), "--port-file",
                                 dir.File("port")},
        std::map<std::string, std::string>{{"PV_KAFKA_BROKERS", broker.bootstrap()}}, dir.File("ingest.log"));
    if (pv::testing::WaitFor([&] { return !pv::testing::ReadFile(dir.File("port")).empty(); }, 15s)) {
      port = std::stoi(pv::testing::ReadFile(dir.File("port")));
    }
  }
  int Post(const std::string& body, int timeout_s = 10) const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(timeout_s, 0);
    auto res = c.Post("/api/client/campaigns/44/trigger", {{"Authorization", "Bearer " + key}}, body,
                      "application/json");
    return res ? res->status : -1;
  }
  int AdminGet(const std::string& path, std::string* body = nullptr) const {
    httplib::Client c("127.0.0.1", admin_port);
    c.set_read_timeout(5, 0);
    auto res = c.Get(path.c_str());
    if (res && body) *body = res->body;
    return res ? res->status : -1;
  }
  std::string Log() const { return pv::testing::ReadFile(dir.File("ingest.log")); }

  pv::testing::DevBroker broker{1};
  TempDir dir;
  std::string key;
  int admin_port;
  int port = 0;
  std::unique_ptr<Subprocess> process;
};

TEST(IngestProcess, SigtermTurnsUnreadyServesForTheDelayThenExitsZero) {
  IngestUnderTest ingest("pv-ingest-delay", "  shutdown_delay_ms: 3000\n");
  ASSERT_GT(ingest.port, 0) << ingest.Log();
  ASSERT_TRUE(pv::testing::WaitFor([&] { return ingest.AdminGet("/readyz") == 200; }, 10s)) << ingest.Log();
  const std::string body = R"({"user":{"external_id":"drain","email":"a@b.co"}})";
  ASSERT_EQ(ingest.Post(body), 204);
  auto sent = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(ingest.process->pid(), SIGTERM), 0);
  EXPECT_TRUE(pv::testing::WaitFor([&] { return ingest.AdminGet("/readyz") == 503; }, 500ms))
      << "unready at once";
  EXPECT_EQ(ingest.Post(body), 204) << "still serving during the delay";
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 3000ms);  // room for a loaded machine
  EXPECT_EQ(ingest.process->Wait(15s), 0) << ingest.Log();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 3000ms) << "exited before the delay";
  EXPECT_EQ(ingest.Post(body, 2), -1) << "the port is closed after exit";
}

// Stoppable at any moment of its start-up: SIGTERM from the first millisecond (config load, catalog,
// producer, key feed, the wait for pv.keys) to serving ends with exit 0, never a crash, a hang or
// exit 1. Only a signal that lands before main (the dynamic loader) may end it by the signal's default
// action (status 143), with nothing opened yet.
TEST(IngestProcess, SigtermAtAnyMomentOfStartUpEndsCleanly) {
  pv::testing::DevBroker broker{1};
  TempDir dir("pv-ingest-early-term");
  pv::KeyStore::SaveFile(dir.File("keys.yaml"),
                         {{"key_1", "t", "demo", pv::KeyScope::kSecret,
                           pv::HashKey(pv::GenerateKey(pv::KeyScope::kSecret)), "", "", ""}});
  pv::testing::WriteFile(
      dir.File("config.yaml"),
      "log: {level: warn}\ncatalog_dir: " PV_SOURCE_DIR "/catalog\nkeys_file: " + dir.File("keys.yaml") +
          "\ningest:\n  host: 127.0.0.1\n  port: 0\n  admin_port: 0\n  shutdown_delay_ms: 0\n");
  int zeros = 0;
  for (int delay_ms : {0, 1, 2, 4, 7, 10, 15, 20, 30, 45, 70, 100, 150, 250, 400, 700}) {
    std::string port_file = dir.File("port" + std::to_string(delay_ms));
    Subprocess ingest({IngestBin(), "--config", dir.File("config.yaml"), "--port-file", port_file},
                      {{"PV_KAFKA_BROKERS", broker.bootstrap()}}, dir.File("ingest.log"));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    bool was_listening = !pv::testing::ReadFile(port_file).empty();
    ASSERT_EQ(::kill(ingest.pid(), SIGTERM), 0);
    int status = ingest.Wait(20s);
    EXPECT_TRUE(status == 0 || status == 128 + SIGTERM)
        << "SIGTERM " << delay_ms << " ms after start: status " << status << "\n"
        << pv::testing::ReadFile(dir.File("ingest.log"));
    if (was_listening) {
      EXPECT_EQ(status, 0) << "SIGTERM " << delay_ms << " ms after start, once listening";
    }
    if (status == 0) ++zeros;
  }
  std::cout << zeros << " of 16 start-ups stopped through the signal handler (exit 0)\n";
  EXPECT_GE(zeros, 3);  // at least the late ones (a loaded machine makes the loader slow)
}

TEST(IngestProcess, TenThousandIdleConnectionsStayUnder128MiBAndTheNextIs503) {
  IngestUnderTest ingest(
      "pv-ingest-10k",
      "  keep_alive_timeout_seconds: 120\n  header_timeout_ms: 120000\n  max_connections: 10000\n"
      "  shutdown_delay_ms: 0\n");
  ASSERT_GT(ingest.port, 0) << ingest.Log();
  constexpr int kConnections = 10000;
  std::vector<std::unique_ptr<pv::testing::RawConnection>> idle;
  idle.reserve(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    idle.push_back(std::make_unique<pv::testing::RawConnection>(ingest.port));
    // Half of them had a request answered on the connection first (keep-alive idle).
    if (i % 2 == 0) {
      ASSERT_TRUE(idle.back()->Send("GET /x HTTP/1.1\r\nHost: h\r\n\r\n"));
    }
  }
  for (int i = 0; i < kConnections; i += 2) {
    auto r = idle[static_cast<size_t>(i)]->Read(5s);
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->status, 404);
  }
  std::string metrics;
  ASSERT_TRUE(pv::testing::WaitFor(
      [&] {
        ingest.AdminGet("/metrics", &metrics);
        return metrics.find("pv_ingest_connections 10000") != std::string::npos;
      },
      10s))
      << metrics.substr(0, 2000);
  long rss_kib = pv::testing::RssKib(ingest.process->pid());
  std::cout << "pv-ingest RSS with " << kConnections << " open connections: " << rss_kib / 1024 << " MiB\n";
  EXPECT_GT(rss_kib, 0);
  EXPECT_LT(rss_kib, 128 * 1024) << "RSS with 10,000 open connections";
  // The 10,001st connection is refused with 503...
  pv::testing::RawConnection extra(ingest.port);
  auto refused = extra.Read(5s);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 503);
  // ...and once one closes, a trigger is served promptly.
  idle.pop_back();
  ASSERT_TRUE(pv::testing::WaitFor(
      [&] {
        ingest.AdminGet("/metrics", &metrics);
        return metrics.find("pv_ingest_connections 9999") != std::string::npos;
      },
      5s));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(ingest.Post(R"({"user":{"external_id":"10k","email":"a@b.co"}})"), 204);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  idle.clear();
  EXPECT_EQ(ingest.process->Stop(SIGTERM, 15s), 0) << ingest.Log();
}

// What every binary serves besides its own families (AdminServer): the build, and Prometheus' process_*
// metrics, read from /proc at each scrape; and --version names the same version.
TEST(IngestProcess, MetricsCarryTheBuildAndTheProcessFamilies) {
  IngestUnderTest ingest("pv-ingest-process-metrics", "  shutdown_delay_ms: 0\n");
  ASSERT_GT(ingest.port, 0) << ingest.Log();
  std::string metrics;
  ASSERT_EQ(ingest.AdminGet("/metrics", &metrics), 200);
  EXPECT_EQ(pv::testing::CheckProcessMetrics(metrics, ingest.process->pid()), "") << metrics;
  EXPECT_EQ(pv::testing::CheckCpuSecondsGrow([&] {
              std::string body;
              ingest.AdminGet("/metrics", &body);
              return body;
            }),
            "");
  // The service's own families are still there, before the common ones.
  EXPECT_LT(metrics.find("pv_ingest_requests_total"), metrics.find("pv_build_info"));
  EXPECT_EQ(ingest.process->Stop(SIGTERM, 15s), 0) << ingest.Log();

  pv::testing::TempDir dir("pv-ingest-version");
  Subprocess version({IngestBin(), "--version"}, {}, dir.File("version.log"));
  EXPECT_EQ(version.Wait(10s), 0);
  EXPECT_EQ(pv::testing::ReadFile(dir.File("version.log"))
                .rfind(std::string("pv-ingest ") + PV_EXPECTED_VERSION + " (commit ", 0),
            0U)
      << pv::testing::ReadFile(dir.File("version.log"));
}

TEST(IngestProcess, AMillionOpenBracketsIs400AndTheProcessLives) {
  IngestUnderTest ingest("pv-ingest-deep", "  shutdown_delay_ms: 0\n");
  ASSERT_GT(ingest.port, 0) << ingest.Log();
  EXPECT_EQ(ingest.Post(std::string(1000000, '[')), 400);
  EXPECT_EQ(ingest.Post(std::string(1000000, '{')), 400);
  EXPECT_TRUE(ingest.process->Running());
  EXPECT_EQ(ingest.Post(R"({"user":{"external_id":"deep","email":"a@b.co"}})"), 204);
  EXPECT_EQ(ingest.process->Stop(SIGTERM, 15s), 0) << ingest.Log();
}

}  // namespace
