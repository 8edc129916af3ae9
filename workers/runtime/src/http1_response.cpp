#include "pv/workers/http1_response.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "pv/strings.hpp"

namespace pv::workers {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    std::size_t comma = value.find(',');
    if (EqualsIgnoreCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void Http1Response::Reset(std::span<const std::string_view> keep_headers, bool head_request) {
  keep_headers_ = keep_headers;
  head_request_ = head_request;
  state_ = State::kMore;
  phase_ = Phase::kStatus;
  started_ = false;
  keep_alive_ = false;
  http11_ = false;
  close_ = false;
  chunked_ = false;
  other_coding_ = false;
  has_length_ = false;
  length_ = 0;
  status_ = 0;
  head_bytes_ = 0;
  header_count_ = 0;
  line_.clear();
  error_.clear();
  headers_.clear();
  body_.clear();
}

Http1Response::State Http1Response::Fail(std::string message) {
  state_ = State::kError;
  keep_alive_ = false;
  error_ = std::move(message);
  return state_;
}

Http1Response::State Http1Response::Done() {
  state_ = State::kDone;
  if (phase_ == Phase::kClose) keep_alive_ = false;
  return state_;
}

void Http1Response::Keep(std::string_view data) {
  if (body_.size() < limits_.max_body) body_.append(data.substr(0, limits_.max_body - body_.size()));
}

Http1Response::State Http1Response::Feed(std::string_view data, std::size_t& used) {
  used = 0;
  if (state_ != State::kMore) return state_;
  if (!data.empty()) started_ = true;
  while (used < data.size() && state_ == State::kMore) {
    std::string_view rest = data.substr(used);
    if (phase_ == Phase::kLength || phase_ == Phase::kChunkData) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(rest.size(), length_));
      Keep(rest.substr(0, n));
      used += n;
      length_ -= n;
      if (length_ > 0) continue;
      if (phase_ == Phase::kLength) return Done();
      phase_ = Phase::kChunkEnd;
      continue;
    }
    if (phase_ == Phase::kClose) {
      Keep(rest);
      used += rest.size();
      continue;
    }
    // A line: of the head, a chunk's size or end, or a trailer.
    std::size_t nl = rest.find('\n');
    std::size_t take = nl == std::string_view::npos ? rest.size() : nl + 1;
    bool head = phase_ == Phase::kStatus || phase_ == Phase::kHeaders || phase_ == Phase::kTrailers;
    if (head) {
      head_bytes_ += take;
      if (head_bytes_ > limits_.max_head_bytes)
        return Fail(fmt::format("answer head (or trailer) over {} bytes", limits_.max_head_bytes));
    } else if (line_.size() + take > limits_.max_line) {
      return Fail(fmt::format("chunk size line over {} bytes", limits_.max_line));
    }
    used += take;
    if (nl == std::string_view::npos) {
      line_.append(rest);
      continue;
    }
    std::string_view line = rest.substr(0, nl);
    if (!line_.empty()) {
      line_.append(line);
      line = line_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Line(line);
    line_.clear();
  }
  return state_;
}

Http1Response::State Http1Response::Line(std::string_view line) {
  switch (phase_) {
    case Phase::kStatus:
      if (line.empty()) return state_;  // stray empty lines before a status line are tolerated
      return StatusLine(line);
    case Phase::kHeaders:
      if (line.empty()) return EndOfHead();
      return HeaderLine(line);
    case Phase::kChunkSize:
      return ChunkSize(line);
    case Phase::kChunkEnd:
      if (!line.empty()) return Fail("chunk data longer than its size");
      phase_ = Phase::kChunkSize;
      return state_;
    case Phase::kTrailers:
      if (line.empty()) return Done();
      if (++header_count_ > limits_.max_headers)
        return Fail(fmt::format("more than {} header and trailer lines", limits_.max_headers));
      return state_;  // trailers are read and dropped
    default:
      return state_;
  }
}

Http1Response::State Http1Response::StatusLine(std::string_view line) {
  // "HTTP/1.1 200 OK": version, three digits, then a space and a reason (maybe empty) or nothing.
  bool ok = line.size() >= 12 && line.substr(0, 7) == "HTTP/1." && (line[7] == '0' || line[7] == '1') &&
            line[8] == ' ' && (line.size() == 12 || line[12] == ' ');
  for (std::size_t i = 9; ok && i < 12; ++i) ok = line[i] >= '0' && line[i] <= '9';
  if (!ok || line[9] == '0') {
    return Fail(fmt::format("malformed status line \"{}\"", line.substr(0, 40)));
  }
  http11_ = line[7] == '1';
  status_ = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  phase_ = Phase::kHeaders;
  return state_;
}

Http1Response::State Http1Response::HeaderLine(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return Fail("obsolete folded header line");
  if (++header_count_ > limits_.max_headers)
    return Fail(fmt::format("more than {} header lines", limits_.max_headers));
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0 || line[colon - 1] == ' ' || line[colon - 1] == '\t')
    return Fail(fmt::format("malformed header line \"{}\"", line.substr(0, 40)));
  std::string_view name = line.substr(0, colon);
  std::string_view value = Trim(line.substr(colon + 1));
  if (EqualsIgnoreCase(name, "content-length")) {
    std::uint64_t n = 0;
    bool digits = !value.empty() && value.size() <= 18;
    for (char c : value) {
      digits = digits && c >= '0' && c <= '9';
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (!digits || (has_length_ && n != length_))
      return Fail(fmt::format("bad Content-Length \"{}\"", value.substr(0, 40)));
    has_length_ = true;
    length_ = n;
  } else if (EqualsIgnoreCase(name, "transfer-encoding")) {
    std::string_view last = Trim(value.substr(value.rfind(',') == std::string_view::npos ? 0 : value.rfind(',') + 1));
    chunked_ = EqualsIgnoreCase(last, "chunked");
    other_coding_ = other_coding_ || !chunked_;
  } else if (EqualsIgnoreCase(name, "connection")) {
    close_ = close_ || HasToken(value, "close");
  }
  if (keep_headers_.empty()) {
    headers_.emplace_back(Lower(name), std::string(value));
    return state_;
  }
  for (std::string_view keep : keep_headers_) {
    if (EqualsIgnoreCase(name, keep)) {
      headers_.emplace_back(std::string(keep), std::string(value));
      break;
    }
  }
  return state_;
}

Http1Response::State Http1Response::EndOfHead() {
  if (status_ < 200) {
    if (status_ == 101) return Fail("unexpected 101 Switching Protocols");
    // An interim answer (100 Continue, 103 Early Hints): the real one follows.
    headers_.clear();
    header_count_ = 0;
    close_ = chunked_ = other_coding_ = has_length_ = false;
    length_ = 0;
    phase_ = Phase::kStatus;
    return state_;
  }
  keep_alive_ = http11_ && !close_;
  if (head_request_ || status_ == 204 || status_ == 304) return Done();
  if (chunked_ && !other_coding_) {
    // Content-Length beside chunked is ignored, and the connection not reused (RFC 9112 6.3).
    if (has_length_) keep_alive_ = false;
    phase_ = Phase::kChunkSize;
    return state_;
  }
  if (chunked_ || other_coding_ || !has_length_) {
    phase_ = Phase::kClose;  // a body that runs to the end of the connection
    keep_alive_ = false;
    return state_;
  }
  if (length_ == 0) return Done();
  phase_ = Phase::kLength;
  return state_;
}

Http1Response::State Http1Response::ChunkSize(std::string_view line) {
  std::uint64_t size = 0;
  std::size_t i = 0;
  for (; i < line.size() && HexDigit(line[i]) >= 0; ++i) {
    if (i >= 15) return Fail("chunk size too large");
    size = size * 16 + static_cast<std::uint64_t>(HexDigit(line[i]));
  }
  std::string_view rest = Trim(line.substr(i));
  if (i == 0 || (!rest.empty() && rest.front() != ';'))
    return Fail(fmt::format("malformed chunk size line \"{}\"", line.substr(0, 40)));
  if (size == 0) {
    phase_ = Phase::kTrailers;
    return state_;
  }
  length_ = size;
  phase_ = Phase::kChunkData;
  return state_;
}

Http1Response::State Http1Response::Eof() {
  if (state_ != State::kMore) return state_;
  if (phase_ == Phase::kClose) return Done();
  if (!started_) return Fail("connection closed before any answer");
  return Fail("connection closed before the answer ended");
}

}  // namespace pv::workers
