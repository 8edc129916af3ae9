// pv::testing: child processes owned by a test (started, stopped by pid, never leaked), temporary
// directories, files and bounded waits. The one implementation every integration test uses
// (docs/testing.md, "Where the tests are, and the one harness").
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace pv::testing {

// A child process (thread-safe). The destructor kills it (SIGKILL) if it still runs, so a failing test
// leaks none.
class Subprocess {
 public:
  // argv[0] is the executable path; `env` is added to (or overrides) the test's environment. stdout and
  // stderr go to `log_path` (appended) when given.
  Subprocess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
             const std::string& log_path = "");
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  // Sends `signal` (SIGSTOP, SIGHUP, ...) while the process has not been reaped.
  void Signal(int signal);
  // Sends `signal` and waits up to `timeout` for the exit; SIGKILL after that. Returns the exit
  // status (128 + signal number when killed by a signal), or -1 if it was not running.
  int Stop(int signal = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // SIGKILL and reap: a crash, no goodbye.
  void Kill() { Stop(SIGKILL, std::chrono::seconds(5)); }
  // Waits for the process to exit by itself; returns its status, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  // What it wrote to `log_path` so far (empty without one).
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
  std::mutex mutex_;  // Running() may be called from several test threads; one of them reaps
};

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it by the destructor unless
// PV_KEEP_TEST_DIRS is set (to read the logs of a failed run).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "pv-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }
  // Writes File(name), creating the directories on the way.
  void Write(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

// A loopback TCP port that was free a moment ago (bind to port 0, read it, close).
int FreePort();

// Polls `predicate` every 20 ms until it holds or `timeout` passes; returns its last answer.
bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout);
// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::string& path);
// Writes the file, creating its directories.
void WriteFile(const std::string& path, const std::string& content);
// Trims trailing white space.
std::string Trim(std::string s);
// Waits until `path` exists and is not empty; returns its content trimmed ("" on timeout).
std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout);
// Waits for the port file that `process` writes when it listens (--port-file); throws, with the log,
// when the process exits first or `timeout` passes.
int WaitForPortFile(const std::string& path, Subprocess& process, std::chrono::milliseconds timeout);

}  // namespace pv::testing
