// Harness of the dispatcher integration tests (its own namespace: tests/support has similar names).
// What the dispatcher's integration tests need around it: child processes stopped by pid, the dev
// broker, a real redis-server on a free loopback port, a reader of whole topics, and a producer of
// triggers. Every wait is bounded in time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pv/kafka.hpp"

namespace pv::dispatcher_it {

using namespace std::chrono_literals;

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  void Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);
// Waits until `path` exists and is not empty; returns its content without the trailing newline.
std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout);
// Polls `done` every 20 ms until it returns true or `timeout` passes; returns its last answer.
bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout);
int FreePort();

// A child process with stdout and stderr appended to `log_path`. The destructor stops it (SIGTERM,
// then SIGKILL after 10 s) by its pid.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig) const;
  // Sends SIGTERM and waits; returns the exit status (-1 when it had to be killed).
  int Stop(std::chrono::milliseconds timeout = 10s);
  // SIGKILL and reap.
  void Kill();
  bool Running();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

class DevBroker {
 public:
  // `default_topics` false: only `extra_topics` exist (NAME:PARTITIONS each).
  DevBroker(const TempDir& dir, const std::vector<std::string>& extra_topics = {}, int brokers = 1,
            bool default_topics = true);
  const std::string& bootstrap() const { return bootstrap_; }
  Process& process() { return *process_; }
  // POSTs to the control API (e.g. "/topics/error?name=X&error=E"); returns the HTTP status.
  int Post(const std::string& path_and_query) const;

 private:
  std::unique_ptr<Process> process_;
  std::string bootstrap_;
  std::string control_;  // host:port
};

class RedisServer {
 public:
  explicit RedisServer(const TempDir& dir, int port = 0);
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // Runs redis-cli against this server; returns its output.
  std::string Cli(const std::string& args) const;
  Process& process() { return *process_; }

 private:
  int port_;
  std::unique_ptr<Process> process_;
};

struct Record {
  std::string topic;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  std::chrono::system_clock::time_point timestamp;  // the record's (producer) timestamp
  std::chrono::system_clock::time_point read_at;    // when this reader received it
};

// Reads every partition of the given topics from the beginning, without a consumer group.
class TopicReader {
 public:
  TopicReader(const std::string& bootstrap, const std::vector<std::string>& topics);
  ~TopicReader();
  TopicReader(const TopicReader&) = delete;
  TopicReader& operator=(const TopicReader&) = delete;

  // Reads for up to `timeout` or until `done(all records so far)`; returns all records read so far.
  const std::vector<Record>& ReadUntil(const std::function<bool(const std::vector<Record>&)>& done,
                                       std::chrono::milliseconds timeout);
  std::vector<Record> Of(const std::string& topic) const;

 private:
  rd_kafka_t* rk_ = nullptr;
  std::vector<Record> records_;
};

// The value of a trigger record as TriggerWriter writes it (ingest's shape), received now.
std::string TriggerValue(const std::string& trigger_id, const std::string& campaign_id,
                         const std::string& user_json, const std::string& event_json);

// The offset `group` committed for topic/partition (-1 when none), asked of the group coordinator.
std::int64_t CommittedOffset(const std::string& bootstrap, const std::string& group, const std::string& topic,
                             std::int32_t partition);

// Produces triggers (ingest's record shape) and waits for the broker's acknowledgements.
class TriggerWriter {
 public:
  explicit TriggerWriter(const std::string& bootstrap);
  // `user_json` and `event_json` are JSON objects; returns the trigger id.
  std::string Write(const std::string& campaign_id, const std::string& external_id,
                    const std::string& user_json, const std::string& event_json,
                    const std::string& trigger_id = "");
  // Waits for every acknowledgement so far; false on a timeout or error.
  bool Flush(std::chrono::milliseconds timeout = 10s);

 private:
  std::unique_ptr<kafka::Producer> producer_;
  std::vector<std::shared_ptr<kafka::DeliveryGroup>> groups_;
};

// GET http://127.0.0.1:port/path; returns {status, body} (status 0 when unreachable).
std::pair<int, std::string> HttpGet(int port, const std::string& path);
// The value of one series in a Prometheus exposition ("name{labels}"), or -1.
double MetricValue(const std::string& exposition, const std::string& series);

}  // namespace pv::dispatcher_it
