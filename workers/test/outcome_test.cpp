// The worker's outcome table (pv/workers/outcome.hpp, docs/configuration-workers.md "What happens to a
// send", 4): one test per row, named after it, then the cases inside the rows (why a send is dead, the
// pinned provider, a record that is not a send, a retry that became the dead letter).
#include "pv/workers/outcome.hpp"

#include <gtest/gtest.h>
#include <rapidjson/document.h>

#include <map>

#include "pv/delay_ladder.hpp"
#include "pv/json.hpp"

namespace pv::workers {
namespace {

using namespace std::chrono_literals;

constexpr const char* kSend =
    R"({"v":1,"send_id":"s-1","trigger_id":"t-1","project":"demo","campaign_id":"44","channel":"email",)"
    R"("provider":"smtp","fallback_provider":"log","attempt":3,"created_at":"2026-01-01T00:00:00Z",)"
    R"("to":{"email":"ana@example.com","external_id":"u-1"},)"
    R"("content":{"from":"a@b.co","subject":"Hi","text":"t","html":"<p>h</p>"}})";

const auto kNow = *ParseTimestamp("2026-12-02T10:00:00Z");

class OutcomeTest : public ::testing::Test {
 protected:
  OutcomeTest() : planner_(Channel::kEmail, 5, BackoffPolicy{1000ms, 60000ms, 0.0}) {
    std::string error;
    attempt_.send = ParseSend(kSend, "u-1", Channel::kEmail, error);
    EXPECT_TRUE(attempt_.send) << error;
    attempt_.attempt = attempt_.send->attempt;
    attempt_.provider_name = "smtp";
  }

  static std::map<std::string, std::string> Headers(const OutcomeRecord& r) {
    return {r.headers.begin(), r.headers.end()};
  }
  // The outcome's pv.events record, parsed.
  static rapidjson::Document EventOf(const Outcome& out) {
    rapidjson::Document doc;
    for (const OutcomeRecord& r : out.records) {
      if (r.topic == "pv.events") doc.Parse(r.value.c_str());
    }
    return doc;
  }
  static std::string Str(const rapidjson::Document& d, const char* name) {
    return d.IsObject() && d.HasMember(name) && d[name].IsString() ? d[name].GetString() : "<none>";
  }

  OutcomePlanner planner_;
  SendAttempt attempt_;
  Outcome out_;
  std::mt19937_64 rng_{42};
};

TEST_F(OutcomeTest, Sent) {
  attempt_.claimed = true;
  planner_.Sent(attempt_, "msg-9", kNow, out_);
  EXPECT_STREQ(out_.status, "sent");
  EXPECT_EQ(out_.settle, Settle::kMarkSent);
  ASSERT_EQ(out_.records.size(), 1u);
  EXPECT_FALSE(out_.records[0].ladder);
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "sent");
  EXPECT_EQ(Str(event, "send_id"), "s-1");
  EXPECT_EQ(Str(event, "provider"), "smtp");
  EXPECT_EQ(Str(event, "provider_message_id"), "msg-9");
  EXPECT_EQ(event["attempt"].GetInt(), 3);
}

TEST_F(OutcomeTest, Deduped) {
  planner_.Deduped(attempt_, "msg-earlier", kNow, out_);
  EXPECT_STREQ(out_.status, "deduped");
  EXPECT_EQ(out_.settle, Settle::kNone);  // no claim was taken: Redis already says sent
  ASSERT_EQ(out_.records.size(), 1u);
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "deduped");
  EXPECT_EQ(Str(event, "provider_message_id"), "msg-earlier");
}

TEST_F(OutcomeTest, Retrying) {
  attempt_.claimed = true;
  planner_.Failed(attempt_, ErrorKind::kServerError, "503 busy", 7000ms, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "retrying");
  EXPECT_EQ(out_.settle, Settle::kRelease);
  ASSERT_EQ(out_.records.size(), 2u);
  const OutcomeRecord& again = out_.records[0];
  EXPECT_TRUE(again.ladder);
  EXPECT_EQ(again.value, kSend);  // the original value
  EXPECT_EQ(again.next_attempt, 4);
  // 1 s × 2^(3-1) = 4 s, no jitter, but never shorter than the provider's Retry-After.
  EXPECT_EQ(again.due, kNow + 7000ms);
  EXPECT_EQ(Headers(again), (std::map<std::string, std::string>{{ladder::kProvider, "smtp"},
                                                                {ladder::kErrorCode, "server_error"},
                                                                {ladder::kError, "503 busy"}}));
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "retrying");
  EXPECT_EQ(Str(event, "error_code"), "server_error");
  EXPECT_EQ(Str(event, "error"), "503 busy");
}

TEST_F(OutcomeTest, Deferred) {
  planner_.Deferred(attempt_, 90000ms, kNow, out_);
  EXPECT_STREQ(out_.status, "deferred");
  EXPECT_EQ(out_.settle, Settle::kNone);  // a rate-limited claim is not taken
  ASSERT_EQ(out_.records.size(), 2u);
  const OutcomeRecord& again = out_.records[0];
  EXPECT_TRUE(again.ladder);
  EXPECT_EQ(again.value, kSend);
  EXPECT_EQ(again.next_attempt, 3);  // the same attempt
  EXPECT_EQ(again.due, kNow + 90000ms);
  EXPECT_EQ(Headers(again), (std::map<std::string, std::string>{{ladder::kProvider, "smtp"},
                                                                {ladder::kErrorCode, "rate_limited"}}));
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "deferred");
  EXPECT_EQ(Str(event, "error_code"), "rate_limited");
  EXPECT_EQ(Str(event, "error"), "provider rate limit: next slot in 90000 ms");
}

TEST_F(OutcomeTest, Dead) {
  attempt_.claimed = true;
  planner_.Failed(attempt_, ErrorKind::kInvalidRecipient, "550 no such user", std::nullopt, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "dead");
  EXPECT_EQ(out_.settle, Settle::kRelease);
  ASSERT_EQ(out_.records.size(), 2u);
  const OutcomeRecord& dlq = out_.records[0];
  EXPECT_FALSE(dlq.ladder);
  EXPECT_EQ(dlq.topic, "pv.dlq.email");
  EXPECT_EQ(dlq.value, kSend);
  EXPECT_EQ(Headers(dlq), (std::map<std::string, std::string>{{ladder::kErrorCode, "invalid_recipient"},
                                                              {ladder::kError, "550 no such user"},
                                                              {ladder::kAttempt, "3"},
                                                              {ladder::kProvider, "smtp"},
                                                              {ladder::kFailedAt, FormatTimestamp(kNow)}}));
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "dead");
  EXPECT_EQ(Str(event, "error_code"), "invalid_recipient");
}

TEST_F(OutcomeTest, DeadWhenTheAttemptAtMaxAttemptsFailsTransiently) {
  attempt_.attempt = 4;
  planner_.Failed(attempt_, ErrorKind::kTimeout, "t", std::nullopt, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "retrying");
  attempt_.attempt = 5;  // max_attempts
  planner_.Failed(attempt_, ErrorKind::kTimeout, "t", std::nullopt, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "dead");
  ASSERT_EQ(out_.records.size(), 2u);  // the earlier outcome's records are replaced, not appended to
  EXPECT_EQ(out_.records[0].topic, "pv.dlq.email");
  EXPECT_EQ(Headers(out_.records[0])[ladder::kAttempt], "5");
}

TEST_F(OutcomeTest, DeadForAnUnregisteredDeviceToken) {
  planner_.Failed(attempt_, ErrorKind::kUnregistered, "410", std::nullopt, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "dead");
  EXPECT_EQ(out_.settle, Settle::kNone);  // held no claim
  EXPECT_EQ(Str(EventOf(out_), "error_code"), "unregistered");
}

TEST_F(OutcomeTest, RetryingForAProviderNotConfiguredOrAClaimHeldElsewhere) {
  planner_.Failed(attempt_, ErrorKind::kNotConfigured, "provider 'x' is not configured", std::nullopt, kNow,
                  rng_, out_);
  EXPECT_STREQ(out_.status, "retrying");
  planner_.Failed(attempt_, ErrorKind::kInFlightElsewhere, "claimed by w-2", std::nullopt, kNow, rng_, out_);
  EXPECT_STREQ(out_.status, "retrying");
  EXPECT_EQ(Headers(out_.records[0])[ladder::kErrorCode], "in_flight_elsewhere");
}

TEST_F(OutcomeTest, UnknownOutcomePinsTheProviderOnEveryLaterRecord) {
  planner_.Failed(attempt_, ErrorKind::kUnknownOutcome, "timeout after the request", std::nullopt, kNow, rng_,
                  out_);
  EXPECT_EQ(attempt_.pinned_provider, "smtp");
  EXPECT_EQ(Headers(out_.records[0])[ladder::kPinnedProvider], "smtp");
  // A pin stays on what follows: a deferral, and the dead letter.
  planner_.Deferred(attempt_, 5000ms, kNow, out_);
  EXPECT_EQ(Headers(out_.records[0])[ladder::kPinnedProvider], "smtp");
  planner_.Failed(attempt_, ErrorKind::kBadRequest, "400", std::nullopt, kNow, rng_, out_);
  EXPECT_EQ(Headers(out_.records[0])[ladder::kPinnedProvider], "smtp");
  // Not pinned otherwise.
  SendAttempt other = attempt_;
  other.pinned_provider.clear();
  planner_.Failed(other, ErrorKind::kConnection, "refused", std::nullopt, kNow, rng_, out_);
  EXPECT_EQ(other.pinned_provider, "");
  EXPECT_EQ(Headers(out_.records[0]).count(ladder::kPinnedProvider), 0u);
}

TEST_F(OutcomeTest, DeadLetterOfARecordThatIsNotASend) {
  SendAttempt invalid;
  invalid.value = "not json";
  planner_.Failed(invalid, ErrorKind::kInvalidRecord, "value is not a JSON object", std::nullopt, kNow, rng_,
                  out_);
  EXPECT_STREQ(out_.status, "dead");
  ASSERT_EQ(out_.records.size(), 1u);  // no send_id: no event
  EXPECT_EQ(out_.records[0].topic, "pv.dlq.email");
  EXPECT_EQ(out_.records[0].value, "not json");
  // With a send_id (an email on the sms topic, say): the value and a `dead` event.
  attempt_.provider_name.clear();
  planner_.Failed(attempt_, ErrorKind::kInvalidRecord, "wrong channel", std::nullopt, kNow, rng_, out_);
  ASSERT_EQ(out_.records.size(), 2u);
  EXPECT_EQ(out_.records[0].value, kSend);
  EXPECT_EQ(Str(EventOf(out_), "status"), "dead");
}

TEST_F(OutcomeTest, RetryThatBecameTheDeadLetterMakesTheOutcomeDead) {
  planner_.Failed(attempt_, ErrorKind::kServerError, "503", std::nullopt, kNow, rng_, out_);
  EXPECT_FALSE(planner_.RetryBecameDead(attempt_, out_, kNow));  // still a retry
  OutcomeRecord& again = out_.records[0];
  again.ladder = false;  // as outcome_records.hpp turns it
  again.topic = planner_.dead_letter_topic();
  again.headers = {{ladder::kErrorCode, "retry_too_large"}, {ladder::kError, "too big"}};
  EXPECT_EQ(planner_.RetryBecameDead(attempt_, out_, kNow), &out_.records[0]);
  EXPECT_STREQ(out_.status, "dead");
  auto event = EventOf(out_);
  EXPECT_EQ(Str(event, "status"), "dead");
  EXPECT_EQ(Str(event, "error_code"), "retry_too_large");
  EXPECT_EQ(Str(event, "error"), "too big");
  EXPECT_FALSE(planner_.RetryBecameDead(attempt_, out_, kNow));  // once
}

}  // namespace
}  // namespace pv::workers
