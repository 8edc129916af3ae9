#include "pv/testing/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "pv/files.hpp"

namespace pv::testing {

Subprocess::Subprocess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const std::string& log_path)
    : log_path_(log_path) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // The child's environment is built here, before fork: between fork and exec the child of a
  // threaded test may only make async-signal-safe calls. setenv allocates, and an allocator lock
  // that another thread held at the fork stays locked in the child forever: glibc's malloc resets
  // its locks in the child, clang-14's AddressSanitizer allocator does not (it has no fork hook).
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    if (!env.contains(entry.substr(0, entry.find('=')))) env_strings.push_back(std::move(entry));
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    // Child: unblock signals a test may have blocked, redirect output, exec.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_UNBLOCK, &all, nullptr);
    if (!log_path.empty()) {
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
      }
    }
    ::execve(args[0], args.data(), envp.data());
    std::_Exit(127);
  }
}

Subprocess::~Subprocess() {
  if (Running()) Stop(SIGKILL, std::chrono::milliseconds(5000));
}

bool Subprocess::Running() {
  std::lock_guard lock(mutex_);
  if (pid_ <= 0 || status_ != -1) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r != pid_ && errno == EINTR;  // interrupted: still running as far as we know
}

void Subprocess::Signal(int signal) {
  std::lock_guard lock(mutex_);
  if (pid_ > 0 && status_ == -1) ::kill(pid_, signal);
}

std::string Subprocess::Log() const {
  return log_path_.empty() ? std::string() : ReadFile(log_path_);
}

int Subprocess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Running()) {
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mutex_);
  return status_;
}

int Subprocess::Stop(int signal, std::chrono::milliseconds timeout) {
  if (!Running()) {
    std::lock_guard lock(mutex_);
    return status_;
  }
  ::kill(pid_, signal);
  int status = Wait(timeout);
  if (status == -1) {
    ::kill(pid_, SIGKILL);
    status = Wait(std::chrono::milliseconds(5000));
  }
  return status;
}

TempDir::TempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  if (std::getenv("PV_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(path_, ec);
}

void TempDir::Write(const std::string& name, const std::string& content) const {
  WriteFile(File(name), content);
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool WaitFor(const std::function<bool()>& predicate, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string ReadFile(const std::string& path) {
  return pv::ReadFile(path).value_or(std::string());
}

void WriteFile(const std::string& path, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream out(path, std::ios::trunc);
  out << content;
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout) {
  std::string content;
  WaitFor(
      [&] {
        content = ReadFile(path);
        return !content.empty();
      },
      timeout);
  return Trim(content);
}

int WaitForPortFile(const std::string& path, Subprocess& process, std::chrono::milliseconds timeout) {
  bool ok = WaitFor([&] { return std::filesystem::exists(path) || !process.Running(); }, timeout);
  if (!ok || !process.Running()) {
    throw std::runtime_error("process did not start (" + path + "): " + process.Log());
  }
  std::string port = WaitForFile(path, std::chrono::seconds(2));
  if (port.empty()) throw std::runtime_error("empty port file " + path);
  return std::stoi(port);
}

}  // namespace pv::testing
