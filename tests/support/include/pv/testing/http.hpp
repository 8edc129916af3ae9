// pv::testing: HTTP on loopback through cpp-httplib, for the admin and control endpoints of what a
// test started (raw_http.hpp for byte-level control), and JSON bodies.
#pragma once

#include <rapidjson/document.h>

#include <string>
#include <utility>

namespace pv::testing {

// GET/POST http://127.0.0.1:port/path (5 s to connect, 10 s to read); returns {status, body}, status -1
// when nothing answered.
std::pair<int, std::string> HttpGet(int port, const std::string& path);
std::pair<int, std::string> HttpPost(int port, const std::string& path, const std::string& body);

// Parses `text`; throws std::runtime_error (with the start of the text) when it is not JSON.
rapidjson::Document ParseJson(const std::string& text);

}  // namespace pv::testing
