// What a change on pv.campaigns costs a replica: the whole catalog is merged (Catalog::Merge) and,
// in the dispatcher, compiled again (CompiledCatalog::Compile). Copies of the demo campaigns stand
// for N campaigns on the topic, beside the demo catalog's files.
//
//   pv-bench-catalog-merge [CATALOG_DIR] [N...]     default: catalog/demo, N = 3 300 3000
//
// Prints, per N, the milliseconds of one merge and of one merge + compile (mean of several runs).
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "pv/catalog.hpp"
#include "pv/dispatcher/renderer.hpp"

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : "catalog/demo";
  std::vector<size_t> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(std::stoul(argv[i]));
  if (sizes.empty()) sizes = {3, 300, 3000};
  auto files = pv::Catalog::LoadDirectory(dir);
  std::vector<pv::TopicCampaign> topic;
  for (size_t i = 0; topic.size() < sizes.back(); ++i) {
    for (const auto& [id, c] : files->campaigns()) {
      auto copy = std::make_shared<pv::Campaign>(c);
      copy->id = id + "-" + std::to_string(i);
      topic.push_back({copy->id, 1, copy});
    }
  }
  using Clock = std::chrono::steady_clock;
  std::printf("%-10s %-12s %s\n", "topic", "merge ms", "merge+compile ms");
  for (size_t n : sizes) {
    std::vector<pv::TopicCampaign> part(topic.begin(), topic.begin() + static_cast<std::ptrdiff_t>(n));
    int reps = n < 100 ? 1000 : 5;
    auto t0 = Clock::now();
    for (int r = 0; r < reps; ++r) (void)pv::Catalog::Merge(*files, part);
    auto t1 = Clock::now();
    for (int r = 0; r < reps; ++r)
      (void)pv::dispatcher::CompiledCatalog::Compile(pv::Catalog::Merge(*files, part));
    auto t2 = Clock::now();
    std::printf("%-10zu %-12.3f %.3f\n", n, std::chrono::duration<double, std::milli>(t1 - t0).count() / reps,
                std::chrono::duration<double, std::milli>(t2 - t1).count() / reps);
  }
  return 0;
}
