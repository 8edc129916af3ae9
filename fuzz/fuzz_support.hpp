// What the fuzz targets share: splitting one input into fields, a CPU-time budget per input, and a
// loud abort for a broken invariant (libFuzzer saves the input that caused it).
#pragma once

#include <time.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace pv::fuzz {

// Fields are separated by the byte 0x1e (ASCII record separator), so they can hold CR, LF and NUL,
// which is what header injection tests need. The seeds in fuzz/corpus/ are written this way.
inline constexpr char kFieldSeparator = '\x1e';

class Fields {
 public:
  Fields(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}

  // The next field, or "" once the input is used up.
  std::string_view Next() {
    size_t end = rest_.find(kFieldSeparator);
    std::string_view field = rest_.substr(0, end);
    rest_ = end == std::string_view::npos ? std::string_view() : rest_.substr(end + 1);
    return field;
  }
  // Whatever is left, separators included (a record value, a body).
  std::string_view Rest() {
    std::string_view r = rest_;
    rest_ = {};
    return r;
  }
  // The next field's first byte, or 0.
  unsigned char Byte() {
    std::string_view f = Next();
    return f.empty() ? 0 : static_cast<unsigned char>(f.front());
  }
  // The next field as a signed decimal (clamped), 0 when it is not one.
  std::int64_t Int() {
    std::string text(Next());
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    return end != text.c_str() ? v : 0;
  }

 private:
  std::string_view rest_;
};

[[noreturn]] inline void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "invariant broken: %s\n%.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void Check(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) Fail(what, detail);
}

// Aborts when one input took more than `limit_ms` of this thread's CPU time. CPU time, not wall
// time: the machines that run the fuzzers are shared with builds, and a preempted input is not slow.
// libFuzzer's own -timeout (wall time, scripts/fuzz) catches what never returns.
class Budget {
 public:
  explicit Budget(const char* what, long limit_ms = 1000) : what_(what), limit_ms_(limit_ms), start_(Now()) {}
  ~Budget() {
    long spent = (Now() - start_) / 1000000;
    if (spent > limit_ms_) {
      std::fprintf(stderr, "slow input: %s took %ld ms of CPU (budget %ld ms)\n", what_, spent, limit_ms_);
      std::abort();
    }
  }
  Budget(const Budget&) = delete;
  Budget& operator=(const Budget&) = delete;

 private:
  static long long Now() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
  }
  const char* what_;
  long limit_ms_;
  long long start_;
};

}  // namespace pv::fuzz
