// pv-dev-broker: see dev_broker.hpp. In-memory only; for development and tests, never production.
#include "dev_broker.hpp"

// clang-format off
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>  // must follow rdkafka.h
// clang-format on

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "long_poll.hpp"
#include "pv/command_line.hpp"
#include "pv/files.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/strings.hpp"
#include "pv/topics.hpp"

namespace pv::dev_broker {
namespace {

constexpr int kExitRuntimeError = 1;
constexpr int kExitUsage = 2;
constexpr int kHttpThreads = 4;
constexpr int kMaxApiKey = 99;
constexpr auto kMockOpSpacing = std::chrono::milliseconds(10);

struct ApiKeyName {
  std::string_view name;
  int key;
};

// Kafka protocol API keys (the public librdkafka headers do not export them). The mock cluster serves
// a subset; injecting errors for an API it does not serve is harmless.
constexpr ApiKeyName kApiKeys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"DeleteRecords", 21},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
    {"SaslAuthenticate", 36},
};

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

std::string_view ApiKeyNameOf(int key) {
  for (const auto& entry : kApiKeys) {
    if (entry.key == key) return entry.name;
  }
  return "";
}

std::string JsonError(std::string_view message) {
  std::string out = "{\"error\":";
  AppendJsonString(out, message);
  out += "}\n";
  return out;
}

void ReplyJson(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void ReplyError(httplib::Response& res, int status, std::string_view message) {
  ReplyJson(res, status, JsonError(message));
}

void RemoveFile(const std::string& path) {
  if (!path.empty()) ::unlink(path.c_str());
}

// librdkafka's own log lines (syslog levels) become JSON lines too.
void LogFromRdkafka(const rd_kafka_t* /*rk*/, int level, const char* facility, const char* message) {
  log::Level pv_level = log::Level::kDebug;
  if (level <= 3) {
    pv_level = log::Level::kError;
  } else if (level == 4) {
    pv_level = log::Level::kWarn;
  } else if (level <= 6) {
    pv_level = log::Level::kInfo;
  }
  // The host handle has no bootstrap.servers on purpose (see CreateHost): its warning is noise.
  if (std::strstr(message, "bootstrap.servers") != nullptr) pv_level = log::Level::kDebug;
  if (!log::Enabled(pv_level)) return;
  log::Write(pv_level, "rdkafka", {{"facility", facility}, {"message", message}});
}

}  // namespace

namespace {

constexpr const char* kDescription =
    R"(A Kafka-protocol broker for development and tests, built on librdkafka's mock cluster.
NOT Kafka and NOT for production: all data lives in this process's memory only (a few MiB per
partition at most) and is lost when it exits. There is no CreateTopics/Admin API; create topics
with --topic or the control API. Production runs Apache Kafka.)";

constexpr const char* kFooter = R"(Control API (HTTP on 127.0.0.1, random port):
  GET  /healthz                           200 "ok"
  GET  /bootstrap                         the bootstrap list
  GET  /brokers                           broker ids and up/down state
  POST /brokers/{id|all}/down             disconnect the broker(s), refuse new connections
                                          (leaders do not move: their partitions become unavailable)
  POST /brokers/{id|all}/up               accept connections again
  POST /brokers/{id|all}/rtt?ms=N         add N ms of latency to every response (0 to reset)
  POST /errors?api=A&error=E[&count=N][&broker=ID]
                                          the next N (default 1) requests of API A fail with E;
                                          A by name (Produce, Fetch, Metadata, OffsetCommit, JoinGroup,
                                          Heartbeat, FindCoordinator, InitProducerId, ...) or number;
                                          E as rd_kafka_err2name without "ERR_" (REQUEST_TIMED_OUT,
                                          NOT_LEADER_FOR_PARTITION, ...) or number; with broker=ID only
                                          that broker's requests fail
  POST /errors/clear[?api=A]              drop pending cluster-wide injected errors (of A, or of all)
  GET  /topics                            topics created by this broker (startup and control API)
  POST /topics?name=X&partitions=N        create a topic
  POST /topics/error?name=X&error=E       metadata answers give topic X error E (0: none again)
  GET  /long-poll                         the front's counters (fetches held, woken, expired) and
                                          each client.id's fetch.wait.max.ms as last seen

Runs until SIGTERM or SIGINT, then shuts down and exits 0. Logs are JSON lines on stderr.
Exit codes: 0 clean shutdown or --help, 1 runtime failure, 2 bad command line.)";

// "NAME:PARTITIONS" of --topic; "" and `error` set when it is not one.
bool ParseTopic(const std::string& text, TopicRequest& topic, std::string& error) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    error = "expects NAME:PARTITIONS, got '" + text + "'";
    return false;
  }
  topic.name = text.substr(0, colon);
  if (!ValidTopicName(topic.name)) {
    error = "invalid topic name '" + topic.name + "' (1..249 characters of [a-zA-Z0-9._-])";
    return false;
  }
  std::string partitions = text.substr(colon + 1);
  if (!ParseNumber(partitions, topic.partitions) || topic.partitions < 1 ||
      topic.partitions > kMaxPartitions) {
    error = "partitions must be an integer in 1.." + std::to_string(kMaxPartitions) + ", got '" + partitions +
            "'";
    return false;
  }
  return true;
}

// The command line, declared once for ParseArgs and Usage. --topic values land in `topics` (checked).
void Declare(CLI::App& app, Options& options, std::vector<std::string>& topics, bool& no_default_topics,
             bool& no_long_poll) {
  app.description(kDescription);
  app.footer(kFooter);
  app.add_option("--brokers", options.brokers,
                 "number of brokers, 1..32 (default 3); replication factor min(N, 3)")
      ->type_name("N")
      ->check(cli::IntegerIn(1, kMaxBrokers));
  app.add_option("--bootstrap-file", options.bootstrap_file,
                 "write the bootstrap list \"127.0.0.1:port,...\" here (atomically: temporary file then "
                 "rename) once the topics exist; removed on clean shutdown")
      ->type_name("PATH")
      ->check(cli::NotEmpty());
  app.add_option("--control-file", options.control_file,
                 "write \"127.0.0.1:port\" of the control HTTP server here (atomically)")
      ->type_name("PATH")
      ->check(cli::NotEmpty());
  app.add_option("--topic", topics, "create this topic (repeatable; overrides a default topic's partitions)")
      ->type_name("NAME:PARTITIONS")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            TopicRequest topic;
            std::string error;
            return ParseTopic(text, topic, error) ? "" : error;
          },
          ""));
  app.add_flag("--no-default-topics", no_default_topics,
               "do not create the pipeline's default topics (pv::topics::DefaultTopics)");
  app.add_option("--log-level", options.log_level,
                 "debug, info, warn, error (default info); debug adds librdkafka's mock logs")
      ->type_name("LEVEL")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            try {
              log::ParseLevel(text);
              return "";
            } catch (const std::invalid_argument& e) {
              return e.what();
            }
          },
          ""));
  app.add_flag("--no-long-poll", no_long_poll,
               "let clients talk to the mock cluster directly; it then answers a Fetch that finds no data "
               "only after the client's full fetch.wait.max.ms (500 ms by default), even when a record "
               "arrives meanwhile. By default a loopback front holds that answer instead and releases it as "
               "soon as a record is produced to a partition it asked for, as Apache Kafka does");
}

}  // namespace

std::string Usage(std::string_view program) {
  Options options;
  std::vector<std::string> topics;
  bool no_default_topics = false, no_long_poll = false;
  CLI::App app("", std::string(program));
  Declare(app, options, topics, no_default_topics, no_long_poll);
  return app.help();
}

ParseStatus ParseArgs(const std::vector<std::string>& args, Options& out, std::string& error) {
  Options options;
  std::vector<std::string> topics;
  bool no_default_topics = false, no_long_poll = false;
  CLI::App app("", "pv-dev-broker");
  Declare(app, options, topics, no_default_topics, no_long_poll);
  std::ostringstream help, message;
  if (auto code = cli::Parse(app, args, help, message)) {
    if (*code == cli::kExitHelp) return ParseStatus::kHelp;
    error = message.str();
    if (!error.empty() && error.back() == '\n') error.pop_back();
    return ParseStatus::kError;
  }
  for (const auto& text : topics) {
    TopicRequest topic;
    ParseTopic(text, topic, error);  // checked by the command line
    options.topics.push_back(std::move(topic));
  }
  options.default_topics = !no_default_topics;
  options.long_poll = !no_long_poll;
  out = std::move(options);
  return ParseStatus::kOk;
}

std::vector<TopicRequest> StartupTopics(const Options& options) {
  std::vector<TopicRequest> out;
  if (options.default_topics) {
    for (const auto& spec : topics::DefaultTopics()) out.push_back({spec.name, spec.partitions});
  }
  for (const auto& topic : options.topics) {
    bool replaced = false;
    for (auto& existing : out) {
      if (existing.name == topic.name) {
        existing.partitions = topic.partitions;
        replaced = true;
      }
    }
    if (!replaced) out.push_back(topic);
  }
  return out;
}

bool ParseApiKey(std::string_view text, int& out) {
  int number = 0;
  if (ParseNumber(text, number)) {
    if (number < 0 || number > kMaxApiKey) return false;
    out = number;
    return true;
  }
  for (const auto& entry : kApiKeys) {
    if (EqualsIgnoreCase(text, entry.name)) {
      out = entry.key;
      return true;
    }
  }
  return false;
}

bool ParseErrorCode(std::string_view text, int& out) {
  const rd_kafka_err_desc* descs = nullptr;
  size_t count = 0;
  rd_kafka_get_err_descs(&descs, &count);
  int number = 0;
  if (ParseNumber(text, number)) {
    if (number < 0) return false;
    for (size_t i = 0; i < count; ++i) {
      if (descs[i].name != nullptr && static_cast<int>(descs[i].code) == number) {
        out = number;
        return true;
      }
    }
    return false;
  }
  if (StartsWithIgnoreCase(text, "RD_KAFKA_RESP_ERR_")) {
    text.remove_prefix(std::string_view("RD_KAFKA_RESP_ERR_").size());
  } else if (StartsWithIgnoreCase(text, "ERR_")) {
    text.remove_prefix(std::string_view("ERR_").size());
  }
  if (text.empty() || text.front() == '_') return false;
  for (size_t i = 0; i < count; ++i) {
    if (descs[i].name != nullptr && static_cast<int>(descs[i].code) >= 0 &&
        EqualsIgnoreCase(text, descs[i].name)) {
      out = static_cast<int>(descs[i].code);
      return true;
    }
  }
  return false;
}

bool ValidTopicName(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

int ReplicationFactor(int brokers) {
  return brokers < 3 ? brokers : 3;
}

struct DevBroker::Impl {
  struct TopicInfo {
    int partitions;
    int replication_factor;
    std::string source;  // "startup" or "control"
  };

  explicit Impl(Options options) : options_(std::move(options)), broker_up_(options_.brokers, true) {}

  Options options_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string mock_bootstrap_;  // the mock brokers' own listeners
  std::string bootstrap_;       // what clients use: the long-poll front's listeners (or the mock's)
  std::unique_ptr<LongPollFront> front_;
  httplib::Server server_;
  std::thread server_thread_;
  int control_port_ = 0;
  std::string control_content_;
  bool wrote_bootstrap_ = false;
  bool wrote_control_ = false;

  // librdkafka 2.0.2's mock thread serves its op queue and only then drains its wake-up pipe, so an op
  // enqueued in between (e.g. the next call made right after the previous one returned) loses its
  // wake-up and waits for the thread's 1 s poll timeout. Observed here: startup took 1-4 s, shutdown
  // 1 s. Serialising the op-based calls (topic create, broker up/down/rtt, destroy) and spacing them
  // kMockOpSpacing apart keeps them out of that window.
  std::mutex mock_op_mutex_;
  std::chrono::steady_clock::time_point last_mock_op_{};
  template <typename F>
  auto MockOp(F&& op) {
    std::lock_guard lock(mock_op_mutex_);
    std::this_thread::sleep_until(last_mock_op_ + kMockOpSpacing);
    auto result = op();
    last_mock_op_ = std::chrono::steady_clock::now();
    return result;
  }

  std::mutex mutex_;  // guards topics_ and broker_up_ (the mock calls are thread-safe themselves)
  std::map<std::string, TopicInfo> topics_;
  std::vector<bool> broker_up_;

  void CreateHost();
  rd_kafka_resp_err_t CreateTopic(const std::string& name, int partitions, const std::string& source);
  using RouteHandler =
      std::function<void(const httplib::Request&, const std::vector<std::string>&, httplib::Response&)>;
  struct Route {
    std::string method;
    std::regex pattern;
    RouteHandler handler;
  };
  std::vector<Route> routes_;

  void AddRoute(const std::string& method, const std::string& pattern, const RouteHandler& handler);
  void InstallRoutes();

  // Parses "all" or an id; on failure fills the response and returns false.
  bool ParseBrokerId(const std::string& text, httplib::Response& res, int& id);
  void HandleBrokerState(const httplib::Request& req, const std::vector<std::string>& groups,
                         httplib::Response& res);
  void HandleBrokerRtt(const httplib::Request& req, const std::vector<std::string>& groups,
                       httplib::Response& res);
  void HandlePushErrors(const httplib::Request& req, httplib::Response& res);
  void HandleClearErrors(const httplib::Request& req, httplib::Response& res);
  void HandleCreateTopic(const httplib::Request& req, httplib::Response& res);
  void HandleTopicError(const httplib::Request& req, httplib::Response& res);
  std::string TopicsJson();
  std::string BrokersJson();
  std::string LongPollJson();
};

// Hosting choice: an ordinary producer handle with no bootstrap.servers hosts the cluster created
// explicitly with rd_kafka_mock_cluster_new(). With `test.mock.num.brokers` instead, the handle itself
// would become a client of the cluster (metadata requests, connections) whose traffic and errors would
// mix with the clients under test, e.g. while brokers are set down. The host handle never produces.
void DevBroker::Impl::CreateHost() {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  auto set = [&](const char* key, const char* value) {
    if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("librdkafka config ") + key + ": " + errstr);
    }
  };
  set("client.id", "pv-dev-broker-host");
  // The mock brokers' accepted sockets take their options from this handle's configuration
  // (rd_kafka_transport_post_connect_setup). Apache Kafka sets TCP_NODELAY on every connection;
  // without it, small responses wait on Nagle + the client's delayed ACK: ingest's acknowledgements
  // took 40 ms each once producers sent small batches (linger.ms below 1).
  set("socket.nagle.disable", "true");
  if (options_.log_level == "debug") set("debug", "mock,broker");
  rd_kafka_conf_set_log_cb(conf, LogFromRdkafka);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));  // takes conf on success
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("rd_kafka_new: ") + errstr);
  }
  cluster_ = rd_kafka_mock_cluster_new(rk_, options_.brokers);
  if (cluster_ == nullptr) throw std::runtime_error("rd_kafka_mock_cluster_new failed");
  mock_bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  bootstrap_ = mock_bootstrap_;
}

rd_kafka_resp_err_t DevBroker::Impl::CreateTopic(const std::string& name, int partitions,
                                                 const std::string& source) {
  int replication_factor = ReplicationFactor(options_.brokers);
  rd_kafka_resp_err_t err = MockOp(
      [&] { return rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication_factor); });
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::lock_guard lock(mutex_);
    topics_[name] = TopicInfo{partitions, replication_factor, source};
  }
  return err;
}

bool DevBroker::Impl::ParseBrokerId(const std::string& text, httplib::Response& res, int& id) {
  if (text == "all") {
    id = -1;
    return true;
  }
  if (!ParseNumber(text, id)) {
    ReplyError(res, 400, "broker id must be an integer or 'all', got '" + text + "'");
    return false;
  }
  if (id < 1 || id > options_.brokers) {
    ReplyError(res, 404,
               "no broker " + text + " (brokers are 1.." + std::to_string(options_.brokers) + ", or 'all')");
    return false;
  }
  return true;
}

void DevBroker::Impl::HandleBrokerState(const httplib::Request& /*req*/,
                                        const std::vector<std::string>& groups, httplib::Response& res) {
  int id = 0;
  if (!ParseBrokerId(groups.at(0), res, id)) return;
  const bool up = groups.at(1) == "up";
  // One call per broker: works whether or not this librdkafka accepts -1 for "all".
  int first = id < 0 ? 1 : id;
  int last = id < 0 ? options_.brokers : id;
  for (int b = first; b <= last; ++b) {
    rd_kafka_resp_err_t err = MockOp([&] {
      return up ? rd_kafka_mock_broker_set_up(cluster_, b) : rd_kafka_mock_broker_set_down(cluster_, b);
    });
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ReplyError(res, 500, "broker " + std::to_string(b) + ": " + rd_kafka_err2str(err));
      return;
    }
    std::lock_guard lock(mutex_);
    broker_up_[static_cast<size_t>(b - 1)] = up;
  }
  log::Info(up ? "broker_up" : "broker_down", {{"broker", groups.at(0)}});
  ReplyJson(res, 200, BrokersJson());
}

void DevBroker::Impl::HandleBrokerRtt(const httplib::Request& req, const std::vector<std::string>& groups,
                                      httplib::Response& res) {
  int id = 0;
  if (!ParseBrokerId(groups.at(0), res, id)) return;
  int ms = 0;
  std::string text = req.get_param_value("ms");
  if (!ParseNumber(text, ms) || ms < 0 || ms > kMaxRttMs) {
    ReplyError(res, 400, "ms must be an integer in 0.." + std::to_string(kMaxRttMs) + ", got '" + text + "'");
    return;
  }
  int first = id < 0 ? 1 : id;
  int last = id < 0 ? options_.brokers : id;
  for (int b = first; b <= last; ++b) {
    rd_kafka_resp_err_t err = MockOp([&] { return rd_kafka_mock_broker_set_rtt(cluster_, b, ms); });
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ReplyError(res, 500, "broker " + std::to_string(b) + ": " + rd_kafka_err2str(err));
      return;
    }
  }
  log::Info("broker_rtt", {{"broker", groups.at(0)}, {"rtt_ms", ms}});
  std::string body = "{\"broker\":";
  AppendJsonString(body, groups.at(0));
  body += ",\"rtt_ms\":" + std::to_string(ms) + "}\n";
  ReplyJson(res, 200, body);
}

void DevBroker::Impl::HandlePushErrors(const httplib::Request& req, httplib::Response& res) {
  if (!req.has_param("api") || !req.has_param("error")) {
    ReplyError(res, 400,
               "api and error are required, e.g. /errors?api=Produce&error=REQUEST_TIMED_OUT&count=1");
    return;
  }
  int api = 0;
  std::string api_text = req.get_param_value("api");
  if (!ParseApiKey(api_text, api)) {
    ReplyError(res, 400,
               "unknown api '" + api_text +
                   "' (a name such as Produce, Fetch, Metadata, OffsetCommit, JoinGroup, Heartbeat, "
                   "FindCoordinator, InitProducerId, or a number 0.." +
                   std::to_string(kMaxApiKey) + ")");
    return;
  }
  int code = 0;
  std::string error_text = req.get_param_value("error");
  if (!ParseErrorCode(error_text, code)) {
    ReplyError(res, 400,
               "unknown broker error '" + error_text +
                   "' (a name as rd_kafka_err2name gives it without ERR_, e.g. REQUEST_TIMED_OUT, or a "
                   "non-negative number; client-local errors starting with '_' cannot be injected)");
    return;
  }
  int count = 1;
  if (req.has_param("count")) {
    std::string text = req.get_param_value("count");
    if (!ParseNumber(text, count) || count < 1 || count > kMaxErrorCount) {
      ReplyError(res, 400,
                 "count must be an integer in 1.." + std::to_string(kMaxErrorCount) + ", got '" + text + "'");
      return;
    }
  }
  int broker = -1;
  if (req.has_param("broker") && !ParseBrokerId(req.get_param_value("broker"), res, broker)) return;

  const auto err = static_cast<rd_kafka_resp_err_t>(code);
  if (broker < 0) {
    std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), err);
    rd_kafka_mock_push_request_errors_array(cluster_, static_cast<int16_t>(api), errors.size(),
                                            errors.data());
  } else {
    for (int i = 0; i < count; ++i) {
      rd_kafka_resp_err_t push_err = rd_kafka_mock_broker_push_request_error_rtts(
          cluster_, broker, static_cast<int16_t>(api), 1, err, 0);
      if (push_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        ReplyError(res, 500, std::string("push error: ") + rd_kafka_err2str(push_err));
        return;
      }
    }
  }
  log::Info("errors_pushed", {{"api", api},
                              {"api_name", ApiKeyNameOf(api)},
                              {"error", rd_kafka_err2name(err)},
                              {"count", count},
                              {"broker", broker}});
  std::string body = "{\"api\":" + std::to_string(api) + ",\"api_name\":";
  AppendJsonString(body, ApiKeyNameOf(api));
  body += ",\"error\":" + std::to_string(code) + ",\"error_name\":";
  AppendJsonString(body, rd_kafka_err2name(err));
  body += ",\"count\":" + std::to_string(count) + ",\"broker\":";
  body += broker < 0 ? std::string("\"all\"") : std::to_string(broker);
  body += "}\n";
  ReplyJson(res, 200, body);
}

void DevBroker::Impl::HandleClearErrors(const httplib::Request& req, httplib::Response& res) {
  // Clears the cluster-wide stacks only: librdkafka 2.0.2 has no call to clear per-broker stacks.
  if (req.has_param("api")) {
    int api = 0;
    std::string text = req.get_param_value("api");
    if (!ParseApiKey(text, api)) {
      ReplyError(res, 400, "unknown api '" + text + "'");
      return;
    }
    rd_kafka_mock_clear_request_errors(cluster_, static_cast<int16_t>(api));
    log::Info("errors_cleared", {{"api", api}});
  } else {
    for (int api = 0; api <= kMaxApiKey; ++api) {
      rd_kafka_mock_clear_request_errors(cluster_, static_cast<int16_t>(api));
    }
    log::Info("errors_cleared", {{"api", "all"}});
  }
  ReplyJson(res, 200, "{\"cleared\":true}\n");
}

void DevBroker::Impl::HandleCreateTopic(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.get_param_value("name");
  if (!ValidTopicName(name)) {
    ReplyError(res, 400,
               "name must be 1..249 characters of [a-zA-Z0-9._-] (not '.' or '..'), got '" + name + "'");
    return;
  }
  int partitions = 0;
  std::string text = req.get_param_value("partitions");
  if (!ParseNumber(text, partitions) || partitions < 1 || partitions > kMaxPartitions) {
    ReplyError(
        res, 400,
        "partitions must be an integer in 1.." + std::to_string(kMaxPartitions) + ", got '" + text + "'");
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (topics_.count(name) != 0) {
      ReplyError(res, 409, "topic '" + name + "' already exists");
      return;
    }
  }
  rd_kafka_resp_err_t err = CreateTopic(name, partitions, "control");
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    ReplyError(res, 409, "topic '" + name + "' already exists (auto-created by a client?)");
    return;
  }
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    ReplyError(res, 500, std::string("create topic: ") + rd_kafka_err2str(err));
    return;
  }
  log::Info("topic_created", {{"topic", name}, {"partitions", partitions}, {"source", "control"}});
  std::string body = "{\"name\":";
  AppendJsonString(body, name);
  body += ",\"partitions\":" + std::to_string(partitions) +
          ",\"replication_factor\":" + std::to_string(ReplicationFactor(options_.brokers)) + "}\n";
  ReplyJson(res, 201, body);
}

void DevBroker::Impl::HandleTopicError(const httplib::Request& req, httplib::Response& res) {
  std::string name = req.get_param_value("name");
  if (!ValidTopicName(name)) {
    ReplyError(res, 400,
               "name must be 1..249 characters of [a-zA-Z0-9._-] (not '.' or '..'), got '" + name + "'");
    return;
  }
  int code = 0;
  std::string error_text = req.get_param_value("error");
  if (!ParseErrorCode(error_text, code)) {
    ReplyError(res, 400,
               "unknown broker error '" + error_text + "' (e.g. UNKNOWN_TOPIC_OR_PART, or 0 to clear)");
    return;
  }
  const auto err = static_cast<rd_kafka_resp_err_t>(code);
  MockOp([&] {
    rd_kafka_mock_topic_set_error(cluster_, name.c_str(), err);
    return 0;
  });
  log::Info("topic_error_set", {{"topic", name}, {"error", rd_kafka_err2name(err)}});
  std::string body = "{\"name\":";
  AppendJsonString(body, name);
  body += ",\"error\":" + std::to_string(code) + ",\"error_name\":";
  AppendJsonString(body, rd_kafka_err2name(err));
  body += "}\n";
  ReplyJson(res, 200, body);
}

std::string DevBroker::Impl::TopicsJson() {
  std::lock_guard lock(mutex_);
  std::string out = "{\"topics\":[";
  bool first = true;
  for (const auto& [name, info] : topics_) {
    if (!first) out += ',';
    first = false;
    out += "{\"name\":";
    AppendJsonString(out, name);
    out += ",\"partitions\":" + std::to_string(info.partitions) +
           ",\"replication_factor\":" + std::to_string(info.replication_factor) + ",\"source\":";
    AppendJsonString(out, info.source);
    out += '}';
  }
  out += "]}\n";
  return out;
}

std::string DevBroker::Impl::BrokersJson() {
  std::lock_guard lock(mutex_);
  std::string out = "{\"brokers\":[";
  for (size_t i = 0; i < broker_up_.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"id\":" + std::to_string(i + 1) + ",\"up\":" + (broker_up_[i] ? "true" : "false") + "}";
  }
  out += "]}\n";
  return out;
}

std::string DevBroker::Impl::LongPollJson() {
  std::string out = "{\"enabled\":";
  out += front_ ? "true" : "false";
  out += ",\"mock_bootstrap\":";
  AppendJsonString(out, mock_bootstrap_);
  if (front_) {
    LongPollStats s = front_->Stats();
    out += ",\"connections\":" + std::to_string(s.connections) + ",\"fetches\":" + std::to_string(s.fetches) +
           ",\"fetches_held\":" + std::to_string(s.fetches_held) +
           ",\"fetches_woken\":" + std::to_string(s.fetches_woken) +
           ",\"fetches_expired\":" + std::to_string(s.fetches_expired) +
           ",\"fetches_short\":" + std::to_string(s.fetches_short) +
           ",\"partitions_answered\":" + std::to_string(s.partitions_answered) +
           ",\"produces\":" + std::to_string(s.produces);
    // Each per-client map as an object: "name":{"client":value,...}.
    auto by_client = [&out](std::string_view name, const auto& map) {
      out += ",\"";
      out += name;
      out += "\":{";
      bool first = true;
      for (const auto& [client, value] : map) {
        if (!first) out += ',';
        first = false;
        AppendJsonString(out, client);
        out += ':' + std::to_string(value);
      }
      out += '}';
    };
    by_client("fetch_wait_ms_by_client", s.fetch_wait_by_client);
    by_client("fetch_min_bytes_by_client", s.fetch_min_bytes_by_client);
    by_client("fetches_by_client", s.fetches_by_client);
    out += ",\"fetches_other_clients\":" + std::to_string(s.fetches_other_clients);
  }
  out += "}\n";
  return out;
}

void DevBroker::Impl::AddRoute(const std::string& method, const std::string& pattern,
                               const RouteHandler& handler) {
  routes_.push_back(Route{method, std::regex(pattern), handler});
  auto adapter = [handler](const httplib::Request& req, httplib::Response& res) {
    std::vector<std::string> groups;
    for (size_t i = 1; i < req.matches.size(); ++i) groups.push_back(req.matches[i].str());
    handler(req, groups, res);
  };
  if (method == "GET") {
    server_.Get(pattern, adapter);
  } else {
    server_.Post(pattern, adapter);
  }
}

void DevBroker::Impl::InstallRoutes() {
  server_.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  using Groups = std::vector<std::string>;
  using Req = httplib::Request;
  using Res = httplib::Response;
  AddRoute("GET", "/healthz",
           [](const Req&, const Groups&, Res& res) { res.set_content("ok\n", "text/plain"); });
  AddRoute("GET", "/bootstrap",
           [this](const Req&, const Groups&, Res& res) { res.set_content(bootstrap_, "text/plain"); });
  AddRoute("GET", "/brokers",
           [this](const Req&, const Groups&, Res& res) { ReplyJson(res, 200, BrokersJson()); });
  AddRoute("POST", R"(/brokers/([^/]+)/(down|up))",
           [this](const Req& req, const Groups& g, Res& res) { HandleBrokerState(req, g, res); });
  AddRoute("POST", R"(/brokers/([^/]+)/rtt)",
           [this](const Req& req, const Groups& g, Res& res) { HandleBrokerRtt(req, g, res); });
  AddRoute("POST", "/errors/clear",
           [this](const Req& req, const Groups&, Res& res) { HandleClearErrors(req, res); });
  AddRoute("POST", "/errors",
           [this](const Req& req, const Groups&, Res& res) { HandlePushErrors(req, res); });
  AddRoute("GET", "/topics",
           [this](const Req&, const Groups&, Res& res) { ReplyJson(res, 200, TopicsJson()); });
  AddRoute("POST", "/topics/error",
           [this](const Req& req, const Groups&, Res& res) { HandleTopicError(req, res); });
  AddRoute("POST", "/topics",
           [this](const Req& req, const Groups&, Res& res) { HandleCreateTopic(req, res); });
  AddRoute("GET", "/long-poll",
           [this](const Req&, const Groups&, Res& res) { ReplyJson(res, 200, LongPollJson()); });

  // cpp-httplib 0.11.4 answers 400 to a POST that has neither Content-Length nor chunked encoding
  // (what `curl -X POST URL` sends) before routing. Such a request carries no body, so it is safe to
  // dispatch it here, before the server tries to read one.
  server_.set_pre_routing_handler([this](const Req& req, Res& res) {
    if (req.method != "POST" || req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    for (const auto& route : routes_) {
      std::smatch match;
      if (route.method != req.method || !std::regex_match(req.path, match, route.pattern)) continue;
      Groups groups;
      for (size_t i = 1; i < match.size(); ++i) groups.push_back(match[i].str());
      route.handler(req, groups, res);
      if (res.status == -1) res.status = 200;
      return httplib::Server::HandlerResponse::Handled;
    }
    ReplyError(res, 404, "no such endpoint: POST " + req.path + " (see --help for the control API)");
    return httplib::Server::HandlerResponse::Handled;
  });
  // Called for every response >= 400; only fills in a body where a handler gave none (unknown route).
  server_.set_error_handler([](const Req& req, Res& res) {
    if (!res.body.empty()) return;
    ReplyJson(res, res.status,
              JsonError("no such endpoint: " + req.method + " " + req.path + " (status " +
                        std::to_string(res.status) + "; see --help for the control API)"));
  });
  server_.set_exception_handler([](const Req&, Res& res, const std::exception_ptr& ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    ReplyError(res, 500, what);
  });
}

DevBroker::DevBroker(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {}

DevBroker::~DevBroker() {
  Stop();
}

void DevBroker::Start() {
  Impl& s = *impl_;
  // A file left by an earlier run would point at dead ports: remove it before anything else.
  RemoveFile(s.options_.bootstrap_file);
  RemoveFile(s.options_.control_file);

  s.CreateHost();
  log::Info("cluster_created", {{"brokers", s.options_.brokers}, {"bootstrap", s.bootstrap_}});
  for (const auto& topic : StartupTopics(s.options_)) {
    rd_kafka_resp_err_t err = s.CreateTopic(topic.name, topic.partitions, "startup");
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("create topic " + topic.name + ": " + rd_kafka_err2str(err));
    }
    log::Debug("topic_created",
               {{"topic", topic.name}, {"partitions", topic.partitions}, {"source", "startup"}});
  }

  log::Debug("topics_created");
  if (s.options_.long_poll) {
    s.front_ = std::make_unique<LongPollFront>(s.mock_bootstrap_);
    s.front_->Start();
    s.bootstrap_ = s.front_->bootstrap();
    log::Info("long_poll_front", {{"bootstrap", s.bootstrap_}, {"mock", s.mock_bootstrap_}});
  }
  s.InstallRoutes();
  s.control_port_ = s.server_.bind_to_any_port("127.0.0.1");
  if (s.control_port_ <= 0) throw std::runtime_error("control server: cannot bind 127.0.0.1");
  s.server_thread_ = std::thread([&s] { s.server_.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so wait for it (bounded) before going on.
  for (int i = 0; i < 500 && !s.server_.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!s.server_.is_running()) throw std::runtime_error("control server did not start");

  std::string error;
  s.control_content_ = "127.0.0.1:" + std::to_string(s.control_port_);
  if (!s.options_.control_file.empty()) {
    if (!WriteFileAtomically(s.options_.control_file, s.control_content_, error))
      throw std::runtime_error(error);
    s.wrote_control_ = true;
  }
  if (!s.options_.bootstrap_file.empty()) {
    if (!WriteFileAtomically(s.options_.bootstrap_file, s.bootstrap_, error)) throw std::runtime_error(error);
    s.wrote_bootstrap_ = true;
  }
}

void DevBroker::Stop() {
  if (!impl_) return;
  Impl& s = *impl_;
  if (s.server_thread_.joinable()) {
    s.server_.stop();
    s.server_thread_.join();
    log::Debug("control_server_stopped");
  }
  if (s.front_) {
    s.front_->Stop();
    s.front_.reset();
  }
  if (s.cluster_ != nullptr) {
    s.MockOp([&s] {
      rd_kafka_mock_cluster_destroy(s.cluster_);
      return 0;
    });
    s.cluster_ = nullptr;
    log::Debug("cluster_destroyed");
  }
  if (s.rk_ != nullptr) {
    rd_kafka_destroy(s.rk_);
    s.rk_ = nullptr;
  }
  // Remove the files only if they still hold what this process wrote (another instance may have
  // replaced them since).
  if (s.wrote_bootstrap_ && ReadFile(s.options_.bootstrap_file) == s.bootstrap_) {
    RemoveFile(s.options_.bootstrap_file);
  }
  if (s.wrote_control_ && ReadFile(s.options_.control_file) == s.control_content_) {
    RemoveFile(s.options_.control_file);
  }
  s.wrote_bootstrap_ = false;
  s.wrote_control_ = false;
}

const std::string& DevBroker::bootstrap() const {
  return impl_->bootstrap_;
}
int DevBroker::control_port() const {
  return impl_->control_port_;
}

int Main(int argc, char** argv) {
  // Block the shutdown signals before any thread exists (librdkafka's, the mock cluster's, the
  // control server's), so every thread inherits the mask and sigwait() below receives them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  std::string program = argc > 0 ? argv[0] : "pv-dev-broker";
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  Options options;
  std::string error;
  switch (ParseArgs(args, options, error)) {
    case ParseStatus::kHelp:
      std::cout << Usage(program);
      return 0;
    case ParseStatus::kError:
      std::cerr << error << "\n";  // names the problem and the --help to run
      return kExitUsage;
    case ParseStatus::kOk:
      break;
  }
  log::SetService("dev-broker");
  log::SetLevel(log::ParseLevel(options.log_level));

  DevBroker broker(options);
  try {
    broker.Start();
  } catch (const std::exception& e) {
    log::Error("start_failed", {{"error", e.what()}});
    broker.Stop();
    return kExitRuntimeError;
  }
  log::Info("ready", {{"bootstrap", broker.bootstrap()},
                      {"control", "127.0.0.1:" + std::to_string(broker.control_port())},
                      {"brokers", options.brokers},
                      {"topics", static_cast<std::int64_t>(StartupTopics(options).size())},
                      {"storage", "memory only: data is lost on exit; development and tests only"}});

  int received = 0;
  while (sigwait(&signals, &received) != 0) {
  }
  log::Info("shutdown", {{"signal", received == SIGTERM ? "SIGTERM" : "SIGINT"}});
  broker.Stop();
  log::Info("stopped");
  return 0;
}

}  // namespace pv::dev_broker
