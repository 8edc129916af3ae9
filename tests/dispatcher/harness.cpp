#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "process.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"

namespace pv::dispatcher_it {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "pv-dispatcher-it.XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("PV_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path_, ec);
}

void TempDir::Write(const std::string& name, const std::string& content) const {
  std::filesystem::path p = std::filesystem::path(path_) / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p) << content;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout) {
  std::string content;
  WaitUntil(
      [&] {
        content = ReadFile(path);
        return !content.empty();
      },
      timeout);
  while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) content.pop_back();
  return content;
}

bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
}

int FreePort() {
  return pv::testing::FreePort();
}

// ---- Process ----

Process::Process(const std::vector<std::string>& argv, const std::string& log_path) : log_path_(log_path) {
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    // The test runner may block signals in its threads; the child must start with none blocked.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execv(args[0], args.data());
    std::perror("execv");
    std::_Exit(127);
  }
}

Process::~Process() {
  if (!reaped_) Stop();
}

void Process::Signal(int sig) const {
  if (!reaped_) ::kill(pid_, sig);
}

bool Process::Running() {
  if (reaped_) return false;
  pid_t r = ::waitpid(pid_, &status_, WNOHANG);
  if (r == pid_) reaped_ = true;
  return !reaped_;
}

int Process::Stop(std::chrono::milliseconds timeout) {
  if (reaped_) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  ::kill(pid_, SIGTERM);
  if (WaitUntil([&] { return !Running(); }, timeout)) return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  Kill();
  return -1;
}

void Process::Kill() {
  if (reaped_) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status_, 0);
  reaped_ = true;
}

std::string Process::Log() const {
  return ReadFile(log_path_);
}

// ---- DevBroker ----

DevBroker::DevBroker(const TempDir& dir, const std::vector<std::string>& extra_topics, int brokers,
                     bool default_topics) {
  std::vector<std::string> argv = {PV_DEV_BROKER_BIN,   "--brokers",           std::to_string(brokers),
                                   "--bootstrap-file",  dir.File("bootstrap"), "--control-file",
                                   dir.File("control"), "--log-level",         "warn"};
  if (!default_topics) argv.emplace_back("--no-default-topics");
  for (const auto& t : extra_topics) {
    argv.push_back("--topic");
    argv.push_back(t);
  }
  process_ = std::make_unique<Process>(argv, dir.File("broker.log"));
  bootstrap_ = WaitForFile(dir.File("bootstrap"), 20s);
  if (bootstrap_.empty()) throw std::runtime_error("dev broker did not start: " + process_->Log());
  control_ = WaitForFile(dir.File("control"), 5s);
}

int DevBroker::Post(const std::string& path_and_query) const {
  auto colon = control_.rfind(':');
  if (colon == std::string::npos) return 0;
  httplib::Client client(control_.substr(0, colon), std::stoi(control_.substr(colon + 1)));
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Post(path_and_query.c_str());
  return res ? res->status : 0;
}

// ---- RedisServer ----

RedisServer::RedisServer(const TempDir& dir, int port) : port_(port == 0 ? FreePort() : port) {
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/redis-server", "--port", std::to_string(port_), "--bind",
                               "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"},
      dir.File("redis-" + std::to_string(port_) + ".log"));
  if (!WaitUntil([&] { return Cli("PING").find("PONG") != std::string::npos; }, 10s)) {
    throw std::runtime_error("redis-server did not start");
  }
}

std::string RedisServer::Cli(const std::string& args) const {
  std::string cmd = "redis-cli -p " + std::to_string(port_) + " " + args + " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  ::pclose(p);
  return out;
}

// ---- TopicReader ----

TopicReader::TopicReader(const std::string& bootstrap, const std::vector<std::string>& topics) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const char* k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK)
      throw std::runtime_error(err);
  };
  set("bootstrap.servers", bootstrap);
  set("group.id", "pv-test-reader-" + RandomHex(6));
  set("enable.auto.commit", "false");
  set("enable.partition.eof", "false");
  set("log_level", "3");
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk_ == nullptr) throw std::runtime_error(err);
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(16);
  for (const auto& topic : topics) {
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk_, 0, rkt, &md, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
        md->topics[0].partition_cnt == 0) {
      rd_kafka_topic_destroy(rkt);
      if (md != nullptr) rd_kafka_metadata_destroy(md);
      throw std::runtime_error("no metadata for topic " + topic);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      rd_kafka_topic_partition_list_add(list, topic.c_str(), md->topics[0].partitions[p].id)->offset =
          RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
  }
  rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
}

TopicReader::~TopicReader() {
  rd_kafka_consumer_close(rk_);
  rd_kafka_destroy(rk_);
}

const std::vector<Record>& TopicReader::ReadUntil(const std::function<bool(const std::vector<Record>&)>& done,
                                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(records_) && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, 50);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      Record r;
      r.topic = rd_kafka_topic_name(m->rkt);
      r.partition = m->partition;
      r.offset = m->offset;
      r.key = std::string(kafka::Key(m));
      r.value = std::string(kafka::Payload(m));
      r.headers = kafka::Headers(m);
      rd_kafka_timestamp_type_t type;
      r.timestamp = FromUnixMillis(rd_kafka_message_timestamp(m, &type));
      r.read_at = std::chrono::system_clock::now();
      records_.push_back(std::move(r));
    }
    rd_kafka_message_destroy(m);
  }
  return records_;
}

std::vector<Record> TopicReader::Of(const std::string& topic) const {
  std::vector<Record> out;
  for (const auto& r : records_) {
    if (r.topic == topic) out.push_back(r);
  }
  return out;
}

// ---- TriggerWriter ----

TriggerWriter::TriggerWriter(const std::string& bootstrap) {
  kafka::Settings settings;
  settings.brokers = bootstrap;
  kafka::ProducerOptions options;
  options.client_id = "pv-test-triggers";
  options.defaults = {{"linger.ms", "1"}};
  producer_ = std::make_unique<kafka::Producer>(settings, options);
}

std::string TriggerValue(const std::string& trigger_id, const std::string& campaign_id,
                         const std::string& user_json, const std::string& event_json) {
  return R"({"v":1,"trigger_id":")" + trigger_id + R"(","project":"demo","campaign_id":")" + campaign_id +
         R"(","received_at":")" + FormatTimestamp(std::chrono::system_clock::now()) + R"(","user":)" +
         user_json + R"(,"event":)" + event_json + "}";
}

std::int64_t CommittedOffset(const std::string& bootstrap, const std::string& group, const std::string& topic,
                             std::int32_t partition) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"bootstrap.servers", bootstrap}, {"group.id", group}, {"log_level", "3"}}) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(err);
    }
  }
  // A consumer that never subscribes: it only asks the coordinator (OffsetFetch), it joins nothing.
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) throw std::runtime_error(err);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), partition);
  std::int64_t offset = -1;
  if (rd_kafka_committed(rk, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[0].err == 0) {
    offset = list->elems[0].offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  rd_kafka_destroy(rk);
  return offset;
}

std::string TriggerWriter::Write(const std::string& campaign_id, const std::string& external_id,
                                 const std::string& user_json, const std::string& event_json,
                                 const std::string& trigger_id) {
  std::string id = trigger_id.empty() ? NewTriggerId() : trigger_id;
  std::string value = TriggerValue(id, campaign_id, user_json, event_json);
  auto group = std::make_shared<kafka::DeliveryGroup>(1);
  kafka::Header header{"pv-trigger-id", id};
  if (producer_->Produce("pv.triggers", external_id, value, std::span<const kafka::Header>(&header, 1),
                         group) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error("produce failed");
  }
  groups_.push_back(group);
  return id;
}

bool TriggerWriter::Flush(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (const auto& g : groups_) {
    if (!g->Wait(deadline) || g->first_error() != RD_KAFKA_RESP_ERR_NO_ERROR) return false;
  }
  groups_.clear();
  return true;
}

// ---- HTTP ----

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2, 0);
  client.set_read_timeout(5, 0);
  auto res = client.Get(path.c_str());
  if (!res) return {0, ""};
  return {res->status, res->body};
}

double MetricValue(const std::string& exposition, const std::string& series) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

}  // namespace pv::dispatcher_it
