#include "pv/testing/http.hpp"

#include <httplib.h>

#include <stdexcept>

namespace pv::testing {

std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  auto res = c.Get(path.c_str());
  if (!res) return {-1, ""};
  return {res->status, res->body};
}

std::pair<int, std::string> HttpPost(int port, const std::string& path, const std::string& body) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(10, 0);
  auto res = c.Post(path.c_str(), body, "application/json");
  if (!res) return {-1, ""};
  return {res->status, res->body};
}

rapidjson::Document ParseJson(const std::string& text) {
  rapidjson::Document d;
  d.Parse(text.c_str());
  if (d.HasParseError()) throw std::runtime_error("not JSON: " + text.substr(0, 200));
  return d;
}

}  // namespace pv::testing
