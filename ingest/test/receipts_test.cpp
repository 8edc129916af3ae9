// The receipt endpoints' parsers and verifiers on their own: SendGrid's signed events with a key made
// here, Twilio's signature, the forms, and what each provider event becomes.
#include "pv/ingest/receipts.hpp"

#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/x509.h>
#include <rapidjson/document.h>

#include "pv/config.hpp"

namespace pv::ingest::receipts {
namespace {

struct EcKey {
  std::shared_ptr<EVP_PKEY> key;
  std::string public_base64;

  EcKey() {
    EVP_PKEY* raw = EVP_EC_gen("P-256");
    key.reset(raw, PkeyDeleter());
    unsigned char* der = nullptr;
    int n = i2d_PUBKEY(raw, &der);
    public_base64 =
        Base64Encode(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(n)));
    OPENSSL_free(der);
  }

  std::string Sign(const std::string& data) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    size_t len = 0;
    EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key.get());
    EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()), data.size());
    std::string sig(len, '\0');
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(data.data()), data.size());
    EVP_MD_CTX_free(ctx);
    sig.resize(len);
    return Base64Encode(sig);
  }
};

TEST(ReceiptSignatures, SendGridVerifiesTimestampPlusBodyWithTheConfiguredKey) {
  EcKey signer;
  std::string error;
  auto key = LoadSendGridKey(signer.public_base64, error);
  ASSERT_TRUE(key) << error;
  std::string body = R"([{"event":"delivered","email":"a@b.co"}])";
  std::string sig = signer.Sign("1764000000" + body);
  EXPECT_TRUE(VerifySendGrid(key.get(), "1764000000", body, sig));
  EXPECT_FALSE(VerifySendGrid(key.get(), "1764000001", body, sig));  // the timestamp is signed too
  EXPECT_FALSE(VerifySendGrid(key.get(), "1764000000", body + " ", sig));
  EXPECT_FALSE(VerifySendGrid(key.get(), "1764000000", body, "not base64!"));
  EXPECT_FALSE(VerifySendGrid(key.get(), "1764000000", body, ""));
  EcKey other;
  EXPECT_FALSE(VerifySendGrid(key.get(), "1764000000", body, other.Sign("1764000000" + body)));
}

TEST(ReceiptSignatures, ASendGridKeyMustBeAP256PublicKey) {
  std::string error;
  EXPECT_FALSE(LoadSendGridKey("not base64 at all!", error));
  EXPECT_FALSE(LoadSendGridKey(Base64Encode("garbage"), error));
  EXPECT_EQ(error, "not a DER SubjectPublicKeyInfo");
  EXPECT_THROW(
      ReceiptOptions::FromConfig(Config::FromYaml("receipts:\n  sendgrid:\n    sg: {public_key: abc}\n")),
      ConfigError);
  EXPECT_THROW(
      ReceiptOptions::FromConfig(Config::FromYaml("receipts:\n  twilio:\n    tw: {auth_token: t}\n")),
      ConfigError);  // public_url is required: the signature covers it
  EcKey signer;
  auto o = ReceiptOptions::FromConfig(
      Config::FromYaml("receipts:\n  sendgrid:\n    sg: {public_key: \"" + signer.public_base64 +
                       "\"}\n  twilio:\n    tw: {auth_token: t, public_url: \"https://pv.example.com/\"}\n"));
  ASSERT_EQ(o.sendgrid.size(), 1U);
  EXPECT_EQ(o.sendgrid[0].name, "sg");
  ASSERT_EQ(o.twilio.size(), 1U);
  EXPECT_EQ(o.twilio[0].public_url, "https://pv.example.com");  // the path is appended to it
}

// Twilio's documented example (https://www.twilio.com/docs/usage/security): the same token, URL and
// parameters give the same signature as theirs.
TEST(ReceiptSignatures, TwilioSignatureMatchesTwiliosDocumentedExample) {
  FormParams params = {{"CallSid", "CA1234567890ABCDE"},
                       {"Caller", "+12349013030"},
                       {"Digits", "1234"},
                       {"From", "+12349013030"},
                       {"To", "+18005551212"}};
  EXPECT_EQ(TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  // Sorted by name whatever the order they came in.
  std::swap(params[0], params[4]);
  EXPECT_EQ(TwilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
  EXPECT_NE(TwilioSignature("12346", "https://mycompany.com/myapp.php?foo=1&bar=2", params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
}

TEST(ReceiptParsing, FormsDecodePlusAndPercentAndRefuseBadOnes) {
  FormParams p;
  std::string error;
  ASSERT_TRUE(ParseForm("Body=Stop+it%21&From=%2B15551234567&&Empty=", 10, p, error)) << error;
  ASSERT_EQ(p.size(), 3U);
  EXPECT_EQ(p[0], (std::pair<std::string, std::string>{"Body", "Stop it!"}));
  EXPECT_EQ(p[1].second, "+15551234567");
  EXPECT_EQ(p[2].second, "");
  EXPECT_FALSE(ParseForm("a=%2", 10, p, error));
  EXPECT_FALSE(ParseForm("a=%zz", 10, p, error));
  EXPECT_FALSE(ParseForm("a=1&b=2&c=3", 2, p, error));
  EXPECT_NE(error.find("more than 2"), std::string::npos);
}

TEST(ReceiptParsing, SendGridEventsMapToReceiptTypesAndIgnoreTheRest) {
  ReceiptOptions o;
  Parsed p = ParseSendGridEvents(
      R"([{"event":"processed","email":"a@b.co","sg_event_id":"e0"},)"
      R"({"event":"delivered","email":"a@b.co","send_id":"s1","trigger_id":"t1","campaign_id":"44","sg_event_id":"e1","sg_message_id":"m.1","timestamp":1764000000},)"
      R"({"event":"bounce","type":"bounce","status":"5.1.1","reason":"550 unknown","email":"a@b.co","send_id":"s1","sg_event_id":"e2"},)"
      R"({"event":"bounce","type":"blocked","email":"a@b.co","send_id":"s1","sg_event_id":"e3"},)"
      R"({"event":"dropped","email":"a@b.co","send_id":"s1","sg_event_id":"e4"},)"
      R"({"event":"deferred","email":"a@b.co","send_id":"s1","sg_event_id":"e5"},)"
      R"({"event":"spamreport","email":"a@b.co","send_id":"s1","sg_event_id":"e6"},)"
      R"({"event":"group_unsubscribe","email":"a@b.co","custom_args":{"send_id":"s2"},"sg_event_id":"e7"},)"
      R"({"event":"open","email":"a@b.co","sg_event_id":"e8"}])",
      o);
  ASSERT_TRUE(p.error.empty()) << p.error;
  EXPECT_EQ(p.ignored, 2U);
  ASSERT_EQ(p.receipts.size(), 7U);
  std::vector<std::string> types;
  for (const auto& r : p.receipts) types.push_back(r.type);
  EXPECT_EQ(types, (std::vector<std::string>{"delivered", "bounced", "undelivered", "undelivered",
                                             "provider_deferred", "complained", "unsubscribed"}));
  const Receipt& d = p.receipts[0];
  EXPECT_EQ(d.receipt_id, "sendgrid:e1");
  EXPECT_EQ(d.send_id, "s1");
  EXPECT_EQ(d.trigger_id, "t1");
  EXPECT_EQ(d.campaign_id, "44");
  EXPECT_EQ(d.message_id, "m.1");
  EXPECT_EQ(d.occurred_at, "2025-11-24T16:00:00.000Z");
  EXPECT_EQ(p.receipts[1].error_code, "5.1.1");
  EXPECT_EQ(p.receipts[1].reason, "550 unknown");
  EXPECT_EQ(p.receipts[6].send_id, "s2");  // a nested custom_args object is read too

  rapidjson::Document record;
  std::string value;
  AppendReceipt(value, d, "2026-01-01T00:00:00.000Z");
  record.Parse(value.c_str());
  ASSERT_FALSE(record.HasParseError());
  EXPECT_EQ(record["v"].GetInt(), 1);
  EXPECT_STREQ(record["type"].GetString(), "delivered");
  EXPECT_STREQ(record["received_at"].GetString(), "2026-01-01T00:00:00.000Z");
  EXPECT_FALSE(record.HasMember("reason"));  // empty fields are left out
}

TEST(ReceiptParsing, MalformedOrOversizedSendGridBodiesAreRefusedWhole) {
  ReceiptOptions o;
  o.max_events = 2;
  EXPECT_FALSE(ParseSendGridEvents("{}", o).error.empty());
  EXPECT_FALSE(ParseSendGridEvents("[1]", o).error.empty());
  EXPECT_FALSE(
      ParseSendGridEvents("[{\"event\":\"delivered\"}]", o).error.empty());  // neither email nor send_id
  EXPECT_FALSE(ParseSendGridEvents("[", o).error.empty());
  EXPECT_FALSE(ParseSendGridEvents(std::string(100, '[') + std::string(100, ']'), o).error.empty());
  Parsed many = ParseSendGridEvents(R"([{"event":"open"},{"event":"open"},{"event":"open"}])", o);
  EXPECT_TRUE(many.too_many);
  // A valid event followed by a bad one publishes nothing.
  Parsed half = ParseSendGridEvents(R"([{"event":"delivered","email":"a@b.co","sg_event_id":"x"},7])", o);
  EXPECT_FALSE(half.error.empty());
  EXPECT_TRUE(half.receipts.empty());
}

TEST(ReceiptParsing, TwilioStatusesAndInboundKeywords) {
  Parsed ok =
      ParseTwilioStatus({{"MessageSid", "SM1"}, {"MessageStatus", "delivered"}, {"To", "+15551234567"}});
  ASSERT_EQ(ok.receipts.size(), 1U);
  EXPECT_EQ(ok.receipts[0].type, "delivered");
  EXPECT_EQ(ok.receipts[0].receipt_id, "twilio:SM1:delivered");
  EXPECT_EQ(ok.receipts[0].message_id, "SM1");
  EXPECT_EQ(ParseTwilioStatus({{"MessageSid", "SM1"}, {"MessageStatus", "failed"}, {"ErrorCode", "30005"}})
                .receipts[0]
                .type,
            "bounced");
  EXPECT_EQ(
      ParseTwilioStatus({{"MessageSid", "SM1"}, {"MessageStatus", "undelivered"}, {"ErrorCode", "30003"}})
          .receipts[0]
          .type,
      "undelivered");
  EXPECT_EQ(ParseTwilioStatus({{"MessageSid", "SM1"}, {"MessageStatus", "sent"}}).ignored, 1U);
  EXPECT_FALSE(ParseTwilioStatus({{"MessageStatus", "sent"}}).error.empty());

  for (const char* stop : {"STOP", " stop ", "Unsubscribe", "quit"}) {
    Parsed p = ParseTwilioInbound({{"MessageSid", "SM9"}, {"From", "+15551234567"}, {"Body", stop}});
    ASSERT_EQ(p.receipts.size(), 1U) << stop;
    EXPECT_EQ(p.receipts[0].type, "stop");
    EXPECT_EQ(p.receipts[0].address, "+15551234567");
  }
  EXPECT_EQ(
      ParseTwilioInbound({{"MessageSid", "SM9"}, {"From", "+1555"}, {"Body", "Start"}}).receipts[0].type,
      "start");
  EXPECT_EQ(ParseTwilioInbound({{"MessageSid", "SM9"}, {"From", "+1555"}, {"Body", "please stop"}}).ignored,
            1U);
  EXPECT_FALSE(ParseTwilioInbound({{"From", "+1555"}, {"Body", "STOP"}}).error.empty());
}

TEST(ReceiptParsing, Base64RoundTripsAndRefusesOtherCharacters) {
  for (const std::string& s :
       std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_FALSE(Base64Decode("ab$d"));
  EXPECT_FALSE(Base64Decode("a"));
}

}  // namespace
}  // namespace pv::ingest::receipts
