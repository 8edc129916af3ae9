// What ingest's endpoints (the trigger API, provider receipts) share: their error answers, and the
// publication of a request's records that answers it.
#pragma once

#include "pv/ingest/http_front.hpp"
#include "pv/ingest/trigger.hpp"
#include "pv/kafka.hpp"

namespace pv::ingest {

inline http::Response Error(int status, std::string_view message,
                            const std::vector<FieldError>& errors = {}) {
  return http::Response::Json(status, ErrorBody(message, errors));
}

// A 503 that tells the client when to retry.
inline http::Response Unavailable(std::string_view message, int retry_after_seconds) {
  http::Response r = Error(503, message);
  r.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
  return r;
}

// A Content-Type's media type: what comes before its parameters ("; charset=utf-8"), unpadded.
inline std::string_view MediaType(std::string_view content_type) {
  std::string_view type = content_type.substr(0, content_type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  while (!type.empty() && type.front() == ' ') type.remove_prefix(1);
  return type;
}

// The records of one request (triggers, provider receipts) on their way to the broker. Each reports
// once, on the producer's poll thread; the last report calls Finish with the first error (NO_ERROR:
// every record acknowledged), which answers the request, and frees the publication (made with new).
class CountedPublication : public kafka::DeliveryHandler {
 public:
  explicit CountedPublication(int records) : countdown_(records) {}
  void OnDelivery(rd_kafka_resp_err_t err, std::int32_t /*partition*/, std::int64_t /*offset*/) final {
    Complete(1, err);
  }

  // Produces records 0 to count-1 with `produce(i, handler)`, which returns the enqueue error. One not
  // enqueued (local queue full, a fatal producer state) is abandoned with the rest; records already
  // enqueued may still be delivered. `publication` may be gone on return.
  template <class Produce>
  static void ProduceAll(CountedPublication* publication, size_t count, Produce produce) {
    for (size_t i = 0; i < count; ++i) {
      if (rd_kafka_resp_err_t err = produce(i, publication); err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return publication->Complete(static_cast<int>(count - i), err);
    }
  }

 protected:
  virtual void Finish(rd_kafka_resp_err_t first_error) = 0;

 private:
  void Complete(int count, rd_kafka_resp_err_t err) {
    if (!countdown_.Report(count, err)) return;
    Finish(countdown_.first_error());
    delete this;  // NOLINT(cppcoreguidelines-owning-memory): the last report ends the publication
  }

  kafka::DeliveryCountdown countdown_;
};

}  // namespace pv::ingest
