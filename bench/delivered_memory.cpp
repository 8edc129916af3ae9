// pv-bench-delivered-memory: the email worker's DeliveredMemory as the worker uses it, without Kafka
// or Redis: for each send, Find (a miss: the send is new) then Add (the provider said yes), and every
// COMMIT sends a commit of all 8 partitions releases them (the worker commits every second: at
// 24,000 sends/s, 24,000 entries live at once). Send ids and provider message ids are made before
// the clock starts, as the worker has them in its records and the provider's answers.
//
//   build/bench/pv-bench-delivered-memory [SENDS] [COMMIT]   (1,000,000; 24,000) prints ns per send
//   valgrind --tool=callgrind build/bench/pv-bench-delivered-memory 200000   instructions, repeatable
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "pv/workers/delivered_memory.hpp"

int main(int argc, char** argv) {
  long sends = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 1'000'000;
  long commit = argc > 2 ? std::strtol(argv[2], nullptr, 10) : 24'000;
  if (sends <= 0 || commit <= 0) {
    std::fprintf(stderr, "usage: pv-bench-delivered-memory [SENDS > 0] [COMMIT > 0]\n");
    return 2;
  }
  std::mt19937_64 rng(1);
  auto uuid = [&] {
    char b[40];
    unsigned long long a = rng(), c = rng();
    std::snprintf(b, sizeof b, "%08llx-%04llx-%04llx-%04llx-%012llx", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                  c >> 48, c & 0xffffffffffffULL);
    return std::string(b);
  };
  std::vector<std::string> ids(static_cast<size_t>(sends));
  std::vector<std::string> message_ids(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    ids[i] = uuid();
    message_ids[i] = "log-" + ids[i];
  }
  pv::workers::DeliveredMemory memory(static_cast<size_t>(commit) * 2);
  size_t found = 0;
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ids.size(); ++i) {
    if (memory.Find(ids[i]) != nullptr) ++found;
    memory.Add(static_cast<std::int32_t>(i % 8), static_cast<std::int64_t>(i), ids[i], "log", message_ids[i]);
    if ((i + 1) % static_cast<size_t>(commit) == 0) {
      for (std::int32_t p = 0; p < 8; ++p) memory.Committed(p, static_cast<std::int64_t>(i + 1));
    }
  }
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  std::printf("%ld sends, a commit every %ld: %.1f ns per send (Find, Add, its share of Committed); "
              "%zu found (0 expected), %zu remembered at the end\n",
              sends, commit, ns / static_cast<double>(sends), found, memory.size());
  return found == 0 ? 0 : 1;
}
