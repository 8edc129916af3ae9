// Each provider against a local server that speaks its protocol: a real SMTP server (aiosmtpd) that
// parses the MIME message with Python's email package, and HTTP fakes of SendGrid, Twilio, Google
// OAuth2 + FCM and APNs (HTTP/2) that check method, path, authentication (JWT signatures included)
// and body, and answer success or the service's errors on demand.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>
#include <tuple>

#include "pv/config.hpp"
#include "pv/json.hpp"
#include "pv/log.hpp"
#include "pv/testing/fakes.hpp"
#include "pv/testing/http.hpp"
#include "pv/testing/records.hpp"
#include "pv/workers/curl_loop.hpp"
#include "pv/workers/providers/apns_provider.hpp"
#include "pv/workers/providers/fcm_provider.hpp"
#include "pv/workers/providers/sendgrid_provider.hpp"
#include "pv/workers/providers/smtp_provider.hpp"
#include "pv/workers/providers/twilio_provider.hpp"

namespace pv::workers::providers {
namespace {

using pv::testing::ProviderFake;
using pv::testing::SendSpec;
using pv::testing::SmtpFake;
using pv::testing::TempDir;
using pv::testing::TestKeys;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::shared_ptr<const Send> MakeSend(SendSpec spec, const std::string& value_override = "") {
  std::string value = value_override.empty() ? pv::testing::SendValue(spec) : value_override;
  std::string error;
  auto send = ParseSend(value, spec.external_id, spec.channel, error);
  if (!send) throw std::runtime_error("bad test send: " + error);
  return send;
}

DeliveryResult DeliverNow(Provider& provider, const std::shared_ptr<const Send>& send) {
  auto promise = std::make_shared<std::promise<DeliveryResult>>();
  auto future = promise->get_future();
  provider.Deliver(send, [promise](DeliveryResult r) { promise->set_value(std::move(r)); });
  if (future.wait_for(30s) != std::future_status::ready) throw std::runtime_error("no answer within 30 s");
  return future.get();
}

std::vector<DeliveryResult> DeliverAll(Provider& provider,
                                       const std::vector<std::shared_ptr<const Send>>& sends) {
  std::vector<std::future<DeliveryResult>> futures;
  for (const auto& s : sends) {
    auto promise = std::make_shared<std::promise<DeliveryResult>>();
    futures.push_back(promise->get_future());
    provider.Deliver(s, [promise](DeliveryResult r) { promise->set_value(std::move(r)); });
  }
  std::vector<DeliveryResult> out;
  for (auto& f : futures) {
    if (f.wait_for(30s) != std::future_status::ready) throw std::runtime_error("no answer within 30 s");
    out.push_back(f.get());
  }
  return out;
}

std::string Str(const rapidjson::Value& v, const char* name) {
  return v.HasMember(name) && v[name].IsString() ? v[name].GetString() : "";
}

std::string HeaderOf(const rapidjson::Value& request, const char* name) {
  return request.HasMember("headers") ? Str(request["headers"], name) : "";
}

class ProviderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pv::log::SetLevel(pv::log::Level::kWarn); }
  void TearDown() override { loop_.Stop(); }
  CurlLoop loop_;
  TempDir dir_{"pv-provider-test"};
};

// ---- SMTP ----

SmtpSettings Smtp(int port, SmtpSettings::Tls tls = SmtpSettings::Tls::kNone,
                  const std::string& scheme = "smtp") {
  SmtpSettings s;
  s.common.name = "smtp";
  s.common.type = "smtp";
  s.common.base_url = scheme + "://127.0.0.1:" + std::to_string(port);
  s.common.timeout = 10s;
  s.tls = tls;
  return s;
}

constexpr const char* kUtf8Email =
    R"({"v":1,"send_id":"0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6","trigger_id":"t-1","project":"demo",)"
    R"("campaign_id":"44","channel":"email","provider":"smtp","attempt":1,"created_at":"2026-01-01T00:00:00Z",)"
    R"("to":{"email":"ana@example.com","external_id":"user-1"},)"
    R"("content":{"from":"Tienda Ñandú <orders@demo.example>","reply_to":"support@demo.example",)"
    R"("subject":"¡Hola Ana! Tu pedido A-17 va en camino 🚚 y llegará pronto, muy pronto, de verdad",)"
    R"("text":"Hola Ana,\n.una línea que empieza con punto\n)"
    R"(Esta línea es bastante larga para que quoted-printable tenga que partirla en varias líneas de 76 caracteres como máximo.\n= fin",)"
    R"("html":"<p>Hola <b>Ana</b> — ¿qué tal?</p>"}})";

TEST_F(ProviderTest, SmtpDeliversAMultipartMessageThatAMimeParserReadsBack) {
  SmtpFake server({});
  SmtpSettings settings = Smtp(server.port());
  settings.list_unsubscribe =
      "<mailto:unsubscribe@demo.example?subject={send_id}>, <https://demo.example/u/{send_id}>";
  settings.list_unsubscribe_one_click = true;
  SmtpProvider provider(settings, loop_);
  auto send = MakeSend({}, kUtf8Email);
  DeliveryResult r = DeliverNow(provider, send);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider_message_id, "<0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6@demo.example>");

  auto messages = server.Messages();
  ASSERT_EQ(messages.size(), 1U);
  const auto& m = messages[0];
  EXPECT_EQ(Str(m, "mail_from"), "orders@demo.example");
  ASSERT_EQ(m["rcpt_tos"].Size(), 1U);
  EXPECT_STREQ(m["rcpt_tos"][0].GetString(), "ana@example.com");
  const auto& h = m["headers"];
  EXPECT_EQ(Str(h, "From"), "Tienda Ñandú <orders@demo.example>");
  EXPECT_EQ(Str(h, "To"), "ana@example.com");
  EXPECT_EQ(Str(h, "Reply-To"), "support@demo.example");
  EXPECT_EQ(Str(h, "Subject"),
            "¡Hola Ana! Tu pedido A-17 va en camino 🚚 y llegará pronto, muy pronto, de verdad");
  EXPECT_EQ(Str(h, "Message-ID"), "<0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6@demo.example>");
  EXPECT_FALSE(Str(h, "Date").empty());
  EXPECT_EQ(Str(h, "MIME-Version"), "1.0");
  EXPECT_EQ(Str(h, "List-Unsubscribe"),
            "<mailto:unsubscribe@demo.example?subject=0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6>, "
            "<https://demo.example/u/0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f6>");
  EXPECT_EQ(Str(h, "List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
  EXPECT_EQ(Str(m, "content_type"), "multipart/alternative");
  ASSERT_EQ(m["parts"].Size(), 2U);
  const auto& text = m["parts"][0];
  const auto& html = m["parts"][1];
  EXPECT_EQ(Str(text, "content_type"), "text/plain");
  EXPECT_EQ(Str(text, "charset"), "utf-8");
  EXPECT_EQ(Str(text, "transfer_encoding"), "quoted-printable");
  EXPECT_EQ(Str(text, "text"), std::string(send->ContentString("text")));
  EXPECT_EQ(Str(html, "content_type"), "text/html");
  EXPECT_EQ(Str(html, "text"), std::string(send->ContentString("html")));
  // Lines of the wire form: CRLF-terminated, within 78 characters (RFC 5322 2.1.1) except where one
  // token is longer (the List-Unsubscribe URIs), never beyond 998.
  std::string raw = Str(m, "raw");
  size_t start = 0;
  while (start < raw.size()) {
    size_t end = raw.find('\n', start);
    if (end == std::string::npos) end = raw.size();
    std::string line = raw.substr(start, end - start);
    EXPECT_TRUE(line.empty() || line.back() == '\r') << line;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    bool one_token = line.find(' ', 1) == std::string::npos || line.rfind("List-Unsubscribe:", 0) == 0;
    EXPECT_LE(line.size(), one_token ? 998U : 78U) << line;
    start = end + 1;
  }
}

// The envelope is built from the rendered `from` (event data may reach it) and the record's address:
// a CR/LF there would end MAIL FROM / RCPT TO and let the rest be read as commands of their own (here
// an extra recipient). Such a send is refused before libcurl sees it, and nothing reaches the server.
TEST_F(ProviderTest, SmtpRefusesLineBreaksInTheEnvelope) {
  SmtpFake server({});
  SmtpProvider provider(Smtp(server.port()), loop_);
  std::string injected_from =
      R"({"v":1,"send_id":"0190f1c2-7a3b-8c4d-9e5f-a1b2c3d4e5f7","trigger_id":"t-1","project":"demo",)"
      R"("campaign_id":"44","channel":"email","provider":"smtp","attempt":1,"created_at":"2026-01-01T00:00:00Z",)"
      R"("to":{"email":"ana@example.com","external_id":"user-1"},)"
      R"("content":{"from":"orders@demo.example>\r\nRCPT TO:<victim@evil.example",)"
      R"("subject":"s","text":"hello"}})";
  DeliveryResult r = DeliverNow(provider, MakeSend({}, injected_from));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kInvalidRecord) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kPermanent);
  EXPECT_THAT(r.error, HasSubstr("from address contains a line break"));

  SendSpec spec;
  spec.address = "ana@example.com\nRCPT TO:<victim@evil.example>";
  r = DeliverNow(provider, MakeSend(spec));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kInvalidRecipient) << r.error;
  EXPECT_THAT(r.error, HasSubstr("RCPT TO"));
  EXPECT_TRUE(server.Messages().empty());

  // The same server takes a clean send: the refusals above were not the server's doing.
  r = DeliverNow(provider, MakeSend({}));
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(server.Messages().size(), 1U);

  EXPECT_EQ(EnvelopeAddressError("orders@demo.example"), "");
  EXPECT_THAT(EnvelopeAddressError("a@b.co\r"), HasSubstr("line break"));
  EXPECT_THAT(EnvelopeAddressError(std::string("a@b.co\0x", 8)), HasSubstr("0x00"));
  EXPECT_THAT(EnvelopeAddressError("a@b.co\x7f"), HasSubstr("0x7f"));
  EXPECT_THAT(EnvelopeAddressError("a>@b.co"), HasSubstr("'<' or '>'"));
}

TEST_F(ProviderTest, SmtpStartTlsWithAuth) {
  const auto& keys = TestKeys::Get();
  pv::testing::WriteFile(dir_.File("cert.pem"), keys.cert_pem);
  pv::testing::WriteFile(dir_.File("key.pem"), keys.cert_key_pem);
  SmtpFake server({"--tls", "starttls", "--cert", dir_.File("cert.pem"), "--key", dir_.File("key.pem"),
                   "--auth", "mailer:s3cret"});
  SmtpSettings settings = Smtp(server.port(), SmtpSettings::Tls::kStartTls);
  settings.common.tls.ca_file = dir_.File("cert.pem");
  settings.username = "mailer";
  settings.password = "s3cret";
  SmtpProvider provider(settings, loop_);
  DeliveryResult r = DeliverNow(provider, MakeSend({}));
  ASSERT_TRUE(r.ok) << r.error;
  auto messages = server.Messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_TRUE(messages[0]["tls"].GetBool());
  EXPECT_EQ(Str(messages[0], "auth_user"), "mailer");

  settings.password = "wrong";
  SmtpProvider wrong(settings, loop_);
  r = DeliverNow(wrong, MakeSend({}));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kConfiguration);

  // Without the certificate in the trust store the handshake must fail: nothing goes out in clear.
  // (A loop of its own: the first loop keeps the verified connection alive and would reuse it.)
  settings.password = "s3cret";
  settings.common.tls.ca_file = dir_.File("key.pem");
  CurlLoop fresh;
  SmtpProvider untrusted(settings, fresh);
  r = DeliverNow(untrusted, MakeSend({}));
  fresh.Stop();
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(server.Messages().size(), 1U);
}

TEST_F(ProviderTest, SmtpImplicitTls) {
  const auto& keys = TestKeys::Get();
  pv::testing::WriteFile(dir_.File("cert.pem"), keys.cert_pem);
  pv::testing::WriteFile(dir_.File("key.pem"), keys.cert_key_pem);
  SmtpFake server({"--tls", "implicit", "--cert", dir_.File("cert.pem"), "--key", dir_.File("key.pem")});
  SmtpSettings settings = Smtp(server.port(), SmtpSettings::Tls::kImplicit, "smtps");
  settings.common.tls.ca_file = dir_.File("cert.pem");
  SmtpProvider provider(settings, loop_);
  DeliveryResult r = DeliverNow(provider, MakeSend({}));
  ASSERT_TRUE(r.ok) << r.error;
  auto messages = server.Messages();
  ASSERT_EQ(messages.size(), 1U);
  EXPECT_TRUE(messages[0]["tls"].GetBool());
}

TEST_F(ProviderTest, SmtpRepliesDecideTheErrorClass) {
  SmtpFake server({"--reject-rcpt", "nobody@", "--temp-fail", "1"});
  SmtpProvider provider(Smtp(server.port()), loop_);
  SendSpec spec;
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));  // the first DATA gets 451
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kTemporaryRejection) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kTransient);
  spec.address = "nobody@example.com";
  r = DeliverNow(provider, MakeSend(spec));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kInvalidRecipient) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kPermanent);
  EXPECT_THAT(r.error, HasSubstr("550"));
  spec.address = "ana@example.com";
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_TRUE(r.ok) << r.error;

  // STARTTLS demanded from a server that offers none: configuration, and nothing sent in clear.
  // (A fresh loop: libcurl would reuse the plain connection the provider above left open.)
  CurlLoop fresh;
  SmtpProvider needs_tls(Smtp(server.port(), SmtpSettings::Tls::kStartTls), fresh);
  r = DeliverNow(needs_tls, MakeSend(spec));
  fresh.Stop();
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kNotConfigured) << r.error;
  EXPECT_EQ(server.Messages().size(), 1U);

  // Nobody listening: a connection error, transient.
  SmtpProvider nowhere(Smtp(pv::testing::FreePort()), loop_);
  r = DeliverNow(nowhere, MakeSend(spec));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kConnection) << r.error;
}

// ---- SendGrid ----

SendGridSettings SendGrid(const std::string& url) {
  SendGridSettings s;
  s.common.name = "sendgrid";
  s.common.base_url = url;
  s.common.timeout = 5s;
  s.api_key = "SG.test-key";
  s.list_unsubscribe = "<https://demo.example/u/{send_id}>";
  return s;
}

TEST_F(ProviderTest, SendGridSendsTheV3RequestAndReadsTheMessageId) {
  ProviderFake fake({"--sendgrid-key", "SG.test-key"});
  SendGridProvider provider(SendGrid(fake.url()), loop_);
  std::string send_id;
  auto send = MakeSend({}, pv::testing::SendValue({}, &send_id));
  DeliveryResult r = DeliverNow(provider, send);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_FALSE(r.provider_message_id.empty());
  auto requests = fake.Requests();
  ASSERT_EQ(requests.Size(), 1U);
  const auto& req = requests[0];
  EXPECT_EQ(Str(req, "method"), "POST");
  EXPECT_EQ(Str(req, "path"), "/v3/mail/send");
  EXPECT_EQ(HeaderOf(req, "authorization"), "Bearer SG.test-key");
  EXPECT_EQ(HeaderOf(req, "idempotency-key"), send_id);
  EXPECT_EQ(Str(req, "problem"), "");
  auto body = pv::testing::ParseJson(Str(req, "body"));
  EXPECT_STREQ(body["personalizations"][0]["to"][0]["email"].GetString(), "ana@example.com");
  EXPECT_EQ(Str(body["personalizations"][0]["custom_args"], "send_id"), send_id);
  EXPECT_STREQ(body["from"]["email"].GetString(), "orders@demo.example");
  EXPECT_STREQ(body["from"]["name"].GetString(), "Demo Shop");
  EXPECT_STREQ(body["reply_to"]["email"].GetString(), "support@demo.example");
  EXPECT_STREQ(body["content"][0]["type"].GetString(), "text/plain");
  EXPECT_STREQ(body["content"][1]["type"].GetString(), "text/html");
  EXPECT_EQ(Str(body["headers"], "List-Unsubscribe"), "<https://demo.example/u/" + send_id + ">");
}

// The subject, text and html go into the body as the record escaped them (Send::AppendString): what
// SendGrid decodes is what the worker decoded, escapes, quotes and non-ASCII text included.
TEST_F(ProviderTest, SendGridBodyCarriesTheContentAsTheSendDecodesIt) {
  std::string value = kUtf8Email;
  value.replace(value.find("<b>Ana</b>"), 10, R"(<a href=\"https://demo.example/?a=1\u0026b=\/2\">Ana</a>)");
  auto send = MakeSend({}, value);
  auto body = pv::testing::ParseJson(SendGridBody(*send, ""));
  EXPECT_EQ(Str(body, "subject"), send->ContentString("subject"));
  ASSERT_EQ(body["content"].Size(), 2U);
  EXPECT_EQ(Str(body["content"][0], "value"), send->ContentString("text"));
  EXPECT_EQ(Str(body["content"][1], "value"), send->ContentString("html"));
  EXPECT_EQ(Str(body["content"][1], "value"),
            "<p>Hola <a href=\"https://demo.example/?a=1&b=/2\">Ana</a> — ¿qué tal?</p>");
  EXPECT_EQ(Str(body["from"], "name"), "Tienda Ñandú");
}

TEST_F(ProviderTest, SendGridErrorsAreClassified) {
  ProviderFake fake({"--sendgrid-key", "SG.test-key"});
  SendGridSettings settings = SendGrid(fake.url());
  settings.api_key = "SG.revoked";
  SendGridProvider bad_key(settings, loop_);
  DeliveryResult r = DeliverNow(bad_key, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;

  SendGridProvider provider(SendGrid(fake.url()), loop_);
  SendSpec spec;
  spec.address = "not-an-address";
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kInvalidRecipient) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kPermanent);

  fake.Script(R"({"rules":[{"status":429,"body":{"errors":[{"message":"too many"}]},)"
              R"("headers":{"Retry-After":"7"},"times":1},{"status":503,"times":1}]})");
  r = DeliverNow(provider, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kRateLimited) << r.error;
  ASSERT_TRUE(r.retry_after.has_value());
  EXPECT_EQ(r.retry_after->count(), 7000);
  r = DeliverNow(provider, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kServerError) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kTransient);

  fake.Script(R"({"delay_ms":2000})");
  settings = SendGrid(fake.url());
  settings.common.timeout = 300ms;
  SendGridProvider slow(settings, loop_);
  r = DeliverNow(slow, MakeSend({}));
  // The fake took the request (and accepted it) before the timeout: the outcome is unknown.
  EXPECT_EQ(r.kind, ErrorKind::kUnknownOutcome) << r.error;
  EXPECT_EQ(fake.Stat("accepted"), 1);
}

// A TCP listener that, per connection, reads one HTTP request whole (head and Content-Length body)
// and then either closes without a word or, with `accept_connections` false, is never accepted.
class DroppingServer {
 public:
  explicit DroppingServer(bool accept_connections) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 16) != 0)
      throw std::runtime_error("DroppingServer: bind/listen failed");
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (accept_connections) thread_ = std::thread([this] { Serve(); });
  }
  ~DroppingServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string in;
      char buf[4096];
      auto deadline = std::chrono::steady_clock::now() + 5s;
      while (std::chrono::steady_clock::now() < deadline) {
        pollfd q{c, POLLIN, 0};
        if (::poll(&q, 1, 100) <= 0) continue;
        ssize_t n = ::recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        auto head_end = in.find("\r\n\r\n");
        if (head_end == std::string::npos) continue;
        std::string lower = in.substr(0, head_end);
        std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
        size_t length = 0;
        if (auto cl = lower.find("content-length:"); cl != std::string::npos)
          length = std::stoul(lower.substr(cl + 15));
        if (in.size() >= head_end + 4 + length) {
          ++requests_;
          break;
        }
      }
      ::close(c);  // no answer: as a provider process dying after it took the request
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

TEST_F(ProviderTest, AnOutcomeIsUnknownOnlyOnceTheWholeRequestWasSent) {
  SendGridSettings settings = SendGrid("http://127.0.0.1:1");
  settings.common.timeout = 500ms;
  settings.common.connect_timeout = 500ms;

  // The request was read whole, then the connection closed without an answer.
  DroppingServer dropping(true);
  settings.common.base_url = "http://127.0.0.1:" + std::to_string(dropping.port());
  SendGridProvider dropped(settings, loop_);
  DeliveryResult r = DeliverNow(dropped, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kUnknownOutcome) << r.error;
  EXPECT_GE(dropping.requests(), 1);

  // Nothing listening: the provider cannot have it.
  settings.common.base_url = "http://127.0.0.1:" + std::to_string(pv::testing::FreePort());
  SendGridProvider refused(settings, loop_);
  r = DeliverNow(refused, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kConnection) << r.error;

  // Connected (the kernel's backlog), but the TLS handshake never answered: timed out before any
  // request byte could be read, so a timeout that proves nothing was accepted.
  DroppingServer silent(false);
  settings.common.base_url = "https://127.0.0.1:" + std::to_string(silent.port());
  SendGridProvider stalled(settings, loop_);
  r = DeliverNow(stalled, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kTimeout) << r.error;

  // A gateway timeout: the service behind it may have acted.
  ProviderFake fake({"--sendgrid-key", "SG.test-key"});
  fake.Script(R"({"rules":[{"status":504,"times":1}]})");
  SendGridProvider gateway(SendGrid(fake.url()), loop_);
  r = DeliverNow(gateway, MakeSend({}));
  EXPECT_EQ(r.kind, ErrorKind::kUnknownOutcome) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kTransient);
}

// ---- Twilio ----

TwilioSettings Twilio(const std::string& url) {
  TwilioSettings s;
  s.common.name = "twilio";
  s.common.base_url = url;
  s.common.timeout = 5s;
  s.account_sid = "AC0123456789abcdef";
  s.auth_token = "tw-token";
  s.from = "+15005550006";
  return s;
}

TEST_F(ProviderTest, TwilioPostsAFormWithBasicAuthAndReadsTheSid) {
  ProviderFake fake({"--twilio-sid", "AC0123456789abcdef", "--twilio-token", "tw-token"});
  TwilioProvider provider(Twilio(fake.url()), loop_);
  SendSpec spec;
  spec.channel = Channel::kSms;
  std::string send_id;
  auto send = MakeSend(spec, pv::testing::SendValue(spec, &send_id));
  DeliveryResult r = DeliverNow(provider, send);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.provider_message_id.rfind("SM", 0), 0U) << r.provider_message_id;
  auto requests = fake.Requests();
  ASSERT_EQ(requests.Size(), 1U);
  EXPECT_EQ(Str(requests[0], "path"), "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json");
  EXPECT_EQ(Str(requests[0], "body"),
            "To=%2B34600111222&From=%2B15005550006&Body=123456+is+your+Demo+verification+code.");
  EXPECT_EQ(HeaderOf(requests[0], "idempotency-key"), send_id);
  EXPECT_EQ(provider.Cost(*send), 1);
}

// Transfers reuse their easy handles, and an HTTP request with its handle's last options sets only
// URL, body and headers (curl_loop.cpp): SMTP between HTTP transfers, and HTTP requests of other
// options (basic auth), must find nothing of the one before.
TEST_F(ProviderTest, SmtpAndHttpTransfersTakeTurnsOnOneLoop) {
  SmtpFake server({});
  SmtpProvider smtp(Smtp(server.port()), loop_);
  ProviderFake fake(
      {"--sendgrid-key", "SG.test-key", "--twilio-sid", "AC0123456789abcdef", "--twilio-token", "tw-token"});
  SendGridProvider sendgrid(SendGrid(fake.url()), loop_);
  TwilioProvider twilio(Twilio(fake.url()), loop_);
  SendSpec sms;
  sms.channel = Channel::kSms;
  for (int round = 0; round < 2; ++round) {
    DeliveryResult r = DeliverNow(sendgrid, MakeSend({}));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_FALSE(r.provider_message_id.empty());
    r = DeliverNow(smtp, MakeSend({}, kUtf8Email));
    ASSERT_TRUE(r.ok) << r.error;
    r = DeliverNow(twilio, MakeSend(sms));
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.provider_message_id.rfind("SM", 0), 0U) << r.provider_message_id;
  }
  EXPECT_EQ(server.Messages().size(), 2U);
  auto requests = fake.Requests();
  ASSERT_EQ(requests.Size(), 4U);
  for (const auto& req : requests.GetArray()) {
    EXPECT_EQ(Str(req, "method"), "POST");
    EXPECT_EQ(Str(req, "problem"), "");
  }
  EXPECT_EQ(HeaderOf(requests[0], "authorization"), "Bearer SG.test-key");
  EXPECT_EQ(HeaderOf(requests[2], "authorization"), "Bearer SG.test-key");
}

TEST_F(ProviderTest, TwilioErrorCodesRefineTheStatus) {
  ProviderFake fake({"--twilio-sid", "AC0123456789abcdef", "--twilio-token", "tw-token"});
  SendSpec spec;
  spec.channel = Channel::kSms;
  spec.address = "12345";  // not E.164: Twilio's 21211
  TwilioProvider provider(Twilio(fake.url()), loop_);
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kInvalidRecipient) << r.error;
  EXPECT_THAT(r.error, HasSubstr("21211"));

  TwilioSettings settings = Twilio(fake.url());
  settings.auth_token = "wrong";
  TwilioProvider wrong(settings, loop_);
  spec.address = "";
  r = DeliverNow(wrong, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;

  fake.Script(
      R"({"rules":[{"status":500,"body":{"code":20500,"message":"Internal Server Error"},"times":1}]})");
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kServerError) << r.error;
}

// ---- FCM ----

std::string ServiceAccount(const std::string& private_key_pem, const std::string& token_uri) {
  std::string out =
      R"({"type":"service_account","project_id":"demo-app","private_key_id":"kid-1","private_key":)";
  pv::AppendJsonString(out, private_key_pem);
  out += R"(,"client_email":"pv-sender@demo-app.iam.gserviceaccount.com","token_uri":)";
  pv::AppendJsonString(out, token_uri);
  out += '}';
  return out;
}

FcmSettings Fcm(const std::string& url, const std::string& service_account) {
  FcmSettings s;
  s.common.name = "fcm";
  s.common.base_url = url;
  s.common.timeout = 5s;
  ApplyServiceAccount(s, service_account, "test");
  return s;
}

TEST_F(ProviderTest, FcmGetsOneOAuthTokenSignedRs256AndSendsHttpV1) {
  const auto& keys = TestKeys::Get();
  // The fake learns the public key from the same service account file.
  std::string sa_path = dir_.File("sa.json");
  pv::testing::WriteFile(sa_path, ServiceAccount(keys.rsa_pem, "unused"));
  ProviderFake fake({"--fcm-credentials", sa_path});
  FcmProvider provider(Fcm(fake.url(), ServiceAccount(keys.rsa_pem, fake.url() + "/token")), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  std::vector<std::shared_ptr<const Send>> sends;
  for (int i = 0; i < 5; ++i) sends.push_back(MakeSend(spec));
  for (const auto& r : DeliverAll(provider, sends)) {
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.provider_message_id.rfind("projects/demo-app/messages/", 0), 0U);
  }
  EXPECT_EQ(fake.Stat("tokens_issued"), 1);  // the five sends waited for the same token
  auto requests = fake.Requests();
  ASSERT_EQ(requests.Size(), 6U);
  EXPECT_EQ(Str(requests[0], "path"), "/token");
  const auto& send_req = requests[1];
  EXPECT_EQ(Str(send_req, "path"), "/v1/projects/demo-app/messages:send");
  EXPECT_EQ(Str(send_req, "problem"), "");
  auto body = pv::testing::ParseJson(Str(send_req, "body"));
  const auto& msg = body["message"];
  EXPECT_STREQ(msg["token"].GetString(), "a1b2c3d4e5f60718293a4b5c6d7e8f90");
  EXPECT_STREQ(msg["notification"]["title"].GetString(), "Still thinking?");
  EXPECT_STREQ(msg["data"]["screen"].GetString(), "cart");
  EXPECT_STREQ(msg["android"]["notification"]["sound"].GetString(), "default");
  EXPECT_EQ(msg["apns"]["payload"]["aps"]["badge"].GetInt(), 2);
  // FCM has no idempotency key: a repeat is a second message, and these make it replace the first.
  EXPECT_EQ(Str(msg["android"]["notification"], "tag"), sends[0]->send_id);
  EXPECT_EQ(Str(msg["apns"]["headers"], "apns-collapse-id"), sends[0]->send_id);
}

TEST_F(ProviderTest, FcmErrorsAndTokenRenewal) {
  const auto& keys = TestKeys::Get();
  std::string sa_path = dir_.File("sa.json");
  pv::testing::WriteFile(sa_path, ServiceAccount(keys.rsa_pem, "unused"));
  // Tokens of 61 s: renewed a minute early, so after one second.
  ProviderFake fake({"--fcm-credentials", sa_path, "--token-ttl", "61"});
  FcmProvider provider(Fcm(fake.url(), ServiceAccount(keys.rsa_pem, fake.url() + "/token")), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  std::this_thread::sleep_for(1200ms);
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  EXPECT_EQ(fake.Stat("tokens_issued"), 2);

  fake.Script(
      R"({"rules":[{"match":"deadbeef","status":404,"body":{"error":{"code":404,)"
      R"("message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":)"
      R"("type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}},"times":-1}]})");
  spec.address = "deadbeef";
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kUnregistered) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kPermanent);

  // A key the service does not know: the token endpoint says invalid_grant.
  EVP_PKEY* other = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, other, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string other_pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(other);
  FcmProvider stranger(Fcm(fake.url(), ServiceAccount(other_pem, fake.url() + "/token")), loop_);
  spec.address = "";
  r = DeliverNow(stranger, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
  EXPECT_THAT(r.error, HasSubstr("invalid_grant"));
}

// THIRD_PARTY_AUTH_ERROR is a 401 about the APNs credentials stored in Firebase: the OAuth token is
// fine and is kept (a new one would not help). A genuine 401 drops it, and the next send fetches one.
TEST_F(ProviderTest, FcmKeepsItsTokenOnThirdPartyAuthErrorAndDropsItOnAGenuine401) {
  const auto& keys = TestKeys::Get();
  std::string sa_path = dir_.File("sa.json");
  pv::testing::WriteFile(sa_path, ServiceAccount(keys.rsa_pem, "unused"));
  ProviderFake fake({"--fcm-credentials", sa_path});
  FcmProvider provider(Fcm(fake.url(), ServiceAccount(keys.rsa_pem, fake.url() + "/token")), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  EXPECT_EQ(fake.Stat("tokens_issued"), 1);

  fake.Script(R"({"rules":[{"match":"messages:send","status":401,"body":{"error":{"code":401,)"
              R"("message":"Auth error from APNS or Web Push Service","status":"UNAUTHENTICATED","details":[)"
              R"({"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError",)"
              R"("errorCode":"THIRD_PARTY_AUTH_ERROR"}]}},"times":1}]})");
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
  EXPECT_EQ(ClassOf(r.kind), ErrorClass::kConfiguration);
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  EXPECT_EQ(fake.Stat("tokens_issued"), 1);  // kept

  fake.Script(R"({"rules":[{"match":"messages:send","status":401,"body":{"error":{"code":401,)"
              R"("message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}},)"
              R"("times":1}]})");
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  EXPECT_EQ(fake.Stat("tokens_issued"), 2);  // dropped and fetched again
}

// ---- APNs ----

ApnsSettings Apns(const std::string& url, const std::string& key_pem) {
  ApnsSettings s;
  s.common.name = "apns";
  s.common.base_url = url;
  s.common.timeout = 5s;
  s.team_id = "TEAM123456";
  s.key_id = "KEY1234567";
  s.key_pem = key_pem;
  s.topic = "com.demo.app";
  return s;
}

class ApnsTest : public ProviderTest {
 protected:
  void SetUp() override {
    const auto& keys = TestKeys::Get();
    pv::testing::WriteFile(dir_.File("apns.p8"), keys.ec_pem);
    pv::testing::WriteFile(dir_.File("cert.pem"), keys.cert_pem);
    pv::testing::WriteFile(dir_.File("key.pem"), keys.cert_key_pem);
    // HTTP/2 over TLS with ALPN, as api.push.apple.com serves it.
    fake_ = std::make_unique<ProviderFake>(std::vector<std::string>{
        "--h2", "--tls-cert", dir_.File("cert.pem"), "--tls-key", dir_.File("key.pem"), "--apns-key",
        dir_.File("apns.p8"), "--apns-key-id", "KEY1234567", "--apns-team-id", "TEAM123456", "--apns-topic",
        "com.demo.app"});
  }
  ApnsSettings Settings(const std::string& key_pem) {
    ApnsSettings s = Apns("https://127.0.0.1:" + std::to_string(fake_->port()), key_pem);
    s.common.tls.ca_file = dir_.File("cert.pem");
    return s;
  }
  std::unique_ptr<ProviderFake> fake_;
};

TEST_F(ApnsTest, SendsOverOneHttp2ConnectionWithAnEs256Token) {
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  std::vector<std::shared_ptr<const Send>> sends;
  for (int i = 0; i < 20; ++i) sends.push_back(MakeSend(spec));
  auto results = DeliverAll(provider, sends);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok) << results[i].error;
    EXPECT_EQ(results[i].provider_message_id, sends[i]->send_id);  // apns-id echoed
  }
  EXPECT_EQ(fake_->Stat("connections"), 1);  // 20 streams multiplexed
  EXPECT_EQ(fake_->Stat("distinct_bearer_tokens"), 1);
  auto requests = fake_->Requests();
  ASSERT_EQ(requests.Size(), 20U);
  // Streams on one connection arrive in no promised order: the request of sends[0] by its apns-id.
  rapidjson::SizeType first = 0;
  while (first < requests.Size() && HeaderOf(requests[first], "apns-id") != sends[0]->send_id) ++first;
  ASSERT_LT(first, requests.Size());
  const auto& req = requests[first];
  EXPECT_EQ(Str(req, "path"), "/3/device/a1b2c3d4e5f60718293a4b5c6d7e8f90");
  EXPECT_EQ(HeaderOf(req, "apns-topic"), "com.demo.app");
  EXPECT_EQ(HeaderOf(req, "apns-push-type"), "alert");
  EXPECT_EQ(HeaderOf(req, "apns-priority"), "10");
  EXPECT_EQ(HeaderOf(req, "apns-id"), sends[0]->send_id);
  EXPECT_EQ(HeaderOf(req, "apns-collapse-id"), sends[0]->send_id);
  EXPECT_EQ(Str(req, "problem"), "");
  auto body = pv::testing::ParseJson(Str(req, "body"));
  EXPECT_STREQ(body["aps"]["alert"]["title"].GetString(), "Still thinking?");
  EXPECT_STREQ(body["aps"]["sound"].GetString(), "default");
  EXPECT_EQ(body["aps"]["badge"].GetInt(), 2);
  EXPECT_STREQ(body["screen"].GetString(), "cart");
}

TEST_F(ApnsTest, ErrorsAreClassified) {
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  spec.address = "not-hex";
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));
  // APNs answers 400 BadDeviceToken: the token can never be delivered to, so it is `unregistered`
  // (the dispatcher suppresses it), like a 410.
  EXPECT_EQ(r.kind, ErrorKind::kUnregistered) << r.error;
  EXPECT_THAT(r.error, HasSubstr("BadDeviceToken"));

  fake_->Script(
      R"({"rules":[{"match":"0000dead","status":410,"body":{"reason":"Unregistered","timestamp":1},"times":1},)"
      R"({"status":429,"body":{"reason":"TooManyRequests"},"times":1}]})");
  spec.address = "0000dead";
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kUnregistered) << r.error;
  spec.address = "";
  r = DeliverNow(provider, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kRateLimited) << r.error;

  // A key the fake does not know: 403 InvalidProviderToken.
  EVP_PKEY* other = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, other, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string other_pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(other);
  ApnsProvider stranger(Settings(other_pem), loop_);
  r = DeliverNow(stranger, MakeSend(spec));
  EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
}

std::string PushValue(const std::string& send_id, const std::string& title) {
  std::string out = R"({"v":1,"send_id":)";
  pv::AppendJsonString(out, send_id);
  out += R"(,"trigger_id":"t-1","project":"demo","campaign_id":"46","channel":"push","provider":"apns",)"
         R"("attempt":1,"to":{"device_token":"a1b2c3d4e5f60718293a4b5c6d7e8f90","external_id":"user-1"},)"
         R"("content":{"title":)";
  pv::AppendJsonString(out, title);
  out += R"(,"body":"b","data":{"screen":"cart"}}})";
  return out;
}

// APNs does not deduplicate by apns-id (Apple documents it as an id echoed in the answer): the same
// send requested twice is accepted twice. Both carry the same apns-collapse-id, so the device shows
// the second in place of the first.
TEST_F(ApnsTest, ARepeatedPushIsAcceptedAgainAndCollapsesOntoTheFirst) {
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  auto send = MakeSend(spec);
  ASSERT_TRUE(DeliverNow(provider, send).ok);
  ASSERT_TRUE(DeliverNow(provider, send).ok);
  EXPECT_EQ(fake_->Stat("accepted"), 2);
  EXPECT_EQ(fake_->Stat("duplicate_accepts"), 1);
  auto requests = fake_->Requests();
  ASSERT_EQ(requests.Size(), 2U);
  for (const auto& req : requests.GetArray()) EXPECT_EQ(HeaderOf(req, "apns-collapse-id"), send->send_id);

  // A send_id beyond Apple's 64 bytes gets a 64-character digest instead (BadCollapseId otherwise),
  // and no apns-id (not a UUID: BadMessageId otherwise).
  std::string long_id(80, 'x');
  DeliveryResult r = DeliverNow(provider, MakeSend(spec, PushValue(long_id, "t")));
  ASSERT_TRUE(r.ok) << r.error;
  requests = fake_->Requests();
  EXPECT_EQ(HeaderOf(requests[2], "apns-collapse-id"), ApnsCollapseId(long_id));
  EXPECT_EQ(HeaderOf(requests[2], "apns-collapse-id").size(), 64U);
  EXPECT_EQ(HeaderOf(requests[2], "apns-id"), "");
}

// The fake holds Apple's rules, so a wrong setting fails here as it would in production, and is
// classed as configuration (retried while an operator fixes it), not dead-lettered as permanent.
TEST_F(ApnsTest, ApplesPayloadPriorityAndPushTypeRulesHold) {
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_);
  SendSpec spec;
  spec.channel = Channel::kPush;
  std::string id = pv::testing::NewSendId();
  // A payload of exactly 4096 bytes goes; one byte more is PayloadTooLarge.
  size_t base = ApnsBody(*MakeSend(spec, PushValue(id, "")), false).size();
  std::string title(4096 - base, 'a');
  ASSERT_EQ(ApnsBody(*MakeSend(spec, PushValue(id, title)), false).size(), 4096U);
  DeliveryResult r = DeliverNow(provider, MakeSend(spec, PushValue(id, title)));
  EXPECT_TRUE(r.ok) << r.error;
  r = DeliverNow(provider, MakeSend(spec, PushValue(pv::testing::NewSendId(), title + "a")));
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.kind, ErrorKind::kRejectedContent) << r.error;
  EXPECT_THAT(r.error, HasSubstr("PayloadTooLarge"));

  // Settings made by hand, past the checks at load, to see what Apple would answer.
  for (auto [push_type, priority, reason] :
       {std::tuple{"alert", 7, "BadPriority"}, std::tuple{"background", 10, "BadPriority"},
        std::tuple{"announcement", 10, "InvalidPushType"}}) {
    ApnsSettings settings = Settings(TestKeys::Get().ec_pem);
    settings.push_type = push_type;
    settings.priority = priority;
    EXPECT_THROW(ValidateApnsSettings(settings, "apns"), ConfigError);
    ApnsProvider wrong(settings, loop_);
    r = DeliverNow(wrong, MakeSend(spec));
    ASSERT_FALSE(r.ok) << push_type << " " << priority;
    EXPECT_THAT(r.error, HasSubstr(reason));
    EXPECT_EQ(r.kind, ErrorKind::kBadSetting) << r.error;
    EXPECT_EQ(ClassOf(r.kind), ErrorClass::kConfiguration);
  }

  // A background push at priority 5: accepted, with content-available and nothing to show.
  ApnsSettings settings = Settings(TestKeys::Get().ec_pem);
  settings.push_type = "background";
  settings.priority = 5;
  ApnsProvider background(settings, loop_);
  r = DeliverNow(background, MakeSend(spec));
  ASSERT_TRUE(r.ok) << r.error;
  auto requests = fake_->Requests();
  const auto& last = requests[requests.Size() - 1];
  EXPECT_EQ(HeaderOf(last, "apns-push-type"), "background");
  EXPECT_EQ(HeaderOf(last, "apns-priority"), "5");
  auto body = pv::testing::ParseJson(Str(last, "body"));
  EXPECT_EQ(body["aps"].MemberCount(), 1U);
  EXPECT_EQ(body["aps"]["content-available"].GetInt(), 1);
}

// Apple answers TooManyProviderTokenUpdates to a token re-signed within 20 minutes of the last one:
// after 403 InvalidProviderToken the provider keeps its token (each send fails as bad_credentials,
// retried) until 20 minutes after it was signed, then signs one new token.
TEST_F(ApnsTest, ARejectedTokenIsResignedAtMostOncePerTwentyMinutes) {
  auto offset = std::make_shared<std::atomic<long long>>(0);  // minutes on the provider's clock
  auto start = ApnsProvider::Clock::now();
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_,
                        [offset, start] { return start + std::chrono::minutes(offset->load()); });
  fake_->Script(R"({"rules":[{"match":"/3/device/","status":403,"body":{"reason":"InvalidProviderToken"},)"
                R"("times":3}]})");
  SendSpec spec;
  spec.channel = Channel::kPush;
  for (long long minute : {0, 1, 19}) {
    offset->store(minute);
    DeliveryResult r = DeliverNow(provider, MakeSend(spec));
    ASSERT_FALSE(r.ok) << minute;
    EXPECT_EQ(r.kind, ErrorKind::kBadCredentials) << r.error;
  }
  offset->store(20);
  DeliveryResult r = DeliverNow(provider, MakeSend(spec));
  ASSERT_TRUE(r.ok) << r.error;
  offset->store(21);
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  auto requests = fake_->Requests();
  ASSERT_EQ(requests.Size(), 5U);
  std::string first = HeaderOf(requests[0], "authorization");
  EXPECT_EQ(HeaderOf(requests[1], "authorization"), first);
  EXPECT_EQ(HeaderOf(requests[2], "authorization"), first);
  EXPECT_NE(HeaderOf(requests[3], "authorization"), first);  // the one new token, at 20 minutes
  EXPECT_EQ(HeaderOf(requests[4], "authorization"), HeaderOf(requests[3], "authorization"));

  // An accepted token is renewed after token_ttl (50 minutes), counted from its signing.
  offset->store(20 + 49);
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  offset->store(20 + 50);
  ASSERT_TRUE(DeliverNow(provider, MakeSend(spec)).ok);
  requests = fake_->Requests();
  EXPECT_EQ(HeaderOf(requests[5], "authorization"), HeaderOf(requests[3], "authorization"));
  EXPECT_NE(HeaderOf(requests[6], "authorization"), HeaderOf(requests[3], "authorization"));
}

// APNs closes connections with GOAWAY (NO_ERROR, "Shutdown") while streams are in flight: the
// streams up to its last stream id were answered, the later ones were never processed (refused).
// Every send ends accepted once: the refused ones go again on a new connection, none twice.
TEST_F(ApnsTest, GoawayMidBatchLosesNothingAndDoublesNothing) {
  ApnsProvider provider(Settings(TestKeys::Get().ec_pem), loop_);
  fake_->Script(R"({"goaway_after":5,"delay_ms":50})");
  SendSpec spec;
  spec.channel = Channel::kPush;
  std::vector<std::shared_ptr<const Send>> sends(20);
  for (auto& send : sends) send = MakeSend(spec);
  auto results = DeliverAll(provider, sends);
  int retried = 0;
  std::vector<std::shared_ptr<const Send>> again;
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].ok) continue;
    // Should libcurl give a refused stream back instead of retrying it: a transient failure.
    EXPECT_EQ(ClassOf(results[i].kind), ErrorClass::kTransient) << results[i].error;
    again.push_back(sends[i]);
    ++retried;
  }
  for (const auto& r : DeliverAll(provider, again)) EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(fake_->Stat("goaways"), 1);
  EXPECT_GE(fake_->Stat("connections"), 2);
  EXPECT_EQ(fake_->Stat("accepted_keys"), 20);
  EXPECT_EQ(fake_->Stat("duplicate_accepts"), 0);
  std::cerr << "goaway: refused streams " << fake_->Stat("refused_streams") << ", given back to the caller "
            << retried << ", connections " << fake_->Stat("connections") << "\n";
}

TEST(ProviderConfigTest, LoadsEveryTypeFromYaml) {
  TempDir dir("pv-provider-config");
  const auto& keys = TestKeys::Get();
  pv::testing::WriteFile(dir.File("sa.json"), ServiceAccount(keys.rsa_pem, "https://oauth2.example/token"));
  pv::testing::WriteFile(dir.File("apns.p8"), keys.ec_pem);
  Config config = Config::FromYaml(
      "providers:\n"
      "  relay: {type: smtp, base_url: \"smtps://mail.example:465\", username: u, password: p}\n"
      "  fcm: {credentials_file: \"" +
      dir.File("sa.json") +
      "\"}\n"
      "  apns: {key_file: \"" +
      dir.File("apns.p8") + "\", key_id: K, team_id: T, topic: com.demo.app}\n");
  SmtpSettings smtp = LoadSmtpSettings(config, "relay");
  EXPECT_EQ(smtp.tls, SmtpSettings::Tls::kImplicit);
  EXPECT_EQ(smtp.username, "u");
  FcmSettings fcm = LoadFcmSettings(config, "fcm");
  EXPECT_EQ(fcm.project_id, "demo-app");
  EXPECT_EQ(fcm.token_url, "https://oauth2.example/token");
  EXPECT_EQ(fcm.common.base_url, "https://fcm.googleapis.com");
  ApnsSettings apns = LoadApnsSettings(config, "apns");
  EXPECT_EQ(apns.common.base_url, "https://api.push.apple.com");
  EXPECT_THROW(LoadTwilioSettings(config, "twilio"), ConfigError);  // no account_sid
}

}  // namespace
}  // namespace pv::workers::providers
