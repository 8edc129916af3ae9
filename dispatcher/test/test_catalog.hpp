// Writes small campaign catalogs into a temporary directory for the dispatcher's unit tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

namespace pv::dispatcher::testing {

class TempCatalog {
 public:
  TempCatalog() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() /
           ("pv-dispatcher-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
  }
  ~TempCatalog() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempCatalog(const TempCatalog&) = delete;
  TempCatalog& operator=(const TempCatalog&) = delete;

  void Write(const std::string& name, const std::string& content) {
    auto path = dir_ / name;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path) << content;
  }
  std::string dir() const { return dir_.string(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace pv::dispatcher::testing
