// An HTTP/1.1 response read incrementally, as bytes arrive from a socket (Http1Client): status line,
// headers (bounded in count and bytes; only the ones asked for are kept), then a body framed by
// Content-Length, chunked transfer coding, or the end of the connection. 1xx answers are skipped.
// Pure: no I/O, so it is unit-tested split at every byte and fuzzed (fuzz/provider_answer_fuzz.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pv::workers {

struct Http1Limits {
  std::size_t max_head_bytes = 64 << 10;  // status line and headers of one answer, CRLFs included
  std::size_t max_headers = 100;
  std::size_t max_line = 8 << 10;   // a chunk size line, or one trailer line
  std::size_t max_body = 1 << 20;   // kept; the rest is read and dropped
};

class Http1Response {
 public:
  enum class State : std::uint8_t { kMore, kDone, kError };

  explicit Http1Response(Http1Limits limits = {}) : limits_(limits) {}
  // Ready for the answer to a new request. keep_headers: lower-case names to keep (static storage;
  // empty: every header). head_request: the answer has no body whatever its headers say.
  void Reset(std::span<const std::string_view> keep_headers, bool head_request = false);
  // Reads from `data` up to the end of the answer. `used` says how many bytes it took: after kDone,
  // the rest belongs to no request (the connection must not be reused then).
  State Feed(std::string_view data, std::size_t& used);
  // The peer closed the connection: ends a body that runs to the close, anything else is an error.
  State Eof();

  State state() const { return state_; }
  // Some byte of an answer arrived (a request on a reused connection that got none may be retried).
  bool started() const { return started_; }
  // The connection may carry another request: HTTP/1.1, no "Connection: close", body framed.
  bool keep_alive() const { return keep_alive_; }
  long status() const { return status_; }
  const std::string& error() const { return error_; }
  std::vector<std::pair<std::string, std::string>>& headers() { return headers_; }
  std::string& body() { return body_; }

 private:
  enum class Phase : std::uint8_t { kStatus, kHeaders, kLength, kChunkSize, kChunkData, kChunkEnd, kTrailers, kClose };
  State Fail(std::string message);
  // A whole line (CRLF or LF stripped) in the head, a chunk size line or a trailer.
  State Line(std::string_view line);
  State StatusLine(std::string_view line);
  State HeaderLine(std::string_view line);
  State EndOfHead();
  State ChunkSize(std::string_view line);
  void Keep(std::string_view data);
  State Done();

  Http1Limits limits_;
  std::span<const std::string_view> keep_headers_;
  bool head_request_ = false;
  State state_ = State::kMore;
  Phase phase_ = Phase::kStatus;
  bool started_ = false;
  bool keep_alive_ = false;
  bool http11_ = false;
  bool close_ = false;    // Connection: close
  bool chunked_ = false;  // Transfer-Encoding ends in chunked
  bool other_coding_ = false;
  bool has_length_ = false;
  std::uint64_t length_ = 0;  // Content-Length, or what is left of it or of the chunk
  long status_ = 0;
  std::size_t head_bytes_ = 0;
  std::size_t header_count_ = 0;
  std::string line_;  // a line not yet ended
  std::string error_;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string body_;
};

}  // namespace pv::workers
