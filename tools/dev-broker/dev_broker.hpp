// pv-dev-broker: a Kafka-protocol broker for development and tests, built on librdkafka's mock cluster
// (rdkafka_mock.h). It is NOT Kafka: every record lives in this process's memory only (librdkafka keeps
// at most a few MiB per partition) and is gone when the process exits. Production runs Apache Kafka.
//
// It creates the pipeline's topics, writes its bootstrap list to a file once they exist, and serves a
// small control HTTP API on loopback so tests can inject faults (brokers down, request errors, latency)
// and create topics (the mock cluster has no CreateTopics/Admin API). Clients reach the mock through a
// long-poll front (long_poll.hpp) so that a consumer gets a new record at once, as from Kafka.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pv::dev_broker {

struct TopicRequest {
  std::string name;
  int partitions = 1;
};

struct Options {
  int brokers = 3;
  std::string bootstrap_file;  // empty: not written
  std::string control_file;    // empty: not written
  bool default_topics = true;
  std::vector<TopicRequest> topics;  // --topic entries, in command-line order
  std::string log_level = "info";
  // Clients go through the long-poll front (long_poll.hpp), which answers a waiting Fetch as soon as
  // a record is produced; false (--no-long-poll): clients talk to the mock cluster directly.
  bool long_poll = true;
};

inline constexpr int kMaxBrokers = 32;
inline constexpr int kMaxPartitions = 1000;
inline constexpr int kMaxErrorCount = 100000;
inline constexpr int kMaxRttMs = 600000;

enum class ParseStatus { kOk, kHelp, kError };

// Parses the command line (without the program name), with CLI11. On kError, `error` is one line
// naming the problem and the --help to run; on kHelp, Usage has the text.
ParseStatus ParseArgs(const std::vector<std::string>& args, Options& out, std::string& error);
std::string Usage(std::string_view program);

// The topics created at start: pv::topics::DefaultTopics() unless disabled, then each --topic entry
// (overriding the partition count of a topic of the same name, else added).
std::vector<TopicRequest> StartupTopics(const Options& options);

// Kafka API key by name ("Produce", "fetch", "OffsetCommit", ...) or number ("0").
bool ParseApiKey(std::string_view text, int& out);
// Broker error code by name as rd_kafka_err2name() gives it ("REQUEST_TIMED_OUT", optionally with an
// "ERR_" or "RD_KAFKA_RESP_ERR_" prefix, any case) or by number. Client-local errors (negative codes,
// names starting with '_') are refused: a broker cannot send them.
bool ParseErrorCode(std::string_view text, int& out);
// Kafka's rule: 1..249 characters of [a-zA-Z0-9._-], not "." or "..".
bool ValidTopicName(std::string_view name);
int ReplicationFactor(int brokers);

// The running broker: mock cluster, topics, control server. Thread-safe after Start().
class DevBroker {
 public:
  explicit DevBroker(Options options);
  ~DevBroker();
  DevBroker(const DevBroker&) = delete;
  DevBroker& operator=(const DevBroker&) = delete;

  // Creates the cluster and the startup topics, starts the control server, then writes the control and
  // bootstrap files (the bootstrap file last: its presence means ready). Throws std::runtime_error.
  void Start();
  // Stops the control server, destroys the cluster, removes the files it wrote. Idempotent.
  void Stop();

  const std::string& bootstrap() const;
  int control_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The whole program: parses argv, runs until SIGTERM or SIGINT, returns the exit code
// (0 clean shutdown or --help, 1 runtime failure, 2 bad command line).
int Main(int argc, char** argv);

}  // namespace pv::dev_broker
