// What can be checked of the production-like stack without a Docker engine (none runs here): the
// compose files parse with Debian's docker-compose and define every service; the monitoring UIs are on
// loopback and Grafana has no default password; suppressions have a Redis that never evicts, which
// the config's suppression.redis_url names; Prometheus sends alerts to Alertmanager, which routes them
// to a receiver compose runs; the Grafana dashboard and the Prometheus files are valid; every metric
// they query is one the code exposes. Starting the containers is NOT tested (docs/operations.md "What
// was run"); promtool and amtool checks are in tests/deploy/monitoring_test.sh.
#include <fnmatch.h>
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "pv/config.hpp"
#include "pv/status_store.hpp"
#include "pv/suppression_keys.hpp"
#include "pv/testing/process.hpp"

namespace {

namespace fs = std::filesystem;
using pv::Config;
using pv::testing::ReadFile;

const std::string kRoot = PV_SOURCE_DIR;

std::string DockerCompose() {
  for (const char* path : {"/usr/bin/docker-compose", "/usr/local/bin/docker-compose"}) {
    if (fs::exists(path)) return path;
  }
  return "";
}

// Compose refuses to start without a Grafana admin password (no admin/admin default); the tests
// give this one unless they check that refusal.
constexpr const char* kGrafanaPassword = "compose-test-password";

// Runs docker-compose with `args` in the repository; returns {exit status, output}. An empty env file
// and unset variables keep a developer's .env or shell from changing what is checked.
std::pair<int, std::string> Compose(const std::vector<std::string>& args, bool grafana_password = true) {
  pv::testing::TempDir dir("pv-compose");
  std::ofstream(dir.File("empty.env")).close();
  const std::string script =
      "unset GRAFANA_ADMIN_PASSWORD MONITORING_BIND_ADDRESS REDIS_MAXMEMORY SUPPRESSION_REDIS_MAXMEMORY; "
      "[ -n \"$TEST_GRAFANA_PASSWORD\" ] && export GRAFANA_ADMIN_PASSWORD=\"$TEST_GRAFANA_PASSWORD\"; "
      "cd \"$0\" && exec \"$@\"";
  std::vector<std::string> argv = {
      "/bin/sh", "-c", script, kRoot, DockerCompose(), "--env-file", dir.File("empty.env")};
  argv.insert(argv.end(), args.begin(), args.end());
  pv::testing::Subprocess p(
      argv,
      {{"COMPOSE_PROJECT_NAME", "pv"}, {"TEST_GRAFANA_PASSWORD", grafana_password ? kGrafanaPassword : ""}},
      dir.File("out"));
  int rc = p.Wait(std::chrono::seconds(60));
  return {rc, ReadFile(dir.File("out"))};
}

// The resolved compose.yaml (`docker-compose config`), parsed.
YAML::Node ComposeServices() {
  auto [rc, out] = Compose({"-f", "compose.yaml", "config"});
  EXPECT_EQ(rc, 0) << out;
  return rc == 0 ? YAML::Load(out)["services"] : YAML::Node();
}

std::string Joined(const YAML::Node& list) {
  std::string out;
  for (const auto& part : list) out += part.as<std::string>() + " ";
  return out;
}

// "host:port" of a URL such as http://alert-log:9099/ or redis://redis:6379.
std::string HostOf(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto end = url.find_first_of(":/", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::vector<std::string> RuleFiles() {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(kRoot + "/deploy/prometheus")) {
    std::string name = entry.path().filename();
    if (name.rfind("alerts", 0) == 0 && entry.path().extension() == ".yml") out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every pv_* metric name the code registers (AddCounter/AddGauge/AddHistogram/AddCallbackGauge).
std::set<std::string> ExposedMetrics() {
  std::set<std::string> out;
  std::regex registration(R"(Add(?:Counter|Gauge|Histogram|CallbackGauge)\(\s*"(pv_[a-z0-9_]+)\")");
  for (const char* dir : {"ingest", "dispatcher", "workers", "common"}) {
    for (const auto& entry : fs::recursive_directory_iterator(kRoot + "/" + dir)) {
      if (!entry.is_regular_file()) continue;
      auto ext = entry.path().extension();
      if (ext != ".cpp" && ext != ".hpp") continue;
      std::string text = ReadFile(entry.path());
      for (std::sregex_iterator it(text.begin(), text.end(), registration), end; it != end; ++it) {
        out.insert((*it)[1]);
      }
    }
  }
  return out;
}

// pv_* names used in a query text, with histogram suffixes taken off.
std::set<std::string> QueriedMetrics(const std::string& text) {
  std::set<std::string> out;
  std::regex name(R"(\bpv_[a-z0-9_]+)");
  for (std::sregex_iterator it(text.begin(), text.end(), name), end; it != end; ++it) {
    std::string n = (*it)[0];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s(suffix);
      if (n.size() > s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0)
        n.resize(n.size() - s.size());
    }
    out.insert(n);
  }
  return out;
}

TEST(Compose, ConfigParsesWithDockerCompose) {
  if (DockerCompose().empty())
    GTEST_SKIP() << "docker-compose is not installed (Debian package docker-compose)";
  auto [rc, out] = Compose({"-f", "compose.yaml", "config", "-q"});
  EXPECT_EQ(rc, 0) << out;
  auto [rc3, out3] = Compose({"-f", "compose.yaml", "-f", "compose.kafka3.yaml", "config", "-q"});
  EXPECT_EQ(rc3, 0) << out3;
}

TEST(Compose, DefinesEveryServiceWithItsHealthAndScaling) {
  if (DockerCompose().empty())
    GTEST_SKIP() << "docker-compose is not installed (Debian package docker-compose)";
  auto [rc, out] = Compose({"-f", "compose.yaml", "config"});
  ASSERT_EQ(rc, 0) << out;
  YAML::Node doc = YAML::Load(out);
  YAML::Node services = doc["services"];
  for (const char* name :
       {"kafka", "redis", "suppression-redis", "status-redis", "topics", "ingest", "dispatcher", "email-worker",
        "sms-worker", "push-worker", "kafka-exporter", "redis-exporter", "suppression-redis-exporter",
        "status-redis-exporter", "prometheus", "alertmanager", "alert-log", "grafana"}) {
    EXPECT_TRUE(services[name]) << name << " missing";
  }
  for (const char* worker : {"email-worker", "sms-worker", "push-worker"}) {
    EXPECT_TRUE(services[worker]["deploy"]["replicas"]) << worker << ": no deploy.replicas";
  }
  // The topic-creation service runs pvctl once, and the pipeline waits for it.
  std::string topics_cmd;
  for (const auto& part : services["topics"]["command"]) topics_cmd += part.as<std::string>() + " ";
  EXPECT_NE(topics_cmd.find("topics create"), std::string::npos) << topics_cmd;
  EXPECT_EQ(services["ingest"]["depends_on"]["topics"]["condition"].as<std::string>(),
            "service_completed_successfully");

  auto [rc3, out3] = Compose({"-f", "compose.yaml", "-f", "compose.kafka3.yaml", "config"});
  ASSERT_EQ(rc3, 0) << out3;
  YAML::Node three = YAML::Load(out3)["services"];
  for (const char* name : {"kafka", "kafka-2", "kafka-3"}) EXPECT_TRUE(three[name]) << name << " missing";
}

TEST(Compose, DashboardAndPrometheusQueryOnlyMetricsTheCodeExposes) {
  std::set<std::string> exposed = ExposedMetrics();
  ASSERT_GT(exposed.size(), 20U);
  std::string dashboard = ReadFile(kRoot + "/deploy/grafana/dashboards/pv.json");
  rapidjson::Document d;
  d.Parse(dashboard.c_str());
  ASSERT_FALSE(d.HasParseError()) << "deploy/grafana/dashboards/pv.json is not JSON";
  ASSERT_TRUE(d.HasMember("panels"));
  std::set<std::string> titles;
  for (const auto& p : d["panels"].GetArray()) {
    if (p.HasMember("title")) titles.insert(p["title"].GetString());
  }
  for (const char* must : {"Request rate", "4xx / 5xx", "Broker ack latency", "Sends by status",
                           "Consumer lag", "Dead letters", "Redis memory"}) {
    bool found = false;
    for (const auto& t : titles) found = found || t.find(must) != std::string::npos;
    EXPECT_TRUE(found) << "no panel titled like '" << must << "'";
  }
  std::string rules;
  for (const auto& file : RuleFiles()) {
    std::string text = ReadFile(fs::path(kRoot) / "deploy/prometheus" / file);
    EXPECT_TRUE(YAML::Load(text)["groups"]) << file;
    rules += text;
  }
  YAML::Node prometheus = YAML::LoadFile(kRoot + "/deploy/prometheus/prometheus.yml");
  std::set<std::string> jobs;
  for (const auto& job : prometheus["scrape_configs"]) jobs.insert(job["job_name"].as<std::string>());
  for (const char* job : {"ingest", "dispatcher", "email-worker", "sms-worker", "push-worker",
                          "kafka-exporter", "redis", "alertmanager"}) {
    EXPECT_EQ(jobs.count(job), 1U) << "prometheus.yml does not scrape " << job;
  }
  for (const auto& text : {dashboard, rules}) {
    for (const auto& name : QueriedMetrics(text)) {
      EXPECT_EQ(exposed.count(name), 1U) << name << " is queried but no service registers it";
    }
  }
}

// A rate is not a health signal: the throughput stats ("... / s") once turned red at 1/s, i.e. red on
// every quiet night. They keep one base colour; the error stats keep their thresholds
// (docs/operations.md "Metrics and alerts").
TEST(Compose, ThroughputStatPanelsHaveNoThresholdColour) {
  rapidjson::Document d;
  d.Parse(ReadFile(kRoot + "/deploy/grafana/dashboards/pv.json").c_str());
  ASSERT_FALSE(d.HasParseError());
  int throughput = 0;
  int alarming = 0;
  for (const auto& p : d["panels"].GetArray()) {
    if (!p.HasMember("type") || std::string(p["type"].GetString()) != "stat") continue;
    std::string title = p["title"].GetString();
    const auto& steps = p["fieldConfig"]["defaults"]["thresholds"]["steps"];
    ASSERT_TRUE(steps.IsArray()) << title;
    if (title.size() >= 3 && title.compare(title.size() - 3, 3, "/ s") == 0) {
      ++throughput;
      EXPECT_EQ(steps.Size(), 1U) << title << ": a throughput stat with a threshold colour";
    } else {
      ++alarming;
      EXPECT_GE(steps.Size(), 2U) << title << ": an error stat without a threshold";
    }
  }
  EXPECT_EQ(throughput, 2) << "Triggers accepted / s, Sends delivered / s";
  EXPECT_GE(alarming, 2);
}

// Prometheus, Grafana and Alertmanager answer on the host's loopback only; Grafana has no default
// password; host-port variables are not PV_* settings.
TEST(Compose, MonitoringOnLoopbackAndGrafanaWithoutDefaultPassword) {
  if (DockerCompose().empty())
    GTEST_SKIP() << "docker-compose is not installed (Debian package docker-compose)";
  auto [rc, out] = Compose({"-f", "compose.yaml", "config", "-q"}, /*grafana_password=*/false);
  EXPECT_NE(rc, 0) << "compose starts without GRAFANA_ADMIN_PASSWORD";
  EXPECT_NE(out.find("GRAFANA_ADMIN_PASSWORD"), std::string::npos) << out;

  YAML::Node services = ComposeServices();
  ASSERT_TRUE(services);
  EXPECT_EQ(services["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].as<std::string>(),
            kGrafanaPassword);
  for (const char* name : {"prometheus", "grafana", "alertmanager"}) {
    ASSERT_TRUE(services[name]["ports"]) << name << " is not published";
    for (const auto& port : services[name]["ports"]) {
      // docker-compose 1.29 prints "127.0.0.1:9090:9090/tcp"; the long form has host_ip.
      std::string host = port.IsScalar() ? port.as<std::string>() : port["host_ip"].as<std::string>("");
      EXPECT_EQ(host.rfind("127.0.0.1", 0), 0U) << name << " published beyond loopback: " << host;
    }
  }
  for (const char* name : {"alert-log", "redis", "suppression-redis", "redis-exporter",
                           "suppression-redis-exporter", "kafka-exporter"}) {
    EXPECT_FALSE(services[name]["ports"]) << name << " should not be published";
  }
  std::string raw = ReadFile(kRoot + "/compose.yaml");
  EXPECT_EQ(raw.find("${PV_INGEST_PORT"), std::string::npos) << "PV_INGEST_PORT is the ingest.port setting";
}

// Suppressions have no TTL and are the only record of an unsubscribe: they live in a Redis with
// noeviction and an append-only file, and the shipped config points suppression.redis_url at it; the
// marks and claims instance is capped and evicts only keys with a TTL.
TEST(Compose, SuppressionsLiveInARedisThatNeverEvicts) {
  if (DockerCompose().empty())
    GTEST_SKIP() << "docker-compose is not installed (Debian package docker-compose)";
  YAML::Node services = ComposeServices();
  ASSERT_TRUE(services);
  std::string marks = Joined(services["redis"]["command"]);
  EXPECT_NE(marks.find("--maxmemory-policy volatile-ttl"), std::string::npos) << marks;
  EXPECT_NE(marks.find("--maxmemory 1gb"), std::string::npos) << marks;
  EXPECT_NE(marks.find("--appendonly yes"), std::string::npos) << marks;
  std::string suppression = Joined(services["suppression-redis"]["command"]);
  EXPECT_NE(suppression.find("--maxmemory-policy noeviction"), std::string::npos) << suppression;
  EXPECT_NE(suppression.find("--appendonly yes"), std::string::npos) << suppression;
  EXPECT_NE(Joined(services["suppression-redis"]["volumes"]).find(":/data"), std::string::npos);
  EXPECT_EQ(services["dispatcher"]["depends_on"]["suppression-redis"]["condition"].as<std::string>(""),
            "service_healthy");
  EXPECT_EQ(services["email-worker"]["depends_on"]["redis"]["condition"].as<std::string>(""),
            "service_healthy");

  // The config the containers get, read as the dispatcher and pvctl read it.
  Config config = Config::Load(kRoot + "/deploy/config/pv.yaml");
  EXPECT_EQ(HostOf(pv::SuppressionRedisUrl(config, "")), "suppression-redis");
  EXPECT_EQ(HostOf(config.GetString("redis.url", "")), "redis");

  // Each exporter reads the instance its Prometheus label names.
  EXPECT_NE(Joined(services["redis-exporter"]["command"]).find("redis://redis:6379"), std::string::npos);
  EXPECT_NE(Joined(services["suppression-redis-exporter"]["command"]).find("redis://suppression-redis:6379"),
            std::string::npos);
  YAML::Node prometheus = YAML::LoadFile(kRoot + "/deploy/prometheus/prometheus.yml");
  std::map<std::string, std::string> role_of;
  for (const auto& job : prometheus["scrape_configs"]) {
    if (job["job_name"].as<std::string>() != "redis") continue;
    for (const auto& sc : job["static_configs"]) {
      for (const auto& target : sc["targets"])
        role_of[HostOf(target.as<std::string>())] = sc["labels"]["redis"].as<std::string>("");
    }
  }
  EXPECT_EQ(role_of["redis-exporter"], "marks");
  EXPECT_EQ(role_of["suppression-redis-exporter"], "suppression");
  EXPECT_EQ(role_of["status-redis-exporter"], "status");
}

// Trigger statuses, most of a trigger's Redis writes, live in a Redis of their own that persists
// nothing, so the marks' append-only file carries none of them.
TEST(Compose, StatusesLiveInARedisWithoutPersistence) {
  if (DockerCompose().empty())
    GTEST_SKIP() << "docker-compose is not installed (Debian package docker-compose)";
  YAML::Node services = ComposeServices();
  ASSERT_TRUE(services);
  std::string status = Joined(services["status-redis"]["command"]);
  EXPECT_NE(status.find("--appendonly no"), std::string::npos) << status;
  EXPECT_NE(status.find("--maxmemory-policy volatile-ttl"), std::string::npos) << status;
  // A send's hash a listpack: its entries are longer than Redis's default of 64 bytes.
  EXPECT_NE(status.find("--hash-max-listpack-value 1024"), std::string::npos) << status;
  EXPECT_FALSE(services["status-redis"]["volumes"]);
  EXPECT_NE(Joined(services["status-redis-exporter"]["command"]).find("redis://status-redis:6379"),
            std::string::npos);
  // The config the containers get, read as ingest, the dispatcher and pvctl read it.
  Config config = Config::Load(kRoot + "/deploy/config/pv.yaml");
  EXPECT_EQ(HostOf(pv::StatusOptions::FromConfig(config).redis_url), "status-redis");
}

// Prometheus loads every rule file and sends alerts to Alertmanager; Alertmanager's receivers are
// services compose runs.
TEST(Compose, AlertsReachAlertmanagerAndItsLogReceiver) {
  YAML::Node prometheus = YAML::LoadFile(kRoot + "/deploy/prometheus/prometheus.yml");
  std::vector<std::string> patterns;
  for (const auto& f : prometheus["rule_files"]) patterns.push_back(f.as<std::string>());
  std::vector<std::string> files = RuleFiles();
  ASSERT_GE(files.size(), 3U);
  for (const auto& file : files) {
    bool loaded = std::any_of(patterns.begin(), patterns.end(), [&](const std::string& p) {
      return ::fnmatch(p.c_str(), file.c_str(), 0) == 0;
    });
    EXPECT_TRUE(loaded) << "prometheus.yml does not load " << file;
  }
  std::set<std::string> alertmanagers;
  for (const auto& am : prometheus["alerting"]["alertmanagers"]) {
    for (const auto& sc : am["static_configs"]) {
      for (const auto& t : sc["targets"]) alertmanagers.insert(t.as<std::string>());
    }
  }
  EXPECT_EQ(alertmanagers.count("alertmanager:9093"), 1U)
      << "no alerting: block sending to alertmanager:9093";

  YAML::Node am = YAML::LoadFile(kRoot + "/deploy/alertmanager/alertmanager.yml");
  std::set<std::string> receivers;
  std::set<std::string> webhook_hosts;
  for (const auto& r : am["receivers"]) {
    receivers.insert(r["name"].as<std::string>());
    for (const auto& w : r["webhook_configs"]) webhook_hosts.insert(HostOf(w["url"].as<std::string>()));
  }
  EXPECT_EQ(receivers.count(am["route"]["receiver"].as<std::string>()), 1U);
  EXPECT_EQ(webhook_hosts, std::set<std::string>{"alert-log"});
  EXPECT_TRUE(fs::exists(kRoot + "/deploy/alertmanager/alert_log.py"));

  if (DockerCompose().empty()) GTEST_SKIP() << "docker-compose is not installed: services not checked";
  YAML::Node services = ComposeServices();
  ASSERT_TRUE(services);
  EXPECT_NE(
      Joined(services["alertmanager"]["command"]).find("--config.file=/etc/alertmanager/alertmanager.yml"),
      std::string::npos);
  EXPECT_NE(Joined(services["alertmanager"]["volumes"]).find("deploy/alertmanager:/etc/alertmanager"),
            std::string::npos);
  EXPECT_NE(Joined(services["alert-log"]["volumes"]).find("deploy/alertmanager/alert_log.py"),
            std::string::npos);
  EXPECT_NE(Joined(services["alert-log"]["command"]).find("--port 9099"), std::string::npos);
}

}  // namespace
