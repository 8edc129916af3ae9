// pv-bench-dispatcher-trigger: the dispatcher's own work per trigger, without Kafka or Redis: Parse
// (the record, its campaign, the send id) and Decide (render, the send record, the `queued` event), over
// triggers shaped as pv-dispatcher-fill writes them (campaign 44 of catalog/demo by default).
//
//   build/bench/pv-bench-dispatcher-trigger [TRIGGERS] [CATALOG_DIR] [CAMPAIGN]   prints ns per trigger
//   valgrind --tool=callgrind build/bench/pv-bench-dispatcher-trigger 20000      instructions, repeatable
#include <fmt/format.h>
#include <rapidjson/document.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pv/dispatcher/processor.hpp"
#include "pv/ids.hpp"
#include "pv/json.hpp"
#include "pv/records.hpp"

int main(int argc, char** argv) {
  long triggers = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 200'000;
  std::string dir = argc > 2 ? argv[2] : "catalog/demo";
  std::string campaign = argc > 3 ? argv[3] : "44";
  if (triggers <= 0) {
    std::fprintf(stderr, "usage: pv-bench-dispatcher-trigger [TRIGGERS > 0] [CATALOG_DIR] [CAMPAIGN]\n");
    return 2;
  }
  auto catalog = pv::dispatcher::CompiledCatalog::Load(dir);
  // 100 distinct triggers, in turn (as pv-dispatcher-fill writes them, for 100 users).
  std::vector<std::string> records;
  std::string received_at = pv::FormatTimestamp(std::chrono::system_clock::now());
  for (int i = 0; i < 100; ++i) {
    std::string external_id = fmt::format("user-{}", i);
    std::string body = fmt::format(
        R"({{"user":{{"external_id":"{}","email":"{}@example.com","first_name":"User {}","locale":"en-US"}},)"
        R"("event":{{"order_id":"O-{}","code":"{:06d}","minutes":10,"item_count":2,"cart_id":"c-{}",)"
        R"("items":[{{"name":"Pen","quantity":2}},{{"name":"Ink","quantity":1}}]}}}})",
        external_id, external_id, i, i, i, i);
    rapidjson::Document doc;
    doc.Parse(body.data(), body.size());
    std::string trigger_id = pv::NewTriggerId();
    std::string value;
    pv::AppendTrigger(value, {trigger_id, "demo", campaign, received_at, &doc["user"], &doc["event"], {}});
    records.push_back(std::move(value));
  }
  pv::dispatcher::TriggerProcessor processor({});
  size_t bytes = 0;
  auto now = std::chrono::system_clock::now();
  auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < triggers; ++i) {
    const std::string& value = records[static_cast<size_t>(i) % records.size()];
    pv::dispatcher::ParsedTrigger parsed;
    processor.Parse(value, *catalog, parsed);
    pv::dispatcher::Outcome outcome =
        processor.Decide(parsed, parsed.external_id, pv::dispatcher::Suppressed::kNo, now);
    if (outcome.action != pv::dispatcher::Action::kSend) {
      std::fprintf(stderr, "pv-bench-dispatcher-trigger: not sent: %s %s\n", outcome.error_code.c_str(),
                   outcome.error.c_str());
      return 1;
    }
    for (const auto& r : outcome.records) bytes += r.value.size();
  }
  std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  std::printf("%ld triggers (%zu bytes each, %zu bytes out each): %.0f ns per trigger\n", triggers,
              records[0].size(), bytes / static_cast<size_t>(triggers), took.count() / triggers);
  return 0;
}
