// Tests of pv-dev-broker: the parsing helpers directly, then the real binary as a subprocess, driven
// through its control API and used by real librdkafka clients over loopback. Every wait is bounded.
#include "dev_broker.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <librdkafka/rdkafka.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "long_poll.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/process.hpp"
#include "pv/topics.hpp"

#ifndef PV_DEV_BROKER_BIN
#error "PV_DEV_BROKER_BIN must name the pv-dev-broker binary"
#endif

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = 10s;
constexpr auto kStopTimeout = 10s;
constexpr int32_t kAnyPartition = -1;  // RD_KAFKA_PARTITION_UA without its C cast

using pv::testing::ParseJson;
using pv::testing::ReadFile;

// ---------------------------------------------------------------------------------------------------
// The broker subprocess. Not pv::testing::DevBroker, which hides what these tests check: how the binary
// starts (or refuses to), its exit status, the files it leaves.

class BrokerProcess {
 public:
  BrokerProcess() = default;
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;
  // A test that failed before Stop() leaves nothing behind: the Subprocess kills it, the TempDir goes.
  ~BrokerProcess() = default;

  // Starts the binary with `extra_args` and waits (bounded) for its bootstrap and control files.
  ::testing::AssertionResult Start(const std::vector<std::string>& extra_args = {}) {
    bootstrap_file_ = dir_.File("bootstrap");
    control_file_ = dir_.File("control");
    std::vector<std::string> args = {PV_DEV_BROKER_BIN, "--bootstrap-file", bootstrap_file_, "--control-file",
                                     control_file_};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    process_ = std::make_unique<pv::testing::Subprocess>(args, std::map<std::string, std::string>{},
                                                         dir_.File("broker.log"));
    bool ready = pv::testing::WaitFor(
        [&] {
          return !process_->Running() ||
                 (std::filesystem::exists(bootstrap_file_) && std::filesystem::exists(control_file_));
        },
        kStartTimeout);
    if (!process_->Running()) {
      return ::testing::AssertionFailure()
             << "pv-dev-broker exited early (status " << process_->Wait(0ms) << "):\n"
             << Log();
    }
    if (!ready) return ::testing::AssertionFailure() << "no bootstrap/control file after 10 s:\n" << Log();
    bootstrap_ = ReadFile(bootstrap_file_);
    std::string control = ReadFile(control_file_);
    auto colon = control.rfind(':');
    if (control.rfind("127.0.0.1:", 0) != 0 || colon == std::string::npos) {
      return ::testing::AssertionFailure() << "bad control file content '" << control << "'";
    }
    control_port_ = std::stoi(control.substr(colon + 1));
    return ::testing::AssertionSuccess();
  }

  // SIGTERM, then waits (bounded) and returns the exit status, or nullopt if it had to be killed.
  std::optional<int> Stop() {
    if (!process_ || !process_->Running()) return std::nullopt;
    process_->Signal(SIGTERM);
    int status = process_->Wait(kStopTimeout);
    if (status == -1) {
      process_->Kill();
      return std::nullopt;
    }
    return status;
  }

  httplib::Client Control() const {
    httplib::Client client("127.0.0.1", control_port_);
    client.set_connection_timeout(5, 0);
    client.set_read_timeout(10, 0);
    return client;
  }

  // POST with an empty body; returns the status (-1 on transport error) and fills `body`.
  int Post(const std::string& path, std::string* body = nullptr) const {
    auto client = Control();
    auto res = client.Post(path.c_str());
    if (!res) return -1;
    if (body != nullptr) *body = res->body;
    return res->status;
  }
  int Get(const std::string& path, std::string* body = nullptr) const {
    auto client = Control();
    auto res = client.Get(path.c_str());
    if (!res) return -1;
    if (body != nullptr) *body = res->body;
    return res->status;
  }

  std::string Log() const { return process_ ? process_->Log() : std::string(); }
  const std::string& bootstrap() const { return bootstrap_; }
  const std::string& bootstrap_file() const { return bootstrap_file_; }
  const std::string& control_file() const { return control_file_; }
  int control_port() const { return control_port_; }

 private:
  pv::testing::TempDir dir_{"pv-dev-broker-test"};
  std::unique_ptr<pv::testing::Subprocess> process_;
  std::string bootstrap_file_;
  std::string control_file_;
  std::string bootstrap_;
  int control_port_ = 0;
};

// ---------------------------------------------------------------------------------------------------
// librdkafka clients.

struct Delivery {
  std::atomic<bool> done{false};
  std::atomic<int> err{0};
};

struct RkDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using RkPtr = std::unique_ptr<rd_kafka_t, RkDeleter>;

void OnDelivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
  auto* d = static_cast<Delivery*>(msg->_private);
  if (d == nullptr) return;
  d->err = static_cast<int>(msg->err);
  d->done = true;
}

RkPtr MakeClient(rd_kafka_type_t type, const std::map<std::string, std::string>& settings) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      ADD_FAILURE() << "config " << key << ": " << errstr;
    }
  }
  if (type == RD_KAFKA_PRODUCER) rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    ADD_FAILURE() << "rd_kafka_new: " << errstr;
  }
  return RkPtr(rk);
}

std::map<std::string, std::string> ProducerSettings(const std::string& bootstrap) {
  return {{"bootstrap.servers", bootstrap}, {"acks", "all"},
          {"enable.idempotence", "true"},   {"linger.ms", "0"},
          {"reconnect.backoff.ms", "50"},   {"reconnect.backoff.max.ms", "500"},
          {"message.timeout.ms", "5000"}};
}

// Produces one record and waits (bounded) for its delivery report; returns its error.
rd_kafka_resp_err_t ProduceSync(rd_kafka_t* rk, const std::string& topic, const std::string& key,
                                const std::string& value, int32_t partition = kAnyPartition,
                                std::chrono::milliseconds wait = 15s) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (rkt == nullptr) return rd_kafka_last_error();
  Delivery delivery;
  int rc = rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, const_cast<char*>(value.data()),
                            value.size(), key.data(), key.size(), &delivery);
  if (rc != 0) {
    rd_kafka_topic_destroy(rkt);
    return rd_kafka_last_error();
  }
  const auto deadline = Clock::now() + wait;
  while (!delivery.done && Clock::now() < deadline) rd_kafka_poll(rk, 50);
  if (!delivery.done) {
    // Make sure no delivery report can touch `delivery` after it goes out of scope.
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && !delivery.done; ++i) rd_kafka_poll(rk, 50);
  }
  rd_kafka_topic_destroy(rkt);
  return delivery.done ? static_cast<rd_kafka_resp_err_t>(delivery.err.load()) : RD_KAFKA_RESP_ERR__TIMED_OUT;
}

// Partition count and replica count of the first partition of `topic`, from the cluster's metadata.
std::optional<std::pair<int, int>> TopicLayout(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md == nullptr) return std::nullopt;
  std::optional<std::pair<int, int>> out;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
      md->topics[0].partition_cnt > 0) {
    out = std::make_pair(md->topics[0].partition_cnt, md->topics[0].partitions[0].replica_cnt);
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

int CountOf(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

// Leader broker id of each partition of `topic`, by partition id.
std::vector<int32_t> PartitionLeaders(rd_kafka_t* rk, const std::string& topic) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 5000);
  rd_kafka_topic_destroy(rkt);
  std::vector<int32_t> out;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md == nullptr) return out;
  if (md->topic_cnt == 1) {
    out.resize(static_cast<size_t>(md->topics[0].partition_cnt), -1);
    for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
      const auto& part = md->topics[0].partitions[i];
      if (part.id >= 0 && part.id < md->topics[0].partition_cnt)
        out[static_cast<size_t>(part.id)] = part.leader;
    }
  }
  rd_kafka_metadata_destroy(md);
  return out;
}

// name -> {partitions, replication_factor} from GET /topics.
std::map<std::string, std::pair<int, int>> ListedTopics(const BrokerProcess& broker) {
  std::string body;
  EXPECT_EQ(broker.Get("/topics", &body), 200);
  auto doc = ParseJson(body);
  std::map<std::string, std::pair<int, int>> out;
  if (!doc.IsObject() || !doc.HasMember("topics")) return out;
  for (const auto& t : doc["topics"].GetArray()) {
    out[t["name"].GetString()] = {t["partitions"].GetInt(), t["replication_factor"].GetInt()};
  }
  return out;
}

class DevBrokerProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(broker_.Start()); }
  void TearDown() override {
    auto status = broker_.Stop();
    ASSERT_TRUE(status.has_value()) << "pv-dev-broker did not exit within 10 s of SIGTERM";
    EXPECT_EQ(*status, 0) << broker_.Log();
    EXPECT_FALSE(std::filesystem::exists(broker_.bootstrap_file())) << "bootstrap file left after shutdown";
    if (HasFailure()) std::cerr << "--- broker log ---\n" << broker_.Log();
  }
  BrokerProcess broker_;
};

// ---------------------------------------------------------------------------------------------------
// Helpers, tested directly.

TEST(DevBrokerParse, ApiKeysByNameAndNumber) {
  using pv::dev_broker::ParseApiKey;
  int key = -1;
  const std::map<std::string, int> expected = {{"Produce", 0},
                                               {"fetch", 1},
                                               {"Metadata", 3},
                                               {"OffsetCommit", 8},
                                               {"FindCoordinator", 10},
                                               {"JOINGROUP", 11},
                                               {"Heartbeat", 12},
                                               {"InitProducerId", 22},
                                               {"7", 7}};
  for (const auto& [text, value] : expected) {
    ASSERT_TRUE(ParseApiKey(text, key)) << text;
    EXPECT_EQ(key, value) << text;
  }
  for (const char* bad : {"", "Nope", "-1", "100", "1x", " 0"}) EXPECT_FALSE(ParseApiKey(bad, key)) << bad;
}

TEST(DevBrokerParse, ErrorCodesByNameAndNumber) {
  using pv::dev_broker::ParseErrorCode;
  int code = -1;
  ASSERT_TRUE(ParseErrorCode("REQUEST_TIMED_OUT", code));
  EXPECT_EQ(code, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  ASSERT_TRUE(ParseErrorCode("ERR_NOT_LEADER_FOR_PARTITION", code));
  EXPECT_EQ(code, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
  ASSERT_TRUE(ParseErrorCode("not_enough_replicas", code));
  EXPECT_EQ(code, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
  ASSERT_TRUE(ParseErrorCode("7", code));
  EXPECT_EQ(code, 7);
  // Client-local errors cannot come from a broker; unknown names and numbers are refused.
  for (const char* bad : {"_TIMED_OUT", "ERR__TRANSPORT", "-185", "NOPE", "", "99999"}) {
    EXPECT_FALSE(ParseErrorCode(bad, code)) << bad;
  }
}

TEST(DevBrokerParse, CommandLine) {
  using namespace pv::dev_broker;
  Options options;
  std::string error;
  ASSERT_EQ(ParseArgs({"--brokers", "1", "--topic", "pv.triggers:2", "--topic=extra.topic:5",
                       "--log-level=warn", "--bootstrap-file", "/tmp/b"},
                      options, error),
            ParseStatus::kOk)
      << error;
  EXPECT_EQ(options.brokers, 1);
  EXPECT_EQ(options.bootstrap_file, "/tmp/b");
  EXPECT_EQ(options.log_level, "warn");
  auto topics = StartupTopics(options);
  EXPECT_EQ(topics.size(), pv::topics::DefaultTopics().size() + 1);
  std::map<std::string, int> by_name;
  for (const auto& t : topics) by_name[t.name] = t.partitions;
  EXPECT_EQ(by_name["pv.triggers"], 2);  // overridden
  EXPECT_EQ(by_name["extra.topic"], 5);  // added
  EXPECT_EQ(ReplicationFactor(1), 1);
  EXPECT_EQ(ReplicationFactor(5), 3);

  ASSERT_EQ(ParseArgs({"--no-default-topics", "--topic", "a:1"}, options, error), ParseStatus::kOk);
  ASSERT_EQ(StartupTopics(options).size(), 1u);

  EXPECT_EQ(ParseArgs({"--help"}, options, error), ParseStatus::kHelp);
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{{"--brokers", "0"},
                                                                            {"--brokers"},
                                                                            {"--topic", "x"},
                                                                            {"--topic", "bad/name:1"},
                                                                            {"--topic", "x:0"},
                                                                            {"--log-level", "loud"},
                                                                            {"--what"}}) {
    EXPECT_EQ(ParseArgs(bad, options, error), ParseStatus::kError) << bad[0];
    EXPECT_NE(error.find("run 'pv-dev-broker --help'"), std::string::npos) << error;
  }
  // One line that names the problem (CLI11, pv/command_line.hpp).
  ParseArgs({"--brokers", "0"}, options, error);
  EXPECT_EQ(error, "pv-dev-broker: --brokers: '0' is not an integer in 1..32; run 'pv-dev-broker --help'");
  ParseArgs({"--topic", "x:0"}, options, error);
  EXPECT_EQ(error,
            "pv-dev-broker: --topic: partitions must be an integer in 1..1000, got '0'; run 'pv-dev-broker "
            "--help'");
  ParseArgs({"--no-long-pol"}, options, error);
  EXPECT_EQ(
      error,
      "pv-dev-broker: unknown option '--no-long-pol' (did you mean '--no-long-poll'?); run 'pv-dev-broker "
      "--help'");
  ParseArgs({"--brokers"}, options, error);
  EXPECT_EQ(error, "pv-dev-broker: --brokers needs a value; run 'pv-dev-broker --help'");
  ASSERT_EQ(ParseArgs({"--no-long-poll", "--control-file=/tmp/c"}, options, error), ParseStatus::kOk)
      << error;
  EXPECT_FALSE(options.long_poll);
  EXPECT_TRUE(options.default_topics);
  EXPECT_EQ(options.control_file, "/tmp/c");
  std::string usage = Usage("pv-dev-broker");
  for (const char* text :
       {"memory only", "--topic NAME:PARTITIONS", "--no-long-poll", "POST /errors?api=A"}) {
    EXPECT_NE(usage.find(text), std::string::npos) << text;
  }
}

TEST(DevBrokerParse, TopicNames) {
  using namespace pv::dev_broker;
  EXPECT_TRUE(ValidTopicName("pv.send.email"));
  EXPECT_TRUE(ValidTopicName("A-b_9"));
  for (const char* bad : {"", ".", "..", "a/b", "a b", "ü"}) EXPECT_FALSE(ValidTopicName(bad)) << bad;
  EXPECT_FALSE(ValidTopicName(std::string(250, 'a')));
}

// ---------------------------------------------------------------------------------------------------
// The binary.

// ---------------------------------------------------------------------------------------------------
// The long-poll front's wire helpers, on hand-built frames (big-endian, as Kafka writes them).

class FrameBuilder {
 public:
  FrameBuilder& I8(int8_t v) { return Put(static_cast<uint8_t>(v), 1); }
  FrameBuilder& I16(int16_t v) { return Put(static_cast<uint16_t>(v), 2); }
  FrameBuilder& I32(int32_t v) { return Put(static_cast<uint32_t>(v), 4); }
  FrameBuilder& I64(int64_t v) { return Put(static_cast<uint64_t>(v), 8); }
  FrameBuilder& Str(const std::string& v) {
    I16(static_cast<int16_t>(v.size()));
    bytes_ += v;
    return *this;
  }
  FrameBuilder& NullStr() { return I16(-1); }
  FrameBuilder& Bytes(const std::string& v) {
    I32(static_cast<int32_t>(v.size()));
    bytes_ += v;
    return *this;
  }
  std::string str() const { return bytes_; }
  size_t size() const { return bytes_.size(); }

 private:
  FrameBuilder& Put(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) bytes_ += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
  std::string bytes_;
};

int32_t ReadI32At(const std::string& frame, size_t offset) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(frame[offset + i]);
  return static_cast<int32_t>(v);
}

// A Fetch request as librdkafka 2.0.2 sends it (v11), or an older layout.
std::string FetchRequest(int16_t version, int32_t max_wait,
                         const std::vector<std::pair<std::string, std::vector<int32_t>>>& topics,
                         int32_t min_bytes = 1) {
  FrameBuilder f;
  f.I16(1).I16(version).I32(7).Str("client-a");
  f.I32(-1).I32(max_wait).I32(min_bytes);
  if (version >= 3) f.I32(52428800);
  if (version >= 4) f.I8(0);
  if (version >= 7) f.I32(0).I32(-1);
  f.I32(static_cast<int32_t>(topics.size()));
  for (const auto& [topic, partitions] : topics) {
    f.Str(topic).I32(static_cast<int32_t>(partitions.size()));
    for (int32_t p : partitions) {
      f.I32(p);
      if (version >= 9) f.I32(-1);
      f.I64(42);
      if (version >= 5) f.I64(-1);
      f.I32(1048576);
    }
  }
  if (version >= 7) f.I32(0);
  if (version >= 11) f.Str("");
  return f.str();
}

struct PartitionAnswer {
  int32_t partition;
  int16_t error;
  std::string records;  // empty: no records (null)
};

std::string FetchResponse(int16_t version, int16_t top_error,
                          const std::vector<std::pair<std::string, std::vector<PartitionAnswer>>>& topics) {
  FrameBuilder f;
  f.I32(7);  // correlation id
  if (version >= 1) f.I32(0);
  if (version >= 7) f.I16(top_error).I32(0);
  f.I32(static_cast<int32_t>(topics.size()));
  for (const auto& [topic, answers] : topics) {
    f.Str(topic).I32(static_cast<int32_t>(answers.size()));
    for (const auto& a : answers) {
      f.I32(a.partition).I16(a.error).I64(10);
      if (version >= 4) f.I64(10);
      if (version >= 5) f.I64(0);
      if (version >= 4) f.I32(1).I64(99).I64(3);  // one aborted transaction
      if (version >= 11) f.I32(-1);
      if (a.records.empty()) {
        f.I32(-1);
      } else {
        f.Bytes(a.records);
      }
    }
  }
  return f.str();
}

// A client picks its client.id: the per-client counts keep the first kMaxClientsCounted ids, each by
// its first kMaxClientIdBytes bytes, and count the Fetches of any other one apart.
TEST(LongPollStatsTest, PerClientCountsAreBoundedInIdsAndBytes) {
  using pv::dev_broker::LongPollStats;
  LongPollStats stats;
  const std::size_t n = LongPollStats::kMaxClientsCounted;
  for (std::size_t i = 0; i < n; ++i) stats.CountFetch("client-" + std::to_string(i), 100);
  stats.CountFetch("client-7", 250);  // a known one: still counted, its wait updated
  stats.CountFetch("one-too-many", 500);
  stats.CountFetch("one-too-many", 500);
  stats.CountFetch(std::string(LongPollStats::kMaxClientIdBytes + 1000, 'x'), 500);

  EXPECT_EQ(stats.fetches, n + 4);
  EXPECT_EQ(stats.fetches_by_client.size(), n);
  EXPECT_EQ(stats.fetch_wait_by_client.size(), n);
  EXPECT_EQ(stats.fetches_by_client["client-7"], 2U);
  EXPECT_EQ(stats.fetch_wait_by_client["client-7"], 250);
  EXPECT_EQ(stats.fetches_other_clients, 3U);
  EXPECT_EQ(stats.fetches_by_client.count("one-too-many"), 0U);

  LongPollStats fresh;
  const std::string long_id(LongPollStats::kMaxClientIdBytes + 1000, 'y');
  fresh.CountFetch(long_id, 500);
  fresh.CountFetch(long_id + "z", 500);  // the same first bytes: the same client
  ASSERT_EQ(fresh.fetches_by_client.size(), 1U);
  EXPECT_EQ(fresh.fetches_by_client.begin()->first, long_id.substr(0, LongPollStats::kMaxClientIdBytes));
  EXPECT_EQ(fresh.fetches_by_client.begin()->second, 2U);
  EXPECT_EQ(fresh.fetches_other_clients, 0U);
}

TEST(LongPollWire, ReadsAFetchRequestAndWhereItsMaxWaitIs) {
  using namespace pv::dev_broker::wire;
  for (int16_t version : {4, 7, 11}) {
    std::string frame = FetchRequest(version, 500, {{"pv.triggers", {0, 3}}, {"pv.delay.5s", {1}}}, 65536);
    RequestHeader header;
    ASSERT_TRUE(ParseRequestHeader(frame, header));
    EXPECT_EQ(header.api_key, kFetch);
    EXPECT_EQ(header.api_version, version);
    EXPECT_EQ(header.correlation_id, 7);
    EXPECT_EQ(header.client_id, "client-a");
    pv::dev_broker::wire::FetchRequest fetch;
    ASSERT_TRUE(ParseFetchRequest(frame, header, fetch)) << "v" << version;
    EXPECT_EQ(fetch.max_wait_ms, 500);
    EXPECT_EQ(fetch.min_bytes, 65536);
    EXPECT_EQ(ReadI32At(frame, fetch.max_wait_offset), 500);
    std::vector<TopicPartition> expected = {{"pv.triggers", 0}, {"pv.triggers", 3}, {"pv.delay.5s", 1}};
    EXPECT_EQ(fetch.partitions, expected) << "v" << version;
    EXPECT_TRUE(fetch.sessionless) << "v" << version;
  }
  {
    // An incremental fetch session (SessionEpoch 3): not one the front may hold and repeat.
    std::string session = FetchRequest(11, 500, {{"t", {0}}});
    // Header (key, version, correlation id, "client-a"), ReplicaId, MaxWait, MinBytes, MaxBytes,
    // IsolationLevel, SessionId: SessionEpoch follows.
    const size_t epoch_at = 2 + 2 + 4 + (2 + 8) + 4 + 4 + 4 + 4 + 1 + 4;
    for (size_t i = 0; i < 4; ++i) session[epoch_at + i] = static_cast<char>(i == 3 ? 3 : 0);
    RequestHeader header;
    ASSERT_TRUE(ParseRequestHeader(session, header));
    pv::dev_broker::wire::FetchRequest fetch;
    ASSERT_TRUE(ParseFetchRequest(session, header, fetch));
    EXPECT_FALSE(fetch.sessionless);
  }
  std::string frame = FetchRequest(11, 500, {{"t", {0}}});
  RequestHeader header;
  ASSERT_TRUE(ParseRequestHeader(frame, header));
  pv::dev_broker::wire::FetchRequest fetch;
  EXPECT_FALSE(ParseFetchRequest(frame.substr(0, frame.size() - 20), header, fetch)) << "truncated";
  header.api_version = 12;  // flexible: not ours to parse
  EXPECT_FALSE(ParseFetchRequest(frame, header, fetch));
  header.api_version = 11;
  header.api_key = kProduce;
  EXPECT_FALSE(ParseFetchRequest(frame, header, fetch));
}

TEST(LongPollWire, AFetchAnswerIsIdleOnlyWithoutRecordsAndWithoutErrors) {
  using pv::dev_broker::wire::FetchAnswer;
  using pv::dev_broker::wire::ParseFetchResponse;
  std::vector<FetchAnswer> answers;
  for (int16_t version : {4, 7, 11}) {
    bool idle = false;
    ASSERT_TRUE(ParseFetchResponse(FetchResponse(version, 0, {{"a", {{0, 0, ""}, {1, 0, ""}}}, {"b", {{2, 0, ""}}}}),
                                   version, idle, answers));
    EXPECT_TRUE(idle) << "v" << version;
    ASSERT_EQ(answers.size(), 3u) << "v" << version;
    EXPECT_EQ(answers[1].partition, (pv::dev_broker::wire::TopicPartition{"a", 1}));
    EXPECT_EQ(answers[2].partition, (pv::dev_broker::wire::TopicPartition{"b", 2}));
    EXPECT_EQ(answers[2].high_watermark, 10) << "v" << version;
    EXPECT_EQ(answers[2].error, 0);
    ASSERT_TRUE(ParseFetchResponse(FetchResponse(version, 0, {{"a", {{0, 0, ""}}}, {"b", {{2, 0, "batch"}}}}),
                                   version, idle, answers));
    EXPECT_FALSE(idle) << "records, v" << version;
    ASSERT_TRUE(ParseFetchResponse(FetchResponse(version, 0, {{"a", {{0, 1, ""}}}}), version, idle, answers));
    EXPECT_FALSE(idle) << "partition error, v" << version;
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_EQ(answers[0].error, 1);
  }
  bool idle = false;
  ASSERT_TRUE(ParseFetchResponse(FetchResponse(11, 15, {}), 11, idle, answers));
  EXPECT_FALSE(idle) << "top-level error";
  ASSERT_TRUE(ParseFetchResponse(FetchResponse(11, 0, {}), 11, idle, answers));
  EXPECT_TRUE(idle) << "no partitions (the answer to a Fetch the front narrowed to none)";
  EXPECT_TRUE(answers.empty());
  std::string whole = FetchResponse(11, 0, {{"a", {{0, 0, ""}}}});
  EXPECT_FALSE(ParseFetchResponse(whole.substr(0, whole.size() - 2), 11, idle, answers)) << "truncated";
  EXPECT_FALSE(ParseFetchResponse(whole, 12, idle, answers)) << "flexible version";
}

TEST(LongPollWire, ANarrowedFetchAsksOnlyForTheKeptPartitionsAndKeepsTheRest) {
  using namespace pv::dev_broker::wire;
  for (int16_t version : {4, 7, 11}) {
    std::string frame = FetchRequest(version, 500, {{"pv.triggers", {0, 3}}, {"pv.delay.5s", {1}}});
    RequestHeader header;
    ASSERT_TRUE(ParseRequestHeader(frame, header));
    pv::dev_broker::wire::FetchRequest fetch;
    ASSERT_TRUE(ParseFetchRequest(frame, header, fetch));
    EXPECT_EQ(fetch.fetch_offsets, (std::vector<int64_t>{42, 42, 42}));
    struct Case {
      std::vector<bool> keep;
      std::vector<TopicPartition> expected;
    };
    const Case cases[] = {
        {{true, true, true}, fetch.partitions},
        {{false, true, true}, {{"pv.triggers", 3}, {"pv.delay.5s", 1}}},
        {{true, false, false}, {{"pv.triggers", 0}}},
        {{false, false, true}, {{"pv.delay.5s", 1}}},
        {{false, false, false}, {}},
    };
    for (const Case& c : cases) {
      std::string framed = NarrowFetchRequest(frame, fetch, c.keep);
      ASSERT_GE(framed.size(), 4u);
      EXPECT_EQ(static_cast<size_t>(ReadI32At(framed, 0)), framed.size() - 4) << "size prefix";
      std::string narrowed = framed.substr(4);
      RequestHeader again;
      ASSERT_TRUE(ParseRequestHeader(narrowed, again));
      EXPECT_EQ(again.correlation_id, 7);
      EXPECT_EQ(again.client_id, "client-a");
      pv::dev_broker::wire::FetchRequest parsed;
      ASSERT_TRUE(ParseFetchRequest(narrowed, again, parsed)) << "v" << version;
      EXPECT_EQ(parsed.partitions, c.expected) << "v" << version;
      EXPECT_EQ(parsed.max_wait_ms, 500);
      EXPECT_EQ(parsed.topics_end, narrowed.size() - (frame.size() - fetch.topics_end))
          << "what follows the topics (forgotten topics, rack) is kept, v" << version;
      EXPECT_EQ(narrowed.substr(parsed.topics_end), frame.substr(fetch.topics_end));
    }
    EXPECT_EQ(NarrowFetchRequest(frame, fetch, {true, true, true}).substr(4), frame) << "all kept: unchanged";
  }
}

TEST(LongPollWire, AProduceAnswerGivesEachPartitionsErrorAndBaseOffset) {
  using pv::dev_broker::wire::ParseProduceResponse;
  using pv::dev_broker::wire::ProduceAnswer;
  using pv::dev_broker::wire::TopicPartition;
  for (int16_t version : {3, 7, 8}) {
    FrameBuilder f;
    f.I32(9).I32(2);
    f.Str("pv.triggers").I32(2);
    for (auto [partition, error] : {std::pair<int32_t, int16_t>{0, 0}, {1, 6}}) {
      f.I32(partition).I16(error).I64(100);
      if (version >= 2) f.I64(-1);
      if (version >= 5) f.I64(0);
      if (version >= 8) f.I32(1).I32(0).Str("bad record").NullStr();
    }
    f.Str("pv.events").I32(1).I32(4).I16(0).I64(7);
    if (version >= 2) f.I64(-1);
    if (version >= 5) f.I64(0);
    if (version >= 8) f.I32(0).NullStr();
    f.I32(0);  // ThrottleTimeMs
    std::vector<ProduceAnswer> out;
    ASSERT_TRUE(ParseProduceResponse(f.str(), version, out)) << "v" << version;
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].partition, (TopicPartition{"pv.triggers", 0}));
    EXPECT_EQ(out[0].error, 0);
    EXPECT_EQ(out[0].base_offset, 100);
    EXPECT_EQ(out[1].partition, (TopicPartition{"pv.triggers", 1}));
    EXPECT_EQ(out[1].error, 6);
    EXPECT_EQ(out[2].partition, (TopicPartition{"pv.events", 4}));
    EXPECT_EQ(out[2].base_offset, 7);
    EXPECT_FALSE(ParseProduceResponse(f.str().substr(0, f.size() - 10), version, out)) << "truncated";
  }
}

// A record batch v2 header (61 bytes) and `payload`, as a producer sends it: base offset 0, epoch -1.
std::string RecordBatch(int32_t count, const std::string& payload) {
  FrameBuilder f;
  f.I64(0).I32(static_cast<int32_t>(49 + payload.size())).I32(-1).I8(2).I32(0x1234).I16(0);
  f.I32(count - 1).I64(1000).I64(1000).I64(-1).I16(-1).I32(-1).I32(count);
  return f.str() + payload;
}

TEST(LongPollWire, AProduceRequestGivesEachPartitionsRecordBatch) {
  using namespace pv::dev_broker::wire;
  std::string batch = RecordBatch(3, "abc");
  EXPECT_EQ(RecordBatchCount(batch), 3);
  EXPECT_EQ(RecordBatchCount(batch.substr(0, 60)), 0) << "shorter than a header";
  std::string v1 = batch;
  v1[16] = 1;
  EXPECT_EQ(RecordBatchCount(v1), 0) << "not a v2 batch";
  SetRecordBatchOffsetAndEpoch(batch, 0x0102030405, 7);
  EXPECT_EQ(ReadI32At(batch, 0), 0x01);
  EXPECT_EQ(ReadI32At(batch, 4), 0x02030405);
  EXPECT_EQ(RecordBatchLeaderEpoch(batch), 7);
  EXPECT_EQ(batch.substr(16), RecordBatch(3, "abc").substr(16)) << "the rest (CRC-covered) unchanged";

  for (int16_t version : {3, 7}) {
    for (bool transactional : {false, true}) {
      FrameBuilder f;
      f.I16(0).I16(version).I32(5).Str("producer");
      if (transactional) {
        f.Str("txn-1");
      } else {
        f.NullStr();
      }
      f.I16(-1).I32(30000).I32(1).Str("pv.events").I32(2);
      f.I32(0).Bytes(RecordBatch(1, "x"));
      f.I32(3).Bytes(RecordBatch(2, "yz"));
      const std::string frame = f.str();  // the records found are views into it
      RequestHeader header;
      ASSERT_TRUE(ParseRequestHeader(frame, header));
      bool is_transactional = !transactional;
      std::vector<ProducedRecords> out;
      ASSERT_TRUE(ParseProduceRequest(frame, header, is_transactional, out)) << "v" << version;
      EXPECT_EQ(is_transactional, transactional);
      ASSERT_EQ(out.size(), 2u);
      EXPECT_EQ(out[0].partition, (TopicPartition{"pv.events", 0}));
      EXPECT_EQ(out[0].records, RecordBatch(1, "x"));
      EXPECT_EQ(out[1].partition, (TopicPartition{"pv.events", 3}));
      EXPECT_EQ(RecordBatchCount(out[1].records), 2);
      EXPECT_FALSE(ParseProduceRequest(std::string_view(frame).substr(0, frame.size() - 5), header, is_transactional, out));
    }
  }
}

TEST(LongPollWire, AComposedFetchAnswerKeepsTheRequestsOrderAndTheMocksHeader) {
  using namespace pv::dev_broker::wire;
  std::string request = FetchRequest(11, 500, {{"a", {0, 1}}, {"b", {2}}});
  RequestHeader header;
  ASSERT_TRUE(ParseRequestHeader(request, header));
  pv::dev_broker::wire::FetchRequest fetch;
  ASSERT_TRUE(ParseFetchRequest(request, header, fetch));
  for (int16_t version : {4, 7, 11}) {
    // The mock was asked for a/1 only; a/0 and b/2 are answered by the front (b/2 with a batch).
    std::string mock = FetchResponse(version, 0, {{"a", {{1, 0, ""}}}});
    bool idle = false;
    std::vector<FetchAnswer> answers;
    FetchAnswerHeader head;
    ASSERT_TRUE(ParseFetchResponse(mock, version, idle, answers, &head));
    ASSERT_EQ(answers.size(), 1u);
    std::string a0 = FetchAnswerEntry(version, 0, 10, 0, "");
    std::string b2 = FetchAnswerEntry(version, 2, 10, 0, "batch");
    std::vector<std::string_view> entries = {
        a0, std::string_view(mock).substr(answers[0].entry_begin, answers[0].entry_end - answers[0].entry_begin),
        b2};
    std::string framed = ComposeFetchResponse(mock, head.topics_begin, fetch, entries);
    EXPECT_EQ(static_cast<size_t>(ReadI32At(framed, 0)), framed.size() - 4);
    std::string composed = framed.substr(4);
    // What the mock itself would have answered for the three (FetchResponse writes HWM 10, LSO 10,
    // log start 0, one aborted transaction; the front writes none).
    ASSERT_TRUE(ParseFetchResponse(composed, version, idle, answers)) << "v" << version;
    EXPECT_FALSE(idle);
    ASSERT_EQ(answers.size(), 3u);
    EXPECT_EQ(answers[0].partition, (TopicPartition{"a", 0}));
    EXPECT_EQ(answers[1].partition, (TopicPartition{"a", 1}));
    EXPECT_EQ(answers[2].partition, (TopicPartition{"b", 2}));
    EXPECT_EQ(answers[2].records, "batch");
    EXPECT_EQ(answers[0].high_watermark, 10);
    if (version >= 5) {
      EXPECT_EQ(answers[2].log_start_offset, 0);
    }
    EXPECT_EQ(ReadI32At(composed, 0), 7) << "the mock's correlation id";
    // Leaving an entry out leaves its partition out, and a topic without any is left out.
    framed = ComposeFetchResponse(mock, head.topics_begin, fetch, {a0, "", ""});
    ASSERT_TRUE(ParseFetchResponse(framed.substr(4), version, idle, answers));
    ASSERT_EQ(answers.size(), 1u);
    EXPECT_TRUE(idle);
  }
}

TEST(LongPollWire, BrokerAddressesNameTheFront) {
  using namespace pv::dev_broker::wire;
  const std::map<int, int> ports = {{1111, 9001}, {3333, 9003}};
  FrameBuilder metadata;
  metadata.I32(5).I32(2);
  metadata.I32(1).Str("127.0.0.1").I32(1111).NullStr();
  metadata.I32(2).Str("127.0.0.1").I32(2222).Str("rack-b");
  metadata.Str("mockCluster1").I32(1).I32(0);  // cluster id, controller, no topics
  std::string frame = metadata.str();
  int rewritten = 0;
  ASSERT_TRUE(RewriteBrokerPorts(frame, kMetadata, 2, ports, rewritten));
  EXPECT_EQ(rewritten, 1);
  EXPECT_EQ(ReadI32At(frame, 4 + 4 + 4 + 2 + 9), 9001);
  EXPECT_NE(frame.find("rack-b"), std::string::npos);
  EXPECT_EQ(frame.size(), metadata.size());

  for (int16_t version : {0, 1, 2}) {
    FrameBuilder coordinator;
    coordinator.I32(5);
    if (version >= 1) coordinator.I32(0);
    coordinator.I16(0);
    if (version >= 1) coordinator.NullStr();
    coordinator.I32(3).Str("127.0.0.1");
    size_t port_at = coordinator.size();
    coordinator.I32(3333);
    std::string c = coordinator.str();
    ASSERT_TRUE(RewriteBrokerPorts(c, kFindCoordinator, version, ports, rewritten)) << "v" << version;
    EXPECT_EQ(rewritten, 1);
    EXPECT_EQ(ReadI32At(c, port_at), 9003) << "v" << version;
  }
  EXPECT_FALSE(RewriteBrokerPorts(frame, kMetadata, 9, ports, rewritten)) << "flexible version";
  EXPECT_FALSE(RewriteBrokerPorts(frame, kFetch, 11, ports, rewritten)) << "not a broker list";
}

TEST(DevBrokerBinary, HelpSaysMemoryOnlyAndBadArgumentsExit2) {
  std::string help_cmd = std::string(PV_DEV_BROKER_BIN) + " --help";
  FILE* pipe = ::popen(help_cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, n);
  int status = ::pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NE(out.find("memory only"), std::string::npos) << out;
  EXPECT_NE(out.find("NOT for production"), std::string::npos) << out;
  EXPECT_NE(out.find("/brokers/{id|all}/down"), std::string::npos) << out;

  std::string bad_cmd = std::string(PV_DEV_BROKER_BIN) + " --brokers 0 2>/dev/null";
  status = std::system(bad_cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2);
}

TEST_F(DevBrokerProcessTest, ServesBootstrapHealthAndDefaultTopics) {
  EXPECT_EQ(std::count(broker_.bootstrap().begin(), broker_.bootstrap().end(), ','), 2)
      << broker_.bootstrap();
  EXPECT_EQ(broker_.bootstrap().rfind("127.0.0.1:", 0), 0u) << broker_.bootstrap();
  std::string body;
  EXPECT_EQ(broker_.Get("/healthz", &body), 200);
  EXPECT_EQ(broker_.Get("/bootstrap", &body), 200);
  EXPECT_EQ(body, broker_.bootstrap());
  EXPECT_EQ(broker_.Get("/brokers", &body), 200);
  EXPECT_NE(body.find("{\"id\":3,\"up\":true}"), std::string::npos) << body;

  auto listed = ListedTopics(broker_);
  for (const auto& spec : pv::topics::DefaultTopics()) {
    ASSERT_EQ(listed.count(spec.name), 1u) << spec.name;
    EXPECT_EQ(listed[spec.name].first, spec.partitions) << spec.name;
    EXPECT_EQ(listed[spec.name].second, 3) << spec.name;
  }
  // The cluster itself agrees (partition count and replicas), as a client sees it.
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  auto layout = TopicLayout(producer.get(), "pv.triggers");
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->first, 6);
  EXPECT_EQ(layout->second, 3);
}

TEST_F(DevBrokerProcessTest, ProduceThenConsumeBackWithAConsumerGroup) {
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  std::set<std::pair<std::string, std::string>> sent;
  for (int i = 0; i < 10; ++i) {
    std::string key = "user-" + std::to_string(i);
    std::string value = R"({"v":1,"n":)" + std::to_string(i) + "}";
    ASSERT_EQ(ProduceSync(producer.get(), "pv.triggers", key, value), RD_KAFKA_RESP_ERR_NO_ERROR);
    sent.insert({key, value});
  }

  const std::string group = "dev-broker-test-" + std::to_string(getpid());
  auto consumer = MakeClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", broker_.bootstrap()},
                                                 {"group.id", group},
                                                 {"auto.offset.reset", "earliest"},
                                                 {"enable.auto.commit", "false"},
                                                 {"session.timeout.ms", "6000"},
                                                 {"heartbeat.interval.ms", "500"},
                                                 {"partition.assignment.strategy", "cooperative-sticky"}});
  ASSERT_TRUE(consumer);
  rd_kafka_poll_set_consumer(consumer.get());
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, "pv.triggers", kAnyPartition);
  ASSERT_EQ(rd_kafka_subscribe(consumer.get(), topics), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(topics);

  std::set<std::pair<std::string, std::string>> received;
  const auto deadline = Clock::now() + 30s;
  while (received.size() < sent.size() && Clock::now() < deadline) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer.get(), 200);
    if (msg == nullptr) continue;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      received.insert({std::string(static_cast<const char*>(msg->key), msg->key_len),
                       std::string(static_cast<const char*>(msg->payload), msg->len)});
    }
    rd_kafka_message_destroy(msg);
  }
  EXPECT_EQ(received, sent);

  // Committed offsets are kept by the group coordinator.
  ASSERT_EQ(rd_kafka_commit(consumer.get(), nullptr, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_t* assigned = nullptr;
  ASSERT_EQ(rd_kafka_assignment(consumer.get(), &assigned), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_committed(consumer.get(), assigned, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
  int64_t committed_total = 0;
  for (int i = 0; i < assigned->cnt; ++i) {
    if (assigned->elems[i].offset > 0) committed_total += assigned->elems[i].offset;
  }
  rd_kafka_topic_partition_list_destroy(assigned);
  EXPECT_EQ(committed_total, 10);
  rd_kafka_consumer_close(consumer.get());
}

TEST_F(DevBrokerProcessTest, AllBrokersDownFailsDeliveryAndUpRecovers) {
  auto settings = ProducerSettings(broker_.bootstrap());
  settings["message.timeout.ms"] = "1500";
  auto producer = MakeClient(RD_KAFKA_PRODUCER, settings);
  ASSERT_TRUE(producer);
  ASSERT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "before"), RD_KAFKA_RESP_ERR_NO_ERROR);

  std::string body;
  ASSERT_EQ(broker_.Post("/brokers/all/down", &body), 200) << body;
  EXPECT_EQ(body.find("true"), std::string::npos) << body;  // every broker reported down
  const auto start = Clock::now();
  rd_kafka_resp_err_t err = ProduceSync(producer.get(), "pv.triggers", "k", "while-down");
  const auto took = Clock::now() - start;
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) << rd_kafka_err2name(err);
  EXPECT_LT(took, 10s);

  ASSERT_EQ(broker_.Post("/brokers/all/up", &body), 200) << body;
  // The client reconnects with backoff; each attempt has its 1.5 s message timeout.
  rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
  const auto deadline = Clock::now() + 30s;
  int attempts = 0;
  while (last != RD_KAFKA_RESP_ERR_NO_ERROR && Clock::now() < deadline && attempts < 20) {
    ++attempts;
    last = ProduceSync(producer.get(), "pv.triggers", "k", "after");
  }
  EXPECT_EQ(last, RD_KAFKA_RESP_ERR_NO_ERROR)
      << rd_kafka_err2name(last) << " after " << attempts << " attempts";
  std::cerr << "produce succeeded again after " << attempts << " attempt(s)\n";
}

TEST_F(DevBrokerProcessTest, OneBrokerDownMakesItsPartitionsUnavailableUntilUp) {
  auto settings = ProducerSettings(broker_.bootstrap());
  settings["message.timeout.ms"] = "1500";
  auto producer = MakeClient(RD_KAFKA_PRODUCER, settings);
  ASSERT_TRUE(producer);
  auto leaders = PartitionLeaders(producer.get(), "pv.triggers");
  ASSERT_EQ(leaders.size(), 6u);
  const int32_t down = leaders[0];
  int32_t other_partition = -1;
  for (size_t p = 0; p < leaders.size(); ++p) {
    if (leaders[p] != down) other_partition = static_cast<int32_t>(p);
  }
  ASSERT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "before", 0), RD_KAFKA_RESP_ERR_NO_ERROR);

  std::string body;
  const std::string id = std::to_string(down);
  ASSERT_EQ(broker_.Post("/brokers/" + id + "/down", &body), 200) << body;
  EXPECT_NE(body.find("{\"id\":" + id + ",\"up\":false}"), std::string::npos) << body;
  EXPECT_EQ(CountOf(body, "\"up\":true"), 2) << body;  // the two others stay up
  // The mock cluster does not move leaders: the down broker's partitions time out, the others work.
  rd_kafka_resp_err_t err = ProduceSync(producer.get(), "pv.triggers", "k", "while-down", 0);
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) << rd_kafka_err2name(err);
  if (other_partition >= 0) {
    EXPECT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "elsewhere", other_partition),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  ASSERT_EQ(broker_.Post("/brokers/" + id + "/up", &body), 200) << body;
  EXPECT_EQ(body.find("false"), std::string::npos) << body;
  rd_kafka_resp_err_t last = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
  for (int attempt = 0; attempt < 20 && last != RD_KAFKA_RESP_ERR_NO_ERROR; ++attempt) {
    last = ProduceSync(producer.get(), "pv.triggers", "k", "after", 0);
  }
  EXPECT_EQ(last, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2name(last);
}

TEST_F(DevBrokerProcessTest, InjectedProduceErrorSurfacesWithoutRetriesAndIsRetriedOtherwise) {
  // Without retries, the injected error is what the delivery report says.
  auto settings = ProducerSettings(broker_.bootstrap());
  settings["enable.idempotence"] = "false";
  settings["retries"] = "0";
  auto no_retry = MakeClient(RD_KAFKA_PRODUCER, settings);
  ASSERT_TRUE(no_retry);
  ASSERT_EQ(ProduceSync(no_retry.get(), "pv.triggers", "k", "warm-up"), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::string body;
  ASSERT_EQ(broker_.Post("/errors?api=Produce&error=NOT_ENOUGH_REPLICAS&count=1", &body), 200) << body;
  EXPECT_NE(body.find("\"error_name\":\"NOT_ENOUGH_REPLICAS\""), std::string::npos) << body;
  rd_kafka_resp_err_t err = ProduceSync(no_retry.get(), "pv.triggers", "k", "fails");
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS) << rd_kafka_err2name(err);
  // The error was used up: the next one goes through.
  EXPECT_EQ(ProduceSync(no_retry.get(), "pv.triggers", "k", "ok"), RD_KAFKA_RESP_ERR_NO_ERROR);

  // The idempotent producer (what ingest uses) retries through three injected timeouts: its one record
  // is delivered, and the three errors are used up by its attempts (the retry-less producer, which
  // would fail on any error left, goes through afterwards).
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  ASSERT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "warm-up"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(broker_.Post("/errors?api=0&error=7&count=3", &body), 200) << body;  // 7 = REQUEST_TIMED_OUT
  EXPECT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "retried"), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(ProduceSync(no_retry.get(), "pv.triggers", "k", "nothing-left"), RD_KAFKA_RESP_ERR_NO_ERROR);

  // Pushed errors that are not consumed can be cleared.
  ASSERT_EQ(broker_.Post("/errors?api=Produce&error=NOT_ENOUGH_REPLICAS&count=5", &body), 200) << body;
  ASSERT_EQ(broker_.Post("/errors/clear?api=Produce", &body), 200) << body;
  EXPECT_EQ(ProduceSync(no_retry.get(), "pv.triggers", "k", "after-clear"), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST_F(DevBrokerProcessTest, CreatesTopicsThroughTheControlApi) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=pv.test.created&partitions=4", &body), 201) << body;
  EXPECT_EQ(broker_.Post("/topics?name=pv.test.created&partitions=4", &body), 409) << body;
  auto listed = ListedTopics(broker_);
  ASSERT_EQ(listed.count("pv.test.created"), 1u);
  EXPECT_EQ(listed["pv.test.created"], std::make_pair(4, 3));

  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  auto layout = TopicLayout(producer.get(), "pv.test.created");
  ASSERT_TRUE(layout.has_value());
  EXPECT_EQ(layout->first, 4);
  EXPECT_EQ(ProduceSync(producer.get(), "pv.test.created", "k", "v", 3), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST_F(DevBrokerProcessTest, BadControlInputGetsAClear4xx) {
  const std::vector<std::pair<std::string, int>> cases = {
      {"/brokers/abc/down", 400},
      {"/brokers/0/down", 404},
      {"/brokers/4/up", 404},
      {"/brokers/1/rtt?ms=x", 400},
      {"/errors", 400},
      {"/errors?api=Nope&error=REQUEST_TIMED_OUT", 400},
      {"/errors?api=Produce&error=NOPE", 400},
      {"/errors?api=Produce&error=_TRANSPORT", 400},
      {"/errors?api=Produce&error=7&count=0", 400},
      {"/errors?api=Produce&error=7&broker=9", 404},
      {"/errors/clear?api=Nope", 400},
      {"/topics?name=bad/name&partitions=1", 400},
      {"/topics?name=ok&partitions=0", 400},
      {"/topics?name=ok", 400},
      {"/no/such/endpoint", 404},
  };
  for (const auto& [path, status] : cases) {
    std::string body;
    EXPECT_EQ(broker_.Post(path, &body), status) << path << " -> " << body;
    auto doc = ParseJson(body);
    ASSERT_TRUE(doc.IsObject() && doc.HasMember("error")) << path << " -> " << body;
    EXPECT_GT(doc["error"].GetStringLength(), 5u) << path;
  }
  // Good input by number, and per broker.
  std::string body;
  EXPECT_EQ(broker_.Post("/errors?api=1&error=6&count=2&broker=1", &body), 200) << body;
  EXPECT_EQ(broker_.Post("/brokers/all/rtt?ms=0", &body), 200) << body;
  EXPECT_EQ(broker_.Post("/errors/clear", &body), 200) << body;
}

// ---------------------------------------------------------------------------------------------------
// The long-poll front, through the binary.

// Counters of GET /long-poll.
std::map<std::string, int64_t> LongPollCounters(const BrokerProcess& broker,
                                                rapidjson::Document* full = nullptr) {
  std::string body;
  EXPECT_EQ(broker.Get("/long-poll", &body), 200);
  auto doc = ParseJson(body);
  std::map<std::string, int64_t> out;
  if (!doc.IsObject()) return out;
  for (const auto& m : doc.GetObject()) {
    if (m.value.IsInt64()) out[m.name.GetString()] = m.value.GetInt64();
  }
  if (full != nullptr) *full = std::move(doc);
  return out;
}

std::set<int> PortsOf(const std::string& bootstrap) {
  std::set<int> ports;
  std::stringstream ss(bootstrap);
  std::string entry;
  while (std::getline(ss, entry, ',')) ports.insert(std::stoi(entry.substr(entry.rfind(':') + 1)));
  return ports;
}

// A consumer of partition 0 of `topic` from its start (no group join: assign), waiting up to
// `fetch_wait_ms` per Fetch.
RkPtr AssignedConsumer(const std::string& bootstrap, const std::string& topic, int fetch_wait_ms,
                       const std::string& client_id, int fetch_min_bytes = 1,
                       int64_t offset = RD_KAFKA_OFFSET_BEGINNING) {
  auto consumer = MakeClient(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstrap},
                                                 {"group.id", client_id},
                                                 {"client.id", client_id},
                                                 {"enable.auto.commit", "false"},
                                                 {"fetch.wait.max.ms", std::to_string(fetch_wait_ms)},
                                                 {"fetch.min.bytes", std::to_string(fetch_min_bytes)}});
  if (!consumer) return consumer;
  rd_kafka_poll_set_consumer(consumer.get());
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = offset;
  EXPECT_EQ(rd_kafka_assign(consumer.get(), list), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(list);
  return consumer;
}

// Polls until a record arrives (returns its value) or `timeout` passes.
std::optional<std::string> NextRecord(rd_kafka_t* consumer, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer, 10);
    if (msg == nullptr) continue;
    std::optional<std::string> value;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      value = std::string(static_cast<const char*>(msg->payload), msg->len);
    rd_kafka_message_destroy(msg);
    if (value) return value;
  }
  return std::nullopt;
}

TEST_F(DevBrokerProcessTest, ClientsAreRoutedThroughTheLongPollFront) {
  rapidjson::Document doc;
  LongPollCounters(broker_, &doc);
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("enabled") && doc["enabled"].GetBool());
  std::set<int> front = PortsOf(broker_.bootstrap());
  std::set<int> mock = PortsOf(doc["mock_bootstrap"].GetString());
  ASSERT_EQ(front.size(), 3u);
  ASSERT_EQ(mock.size(), 3u);
  for (int port : front) EXPECT_EQ(mock.count(port), 0u) << port;
  // Every broker address a client learns names the front, so all its connections go through it.
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  const rd_kafka_metadata_t* md = nullptr;
  ASSERT_EQ(rd_kafka_metadata(producer.get(), 0, nullptr, &md, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(md->broker_cnt, 3);
  for (int i = 0; i < md->broker_cnt; ++i)
    EXPECT_EQ(front.count(md->brokers[i].port), 1u) << md->brokers[i].port;
  rd_kafka_metadata_destroy(md);
}

TEST_F(DevBrokerProcessTest, AWaitingFetchIsAnsweredWhenARecordArrives) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.wake&partitions=1", &body), 201) << body;
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  // A long MaxWait: without the front each record would wait for the next Fetch, up to 3 s.
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.wake", 3000, "lp-wake");
  ASSERT_TRUE(consumer);
  ASSERT_EQ(ProduceSync(producer.get(), "lp.wake", "k", "first"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(NextRecord(consumer.get(), 15s), std::optional<std::string>("first"));
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(700ms);  // the consumer is idle again: its Fetch is waiting
    int64_t woken = LongPollCounters(broker_)["fetches_woken"];
    const auto sent = Clock::now();
    ASSERT_EQ(ProduceSync(producer.get(), "lp.wake", "k", "n" + std::to_string(i)),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    auto value = NextRecord(consumer.get(), 10s);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
    ASSERT_EQ(value, std::optional<std::string>("n" + std::to_string(i)));
    EXPECT_LT(took, 500ms) << "record " << i << " waited " << took.count() << " ms for a Fetch";
    EXPECT_GT(LongPollCounters(broker_)["fetches_woken"], woken);
  }
  rd_kafka_consumer_close(consumer.get());
}

TEST_F(DevBrokerProcessTest, AnIdleConsumerFetchesOncePerMaxWaitNotFaster) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.idle&partitions=1", &body), 201) << body;
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.idle", 500, "lp-idle");
  ASSERT_TRUE(consumer);
  EXPECT_FALSE(NextRecord(consumer.get(), 1500ms).has_value());  // settles into waiting Fetches
  rapidjson::Document before_doc;
  auto before = LongPollCounters(broker_, &before_doc);
  const auto start = Clock::now();
  EXPECT_FALSE(NextRecord(consumer.get(), 3s).has_value());
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  rapidjson::Document doc;
  auto after = LongPollCounters(broker_, &doc);
  int64_t fetches = after["fetches"] - before["fetches"];
  EXPECT_GE(fetches, 2) << "the consumer stopped fetching";
  EXPECT_LE(fetches, static_cast<int64_t>(seconds / 0.5) + 2)
      << "more Fetches than one per fetch.wait.max.ms";
  EXPECT_GE(after["fetches_expired"] - before["fetches_expired"], fetches - 2);
  ASSERT_TRUE(doc.HasMember("fetch_wait_ms_by_client") &&
              doc["fetch_wait_ms_by_client"].HasMember("lp-idle"));
  EXPECT_EQ(doc["fetch_wait_ms_by_client"]["lp-idle"].GetInt(), 500);
  // The only client fetching meanwhile: its own count rose by every Fetch the front forwarded.
  ASSERT_TRUE(before_doc.HasMember("fetches_by_client") && before_doc["fetches_by_client"].HasMember("lp-idle"));
  ASSERT_TRUE(doc.HasMember("fetches_by_client") && doc["fetches_by_client"].HasMember("lp-idle"));
  EXPECT_EQ(doc["fetches_by_client"]["lp-idle"].GetInt64() - before_doc["fetches_by_client"]["lp-idle"].GetInt64(),
            fetches);
  ASSERT_TRUE(doc.HasMember("fetches_other_clients") && doc["fetches_other_clients"].IsUint64());
  EXPECT_EQ(doc["fetches_other_clients"].GetUint64(), 0U);
  rd_kafka_consumer_close(consumer.get());
}

struct Consumed {
  int64_t offset;
  std::string key, value;
  int64_t timestamp;
  bool operator==(const Consumed&) const = default;
};

// Polls until `n` records arrived (or `timeout` passed): offset, key, value and timestamp of each.
std::vector<Consumed> Consume(rd_kafka_t* consumer, size_t n, std::chrono::milliseconds timeout) {
  std::vector<Consumed> out;
  const auto deadline = Clock::now() + timeout;
  while (out.size() < n && Clock::now() < deadline) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(consumer, 10);
    if (msg == nullptr) continue;
    if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      out.push_back({msg->offset, std::string(static_cast<const char*>(msg->key), msg->key_len),
                     std::string(static_cast<const char*>(msg->payload), msg->len),
                     rd_kafka_message_timestamp(msg, nullptr)});
    }
    rd_kafka_message_destroy(msg);
  }
  return out;
}

// fetch.min.bytes as Kafka honours it: a Fetch with records under MinBytes waits for more (a produce
// that makes up the rest ends the wait at once) or for its MaxWait (then it gets what there is).
TEST_F(DevBrokerProcessTest, AFetchWaitsForMinBytesOrItsMaxWait) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.min&partitions=1", &body), 201) << body;
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  // A reader without MinBytes: the front learns the log's end, and its copy then holds "small".
  auto reader = AssignedConsumer(broker_.bootstrap(), "lp.min", 500, "lp-reader");
  ASSERT_TRUE(reader);
  ASSERT_EQ(ProduceSync(producer.get(), "lp.min", "k", "first"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(NextRecord(reader.get(), 15s), std::optional<std::string>("first"));
  ASSERT_EQ(ProduceSync(producer.get(), "lp.min", "k", "small"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(NextRecord(reader.get(), 10s), std::optional<std::string>("small"));
  rd_kafka_consumer_close(reader.get());

  // From "small" on, MinBytes 4,096 and MaxWait 2 s: a few bytes to read, held.
  const int64_t short_before = LongPollCounters(broker_)["fetches_short"];
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.min", 2000, "lp-min", 4096, 1);
  ASSERT_TRUE(consumer);
  EXPECT_FALSE(NextRecord(consumer.get(), 600ms).has_value()) << "a record under MinBytes ended the wait";
  EXPECT_GT(LongPollCounters(broker_)["fetches_short"], short_before);
  // A record of a few bytes more: still held, no Fetch woken for it.
  const int64_t woken_before = LongPollCounters(broker_)["fetches_woken"];
  ASSERT_EQ(ProduceSync(producer.get(), "lp.min", "k", "tiny"), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_FALSE(NextRecord(consumer.get(), 300ms).has_value()) << "a record under MinBytes ended the wait";
  EXPECT_EQ(LongPollCounters(broker_)["fetches_woken"], woken_before);
  // Enough bytes: the wait ends at once, with every record.
  const auto sent = Clock::now();
  const std::string big(5000, 'b');
  ASSERT_EQ(ProduceSync(producer.get(), "lp.min", "k", big), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(NextRecord(consumer.get(), 10s), std::optional<std::string>("small"));
  EXPECT_EQ(NextRecord(consumer.get(), 10s), std::optional<std::string>("tiny"));
  EXPECT_EQ(NextRecord(consumer.get(), 10s), std::optional<std::string>(big));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
  EXPECT_LT(took, 1000ms) << "MinBytes was there, the Fetch still waited " << took.count() << " ms";
  EXPECT_GT(LongPollCounters(broker_)["fetches_woken"], woken_before);
  rapidjson::Document doc;
  LongPollCounters(broker_, &doc);
  ASSERT_TRUE(doc.HasMember("fetch_min_bytes_by_client") && doc["fetch_min_bytes_by_client"].HasMember("lp-min"));
  EXPECT_EQ(doc["fetch_min_bytes_by_client"]["lp-min"].GetInt(), 4096);

  // Under MinBytes for good: the record comes at the Fetch's MaxWait, not before, not much after.
  std::this_thread::sleep_for(100ms);
  const auto late_sent = Clock::now();
  ASSERT_EQ(ProduceSync(producer.get(), "lp.min", "k", "late"), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(NextRecord(consumer.get(), 10s), std::optional<std::string>("late"));
  auto late = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - late_sent);
  EXPECT_GE(late, 1000ms) << "a record under MinBytes came before the MaxWait (2 s) was near";
  EXPECT_LT(late, 5000ms) << "a record under MinBytes waited past its MaxWait (2 s)";
  rd_kafka_consumer_close(consumer.get());
}

// A consumer behind (more to read than a Fetch answer carries) is answered at once, whatever its
// MinBytes: Kafka would have MinBytes for it at once.
TEST_F(DevBrokerProcessTest, AConsumerBehindIsNotHeldForMinBytes) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.behind&partitions=1", &body), 201) << body;
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  const size_t kRecords = 60;
  for (size_t i = 0; i < kRecords; ++i)  // one batch each: one Fetch answer of the mock each
    ASSERT_EQ(ProduceSync(producer.get(), "lp.behind", "k", "r" + std::to_string(i)), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.behind", 3000, "lp-behind", 1 << 20);
  ASSERT_TRUE(consumer);
  const auto start = Clock::now();
  std::vector<Consumed> seen = Consume(consumer.get(), kRecords, 20s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  ASSERT_EQ(seen.size(), kRecords);
  for (size_t i = 0; i < kRecords; ++i) EXPECT_EQ(seen[i].value, "r" + std::to_string(i));
  // Held for MinBytes (1 MiB) at each of its Fetches, it would have taken 3 s for each of them.
  EXPECT_LT(took, 2500ms) << kRecords << " records behind took " << took.count() << " ms";
  rd_kafka_consumer_close(consumer.get());
}

TEST_F(DevBrokerProcessTest, TheFrontAnswersFetchesFromItsCopyOfTheTailAsTheMockWould) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.tail&partitions=1", &body), 201) << body;
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.tail", 500, "lp-tail");
  ASSERT_TRUE(consumer);
  // The first record comes from the mock: the front learns the log's end and leader epoch.
  ASSERT_EQ(ProduceSync(producer.get(), "lp.tail", "k0", "v0"), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<Consumed> seen = Consume(consumer.get(), 1, 15s);
  ASSERT_EQ(seen.size(), 1u);
  const int64_t answered_before = LongPollCounters(broker_)["partitions_answered"];
  // Then batches of several records (queued together) and single ones, while the consumer reads.
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer.get(), "lp.tail", nullptr);
  ASSERT_NE(rkt, nullptr);
  int next = 1;
  for (int round = 0; round < 20; ++round) {
    const int in_batch = round % 2 == 0 ? 1 : 25;
    for (int i = 0; i < in_batch; ++i, ++next) {
      std::string key = "k" + std::to_string(next), value = "v" + std::to_string(next) + std::string(next % 7 * 50, 'x');
      ASSERT_EQ(rd_kafka_produce(rkt, 0, RD_KAFKA_MSG_F_COPY, value.data(), value.size(), key.data(), key.size(),
                                 nullptr),
                0);
    }
    ASSERT_EQ(rd_kafka_flush(producer.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    std::vector<Consumed> more = Consume(consumer.get(), static_cast<size_t>(in_batch), 10s);
    ASSERT_EQ(more.size(), static_cast<size_t>(in_batch)) << "round " << round;
    seen.insert(seen.end(), more.begin(), more.end());
  }
  rd_kafka_topic_destroy(rkt);
  ASSERT_EQ(seen.size(), static_cast<size_t>(next));
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_EQ(seen[i].offset, static_cast<int64_t>(i));
    EXPECT_EQ(seen[i].key, "k" + std::to_string(i));
  }
  EXPECT_GT(LongPollCounters(broker_)["partitions_answered"], answered_before)
      << "every record came from the mock: the front's copy was not used";
  rd_kafka_consumer_close(consumer.get());

  // A consumer of the mock itself (no front) reads the same log from the start: the same records, at
  // the same offsets, with the same keys, values and timestamps.
  rapidjson::Document doc;
  LongPollCounters(broker_, &doc);
  ASSERT_TRUE(doc.HasMember("mock_bootstrap"));
  auto direct = AssignedConsumer(doc["mock_bootstrap"].GetString(), "lp.tail", 100, "lp-direct");
  ASSERT_TRUE(direct);
  std::vector<Consumed> from_mock = Consume(direct.get(), seen.size(), 30s);
  EXPECT_EQ(from_mock, seen);
  rd_kafka_consumer_close(direct.get());
  // And a consumer through the front from the start (older batches from the mock, the tail here).
  auto again = AssignedConsumer(broker_.bootstrap(), "lp.tail", 500, "lp-again");
  ASSERT_TRUE(again);
  EXPECT_EQ(Consume(again.get(), seen.size(), 30s), seen);
  rd_kafka_consumer_close(again.get());
}

TEST_F(DevBrokerProcessTest, ARecordProducedPastTheFrontStillArrivesWithinMaxWait) {
  std::string body;
  ASSERT_EQ(broker_.Post("/topics?name=lp.past&partitions=1", &body), 201) << body;
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker_.bootstrap()));
  ASSERT_TRUE(producer);
  auto consumer = AssignedConsumer(broker_.bootstrap(), "lp.past", 500, "lp-past");
  ASSERT_TRUE(consumer);
  ASSERT_EQ(ProduceSync(producer.get(), "lp.past", "k", "first"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(NextRecord(consumer.get(), 15s), std::optional<std::string>("first"));
  ASSERT_EQ(ProduceSync(producer.get(), "lp.past", "k", "second"), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(NextRecord(consumer.get(), 10s), std::optional<std::string>("second"));
  // A producer of the mock itself: the front never sees this produce, so its copy of the log ends early.
  rapidjson::Document doc;
  const int64_t produces = LongPollCounters(broker_, &doc)["produces"];
  ASSERT_TRUE(doc.HasMember("mock_bootstrap"));
  auto direct = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(doc["mock_bootstrap"].GetString()));
  ASSERT_TRUE(direct);
  const auto sent = Clock::now();
  ASSERT_EQ(ProduceSync(direct.get(), "lp.past", "k", "unseen"), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto value = NextRecord(consumer.get(), 10s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - sent);
  EXPECT_EQ(value, std::optional<std::string>("unseen"));
  EXPECT_LT(took, 3s) << "the consumer waited " << took.count() << " ms (its MaxWait is 500 ms)";
  EXPECT_EQ(LongPollCounters(broker_)["produces"], produces) << "the produce went through the front";
  rd_kafka_consumer_close(consumer.get());
}

TEST(DevBrokerBinary, NoLongPollServesTheMockDirectly) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start({"--brokers", "1", "--no-long-poll"}));
  rapidjson::Document doc;
  LongPollCounters(broker, &doc);
  ASSERT_TRUE(doc.IsObject() && doc.HasMember("enabled"));
  EXPECT_FALSE(doc["enabled"].GetBool());
  EXPECT_EQ(std::string(doc["mock_bootstrap"].GetString()), broker.bootstrap());
  auto producer = MakeClient(RD_KAFKA_PRODUCER, ProducerSettings(broker.bootstrap()));
  ASSERT_TRUE(producer);
  EXPECT_EQ(ProduceSync(producer.get(), "pv.triggers", "k", "v"), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto status = broker.Stop();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << broker.Log();
}

TEST(DevBrokerBinary, OneBrokerNoDefaultTopicsAndAnOverride) {
  BrokerProcess broker;
  ASSERT_TRUE(broker.Start({"--brokers", "1", "--no-default-topics", "--topic", "only.topic:2"}));
  EXPECT_EQ(std::count(broker.bootstrap().begin(), broker.bootstrap().end(), ','), 0) << broker.bootstrap();
  auto listed = ListedTopics(broker);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed["only.topic"], std::make_pair(2, 1));
  auto status = broker.Stop();
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(*status, 0) << broker.Log();
}

}  // namespace
