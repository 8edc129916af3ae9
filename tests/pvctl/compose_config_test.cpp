// What can be checked of the production-like stack without a Docker engine (none runs here): the
// compose files parse with Debian's docker-compose and define every service; the Grafana dashboard and
// the Prometheus files are valid; every metric they query is one the code exposes. Starting the
// containers is NOT tested (docs/operations.md "What was run").
#include <gtest/gtest.h>
#include <rapidjson/document.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "process.hpp"

namespace {

namespace fs = std::filesystem;
using pv::testing::ReadFile;

const std::string kRoot = PV_SOURCE_DIR;

std::string DockerCompose() {
  for (const char* path : {"/usr/bin/docker-compose", "/usr/local/bin/docker-compose"}) {
    if (fs::exists(path)) return path;
  }
  return "";
}

// Runs docker-compose with `args` in the repository; returns {exit status, output}.
std::pair<int, std::string> Compose(const std::vector<std::string>& args) {
  pv::testing::TempDir dir("pv-compose");
  std::vector<std::string> argv = {"/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", kRoot, DockerCompose()};
  argv.insert(argv.end(), args.begin(), args.end());
  pv::testing::Subprocess p(argv, {{"COMPOSE_PROJECT_NAME", "pv"}}, dir.File("out"));
  int rc = p.Wait(std::chrono::seconds(60));
  return {rc, ReadFile(dir.File("out"))};
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
  for (const char* name : {"kafka", "redis", "topics", "ingest", "dispatcher", "email-worker", "sms-worker",
                           "push-worker", "prometheus", "grafana"}) {
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
                           "Consumer lag", "Dead letters"}) {
    bool found = false;
    for (const auto& t : titles) found = found || t.find(must) != std::string::npos;
    EXPECT_TRUE(found) << "no panel titled like '" << must << "'";
  }
  std::string rules = ReadFile(kRoot + "/deploy/prometheus/alerts.yml");
  YAML::Node parsed_rules = YAML::Load(rules);
  EXPECT_TRUE(parsed_rules["groups"]);
  YAML::Node prometheus = YAML::LoadFile(kRoot + "/deploy/prometheus/prometheus.yml");
  std::set<std::string> jobs;
  for (const auto& job : prometheus["scrape_configs"]) jobs.insert(job["job_name"].as<std::string>());
  for (const char* job :
       {"ingest", "dispatcher", "email-worker", "sms-worker", "push-worker", "kafka-exporter"}) {
    EXPECT_EQ(jobs.count(job), 1U) << "prometheus.yml does not scrape " << job;
  }
  for (const auto& text : {dashboard, rules}) {
    for (const auto& name : QueriedMetrics(text)) {
      EXPECT_EQ(exposed.count(name), 1U) << name << " is queried but no service registers it";
    }
  }
}

}  // namespace
