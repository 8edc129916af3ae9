// pv-bench-status-event: the status feeder's own work per pv.events record, without Kafka or Redis:
// StatusFromEvent (parse, digest, entry) and AddStatusWrite (the commands' RESP), over a delivered
// trigger's two events (`queued`, `sent`) in turn, batches of 500 as the feeder's status.batch_size,
// into updates kept from batch to batch as the feeder keeps them.
//
//   build/bench/pv-bench-status-event [EVENTS]          (default 1,000,000) prints ns per event
//   valgrind --tool=callgrind build/bench/pv-bench-status-event 20000   instructions, repeatable
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pv/redis_client.hpp"
#include "pv/status_store.hpp"

int main(int argc, char** argv) {
  long events = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 1'000'000;
  if (events <= 0) {
    std::fprintf(stderr, "usage: pv-bench-status-event [EVENTS > 0]\n");
    return 2;
  }
  const std::string records[] = {
      R"({"v":1,"send_id":"0193a8c2-7d4e-7b1a-9c3e-5f6a7b8c9d0e","trigger_id":"0193a8c2-7d4e-7b1a-9c3e-)"
      R"(5f6a7b8c9d0f","project":"demo","campaign_id":"44","channel":"email","status":"queued",)"
      R"("provider":"log","at":"2026-12-03T08:00:00.001Z"})",
      R"({"v":1,"send_id":"0193a8c2-7d4e-7b1a-9c3e-5f6a7b8c9d0e","trigger_id":"0193a8c2-7d4e-7b1a-9c3e-)"
      R"(5f6a7b8c9d0f","campaign_id":"44","channel":"email","status":"sent","provider":"log",)"
      R"("provider_message_id":"log-0193a8c2","attempt":1,"at":"2026-12-03T08:00:00.009Z"})"};
  pv::StatusOptions options;
  pv::RedisCommands commands;
  // Kept from batch to batch, as the feeder keeps its updates (and their strings' capacity).
  std::vector<pv::StatusUpdate> updates(static_cast<size_t>(options.batch_size));
  std::string error;
  size_t written = 0;
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < events; ++i) {
    if (i % options.batch_size == 0) commands.clear();
    pv::StatusUpdate& update = updates[static_cast<size_t>(i % options.batch_size)];
    if (!pv::StatusFromEvent(records[i % 2], options.max_field_bytes, update, error)) {
      std::fprintf(stderr, "pv-bench-status-event: %s\n", error.c_str());
      return 1;
    }
    written += pv::AddStatusWrite(commands, update, options);
  }
  std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  std::printf("%ld events, %zu commands: %.0f ns per event\n", events, written, took.count() / events);
  return 0;
}
