// Test support: child processes owned by a test (started, stopped by pid, never leaked), temporary
// directories, bounded waits, and the dev broker as a subprocess. Shared by every integration test.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pv::testing {

// A child process (thread-safe). The destructor kills it (SIGKILL) if it still runs, so a failing test leaks
// none.
class Subprocess {
 public:
  // argv[0] is the executable path. stdout and stderr go to `log_path` (appended) when given.
  Subprocess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
             const std::string& log_path = "");
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `signal` and waits up to `timeout` for the exit; SIGKILL after that. Returns the exit
  // status (128 + signal number when killed by a signal), or -1 if it was not running.
  int Stop(int signal, std::chrono::milliseconds timeout);
  // Waits for the process to exit by itself; returns its status, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::mutex mutex_;  // Running() may be called from several test threads; one of them reaps
};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it by the destructor.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "pv-test");
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
int FreePort();

// Polls `predicate` every 20 ms until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);
std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);
// Trims trailing white space.
std::string Trim(std::string s);

// The dev broker (tools/dev-broker) as a subprocess with its bootstrap and control files in a
// temporary directory. Control calls are HTTP POSTs to its loopback control server.
class DevBroker {
 public:
  explicit DevBroker(int brokers = 1, const std::vector<std::string>& extra_args = {});
  ~DevBroker();
  const std::string& bootstrap() const { return bootstrap_; }
  // POSTs to the control API (e.g. "/brokers/all/down"); returns the HTTP status.
  int Control(const std::string& path);
  pid_t pid() const { return process_->pid(); }

 private:
  TempDir dir_;
  std::unique_ptr<Subprocess> process_;
  std::string bootstrap_;
  std::string control_host_;
  int control_port_ = 0;
};

// Path of the pv-dev-broker binary (from the build, via a compile definition).
std::string DevBrokerPath();

}  // namespace pv::testing
