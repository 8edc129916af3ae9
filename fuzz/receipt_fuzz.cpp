// A provider webhook body as it arrives on the receipt endpoints (ingest/src/receipts.cpp): the first
// byte chooses SendGrid's JSON array of events or a Twilio form (status callback and inbound message),
// the rest is the body. Each receipt found must encode into a pv.receipts record that parses back and
// that the dispatcher's feedback pipeline reads (ParseReceipt), and its decision must not crash.
#include <rapidjson/document.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "pv/dispatcher/feedback.hpp"
#include "pv/ingest/receipts.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  namespace r = pv::ingest::receipts;
  r::Parsed parsed;
  if (data[0] % 2 == 0) {
    r::ReceiptOptions options;
    options.max_events = 1000;
    parsed = r::ParseSendGridEvents(body, options);
  } else {
    r::FormParams params;
    std::string error;
    if (!r::ParseForm(body, 200, params, error)) return 0;
    (void)r::TwilioSignature("token", "https://pv.example.com/api/providers/twilio/status", params);
    parsed = data[0] % 4 == 1 ? r::ParseTwilioStatus(params) : r::ParseTwilioInbound(params);
  }
  if (!parsed.error.empty() && !parsed.receipts.empty()) abort();  // all or nothing
  for (auto& receipt : parsed.receipts) {
    receipt.provider = "fuzz";
    std::string record;
    pv::AppendReceipt(record, receipt, "2026-12-02T07:50:10.000Z");
    pv::ReceiptRecord back;
    std::string error;
    if (!pv::ParseReceipt(record, back, error)) abort();
    if (back.receipt_id != receipt.receipt_id || back.type != receipt.type) abort();
    (void)pv::dispatcher::DecideReceipt(back, pv::dispatcher::SendOfReceipt(back, std::nullopt),
                                        pv::dispatcher::SuppressionReasons{},
                                        std::chrono::system_clock::time_point{});
  }
  return 0;
}
