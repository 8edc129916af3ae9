#include "process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace pv::testing {

Subprocess::Subprocess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const std::string& log_path) {
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
  std::filesystem::remove_all(path_, ec);
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
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

std::string DevBrokerPath() {
  return PV_DEV_BROKER_BIN;
}

DevBroker::DevBroker(int brokers, const std::vector<std::string>& extra_args) : dir_("pv-dev-broker") {
  std::vector<std::string> argv = {
      DevBrokerPath(),        "--brokers",      std::to_string(brokers), "--bootstrap-file",
      dir_.File("bootstrap"), "--control-file", dir_.File("control")};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  process_ =
      std::make_unique<Subprocess>(argv, std::map<std::string, std::string>{}, dir_.File("broker.log"));
  bool up = WaitFor([&] { return std::filesystem::exists(dir_.File("bootstrap")) || !process_->Running(); },
                    std::chrono::seconds(15));
  if (!up || !process_->Running()) {
    throw std::runtime_error("dev broker did not start: " + ReadFile(dir_.File("broker.log")));
  }
  bootstrap_ = Trim(ReadFile(dir_.File("bootstrap")));
  std::string control = Trim(ReadFile(dir_.File("control")));
  auto colon = control.rfind(':');
  control_host_ = control.substr(0, colon);
  control_port_ = std::stoi(control.substr(colon + 1));
}

DevBroker::~DevBroker() {
  process_->Stop(SIGTERM, std::chrono::seconds(10));
}

int DevBroker::Control(const std::string& path) {
  httplib::Client client(control_host_, control_port_);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  auto res = client.Post(path.c_str());
  return res ? res->status : -1;
}

}  // namespace pv::testing
