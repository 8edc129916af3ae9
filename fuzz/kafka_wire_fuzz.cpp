// Kafka frames as the dev broker's long-poll front reads them (tools/dev-broker/long_poll.cpp): requests
// from any local client, answers from the mock. The first byte picks the API version and which
// partitions a narrowed Fetch keeps; the rest is one frame without its size prefix. Every parser must
// stay within the frame, and what the front builds from a parsed request must parse back to it.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "long_poll.hpp"

namespace w = pv::dev_broker::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const auto version = static_cast<std::int16_t>(data[0] % 13);
  const std::string_view frame(reinterpret_cast<const char*>(data) + 1, size - 1);

  w::RequestHeader header;
  if (w::ParseRequestHeader(frame, header)) {
    w::FetchRequest fetch;
    if (w::ParseFetchRequest(frame, header, fetch)) {
      if (fetch.fetch_offsets.size() != fetch.partitions.size() || fetch.entries.size() != fetch.partitions.size())
        abort();
      std::vector<bool> keep(fetch.partitions.size());
      std::vector<w::TopicPartition> kept;
      for (std::size_t i = 0; i < keep.size(); ++i) {
        keep[i] = ((data[0] >> (i % 8)) & 1) != 0;
        if (keep[i]) kept.push_back(fetch.partitions[i]);
      }
      const std::string narrowed = w::NarrowFetchRequest(frame, fetch, keep);
      const std::string_view body = std::string_view(narrowed).substr(4);
      w::RequestHeader again;
      w::FetchRequest back;
      if (!w::ParseRequestHeader(body, again) || !w::ParseFetchRequest(body, again, back)) abort();
      if (back.partitions != kept || back.max_wait_ms != fetch.max_wait_ms || back.min_bytes != fetch.min_bytes) abort();
    }
    bool transactional = false;
    std::vector<w::ProducedRecords> produced;
    if (w::ParseProduceRequest(frame, header, transactional, produced)) {
      for (const w::ProducedRecords& r : produced) {
        if (w::RecordBatchCount(r.records) <= 0) continue;
        std::string batch(r.records);
        w::SetRecordBatchOffsetAndEpoch(batch, 1234, 5);
        if (w::RecordBatchLeaderEpoch(batch) != 5 || batch.substr(16) != r.records.substr(16)) abort();
      }
    }
  }

  bool idle = false;
  std::vector<w::FetchAnswer> answers;
  w::FetchAnswerHeader head;
  if (w::ParseFetchResponse(frame, version, idle, answers, &head)) {
    for (const w::FetchAnswer& a : answers) {
      if (a.entry_begin > a.entry_end || a.entry_end > frame.size()) abort();
      if (!a.records.empty() && (a.records.data() < frame.data() || a.records.data() + a.records.size() > frame.data() + frame.size()))
        abort();
    }
  }
  std::vector<w::ProduceAnswer> produce_answers;
  (void)w::ParseProduceResponse(frame, version, produce_answers);
  std::string rewritten(frame);
  int ports = 0;
  (void)w::RewriteBrokerPorts(rewritten, (data[0] & 0x80) != 0 ? w::kMetadata : w::kFindCoordinator, version,
                              {{9092, 19092}, {0, 1}}, ports);
  if (rewritten.size() != frame.size()) abort();
  return 0;
}
