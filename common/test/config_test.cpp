#include "pv/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "test_util.hpp"

namespace pv {
namespace {

using ::pv::testing::ErrorMessage;
using ::pv::testing::ScopedEnv;
using ::pv::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr const char* kYaml = R"(
kafka:
  brokers: "k1:9092,k2:9092"
  properties:
    socket.timeout.ms: "1000"
    acks: all
dispatcher:
  admin_port: 9100
  delay_tiers: [5s, 30s, 2m]
  ratio: 0.25
  enabled: yes
  timeout_ms: 1500
  name: ~
)";

TEST(ConfigTest, EnvNameIsUpperCaseWithUnderscores) {
  EXPECT_EQ(Config::EnvName("kafka.brokers"), "PV_KAFKA_BROKERS");
  EXPECT_EQ(Config::EnvName("worker.email.max-in-flight"), "PV_WORKER_EMAIL_MAX_IN_FLIGHT");
  EXPECT_EQ(Config::EnvName("log.level"), "PV_LOG_LEVEL");
}

TEST(ConfigTest, LooksUpDottedPaths) {
  ScopedEnv e1("PV_KAFKA_BROKERS", std::nullopt);
  ScopedEnv e2("PV_DISPATCHER_ADMIN_PORT", std::nullopt);
  Config config = Config::FromYaml(kYaml);
  EXPECT_EQ(config.GetString("kafka.brokers", "default"), "k1:9092,k2:9092");
  EXPECT_EQ(config.GetInt("dispatcher.admin_port", 0), 9100);
  EXPECT_DOUBLE_EQ(config.GetDouble("dispatcher.ratio", 1.0), 0.25);
  EXPECT_TRUE(config.GetBool("dispatcher.enabled", false));
  EXPECT_EQ(config.GetMillis("dispatcher.timeout_ms", std::chrono::milliseconds(1)),
            std::chrono::milliseconds(1500));
}

TEST(ConfigTest, AbsentSettingsGiveTheDefault) {
  Config config = Config::FromYaml(kYaml);
  EXPECT_EQ(config.GetString("kafka.missing", "dflt"), "dflt");
  EXPECT_EQ(config.GetString("nosection.x", "dflt"), "dflt");
  // A path through a scalar does not exist.
  EXPECT_EQ(config.GetString("kafka.brokers.inner", "dflt"), "dflt");
  // A null value is absent.
  EXPECT_EQ(config.GetString("dispatcher.name", "dflt"), "dflt");
  EXPECT_EQ(config.GetInt("dispatcher.missing", 42), 42);
  EXPECT_FALSE(config.GetBool("dispatcher.missing", false));
  EXPECT_EQ(config.GetMillis("dispatcher.missing", std::chrono::milliseconds(7)),
            std::chrono::milliseconds(7));
  EXPECT_DOUBLE_EQ(config.GetDouble("dispatcher.missing", 2.5), 2.5);
}

TEST(ConfigTest, EmptyPathIsDefaultsAndEnvironmentOnly) {
  ScopedEnv env("PV_LOG_LEVEL", "debug");
  Config config = Config::Load("");
  EXPECT_EQ(config.GetString("log.level", "info"), "debug");
  EXPECT_EQ(config.GetString("kafka.brokers", "none"), "none");
}

TEST(ConfigTest, LookupsDoNotChangeTheTree) {
  // yaml-cpp node assignment aliases nodes; walking a path must not rewrite the document.
  Config config = Config::FromYaml(kYaml);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(config.GetString("kafka.brokers", ""), "k1:9092,k2:9092");
    EXPECT_EQ(config.GetInt("dispatcher.admin_port", 0), 9100);
    EXPECT_EQ(config.GetList("dispatcher.delay_tiers", {}), (std::vector<std::string>{"5s", "30s", "2m"}));
  }
}

TEST(ConfigTest, EnvironmentWinsOverFile) {
  Config config = Config::FromYaml(kYaml);
  {
    ScopedEnv env("PV_KAFKA_BROKERS", "env-broker:1");
    EXPECT_EQ(config.GetString("kafka.brokers", ""), "env-broker:1");
  }
  EXPECT_EQ(config.GetString("kafka.brokers", ""), "k1:9092,k2:9092");
  {
    ScopedEnv env("PV_DISPATCHER_ADMIN_PORT", "9200");
    EXPECT_EQ(config.GetInt("dispatcher.admin_port", 0), 9200);
  }
  {
    ScopedEnv env("PV_DISPATCHER_NOT_IN_FILE", "x");
    EXPECT_EQ(config.GetString("dispatcher.not_in_file", "d"), "x");
  }
  {
    // Set but empty is a value, not absence.
    ScopedEnv env("PV_KAFKA_BROKERS", "");
    EXPECT_EQ(config.GetString("kafka.brokers", "d"), "");
  }
}

TEST(ConfigTest, IntegerTypeErrorNamesKeyAndSource) {
  Config config = Config::FromYaml("dispatcher:\n  admin_port: ninety\n");
  std::string message = ErrorMessage<ConfigError>([&] { config.GetInt("dispatcher.admin_port", 0); });
  EXPECT_THAT(message, HasSubstr("dispatcher.admin_port"));
  EXPECT_THAT(message, HasSubstr("file <inline>"));
  EXPECT_THAT(message, HasSubstr("'ninety' is not an integer"));

  ScopedEnv env("PV_DISPATCHER_ADMIN_PORT", "12x");
  message = ErrorMessage<ConfigError>([&] { config.GetInt("dispatcher.admin_port", 0); });
  EXPECT_THAT(message, HasSubstr("dispatcher.admin_port"));
  EXPECT_THAT(message, HasSubstr("env PV_DISPATCHER_ADMIN_PORT"));
  EXPECT_THAT(message, HasSubstr("'12x' is not an integer"));
}

TEST(ConfigTest, IntegerRejectsEmptyOverflowAndFractions) {
  Config config = Config::FromYaml("");
  for (const char* bad : {"", "1.5", "99999999999999999999", "0x10", "1e3"}) {
    ScopedEnv env("PV_X_N", bad);
    std::string message = ErrorMessage<ConfigError>([&] { config.GetInt("x.n", 0); });
    EXPECT_THAT(message, HasSubstr("x.n")) << bad;
    EXPECT_THAT(message, HasSubstr("env PV_X_N")) << bad;
  }
  ScopedEnv env("PV_X_N", "-17");
  EXPECT_EQ(config.GetInt("x.n", 0), -17);
}

TEST(ConfigTest, IntegerRangeIsInclusiveAndErrorsNameTheRange) {
  Config config = Config::FromYaml("p: 1\nq: 65535\nr: 65536\ns: 0\n");
  EXPECT_EQ(config.GetInt("p", 0, 1, 65535), 1);
  EXPECT_EQ(config.GetInt("q", 0, 1, 65535), 65535);
  std::string message = ErrorMessage<ConfigError>([&] { config.GetInt("r", 0, 1, 65535); });
  EXPECT_THAT(message, HasSubstr("setting r (file <inline>)"));
  EXPECT_THAT(message, HasSubstr("65536 is out of range [1, 65535]"));
  message = ErrorMessage<ConfigError>([&] { config.GetInt("s", 5, 1, 65535); });
  EXPECT_THAT(message, HasSubstr("0 is out of range [1, 65535]"));
}

TEST(ConfigTest, MillisMustNotBeNegative) {
  ScopedEnv env("PV_WORKER_TIMEOUT_MS", "-1");
  Config config = Config::FromYaml("");
  std::string message = ErrorMessage<ConfigError>([&] { config.GetMillis("worker.timeout_ms", {}); });
  EXPECT_THAT(message, HasSubstr("worker.timeout_ms"));
  EXPECT_THAT(message, HasSubstr("out of range"));
}

TEST(ConfigTest, BooleanAndDoubleParsing) {
  Config config = Config::FromYaml("");
  for (const char* yes : {"true", "TRUE", "yes", "on", "1"}) {
    ScopedEnv env("PV_F_B", yes);
    EXPECT_TRUE(config.GetBool("f.b", false)) << yes;
  }
  for (const char* no : {"false", "No", "off", "0"}) {
    ScopedEnv env("PV_F_B", no);
    EXPECT_FALSE(config.GetBool("f.b", true)) << no;
  }
  {
    ScopedEnv env("PV_F_B", "maybe");
    std::string message = ErrorMessage<ConfigError>([&] { config.GetBool("f.b", true); });
    EXPECT_THAT(message, HasSubstr("setting f.b (env PV_F_B): 'maybe' is not a boolean"));
  }
  {
    ScopedEnv env("PV_F_D", "2.5x");
    std::string message = ErrorMessage<ConfigError>([&] { config.GetDouble("f.d", 0); });
    EXPECT_THAT(message, HasSubstr("setting f.d (env PV_F_D): '2.5x' is not a number"));
  }
}

TEST(ConfigTest, StructuredValueWhereAScalarIsExpectedIsAnError) {
  Config config = Config::FromYaml(kYaml);
  std::string message = ErrorMessage<ConfigError>([&] { config.GetString("kafka.properties", ""); });
  EXPECT_THAT(message, HasSubstr("'kafka.properties' must be a single value"));
  message = ErrorMessage<ConfigError>([&] { config.GetInt("dispatcher.delay_tiers", 0); });
  EXPECT_THAT(message, HasSubstr("'dispatcher.delay_tiers' must be a single value"));
}

TEST(ConfigTest, GetListFromYaml) {
  ScopedEnv env("PV_DISPATCHER_DELAY_TIERS", std::nullopt);
  Config config = Config::FromYaml(kYaml);
  EXPECT_THAT(config.GetList("dispatcher.delay_tiers", {"x"}), ElementsAre("5s", "30s", "2m"));
  EXPECT_THAT(config.GetList("dispatcher.absent", {"a", "b"}), ElementsAre("a", "b"));
  std::string message = ErrorMessage<ConfigError>([&] { config.GetList("dispatcher.admin_port", {}); });
  EXPECT_THAT(message, HasSubstr("'dispatcher.admin_port' must be a list"));
}

TEST(ConfigTest, GetListItemThatIsNotAScalarIsAConfigError) {
  Config config = Config::FromYaml("d:\n  tiers:\n    - 5s\n    - {nested: map}\n");
  std::string message = ErrorMessage<ConfigError>([&] { config.GetList("d.tiers", {}); });
  EXPECT_THAT(message, HasSubstr("d.tiers"));
}

TEST(ConfigTest, GetListFromCommaSeparatedEnvironment) {
  Config config = Config::FromYaml(kYaml);
  {
    ScopedEnv env("PV_DISPATCHER_DELAY_TIERS", "1s,10s,1m");
    EXPECT_THAT(config.GetList("dispatcher.delay_tiers", {}), ElementsAre("1s", "10s", "1m"));
  }
  {
    // Empty items are dropped; blanks around items are not part of them.
    ScopedEnv env("PV_DISPATCHER_DELAY_TIERS", "1s, 10s ,,1m,");
    EXPECT_THAT(config.GetList("dispatcher.delay_tiers", {}), ElementsAre("1s", "10s", "1m"));
  }
  {
    ScopedEnv env("PV_DISPATCHER_DELAY_TIERS", "");
    EXPECT_THAT(config.GetList("dispatcher.delay_tiers", {"x"}), IsEmpty());
  }
  {
    ScopedEnv env("PV_DISPATCHER_DELAY_TIERS", "only");
    EXPECT_THAT(config.GetList("dispatcher.delay_tiers", {}), ElementsAre("only"));
  }
}

TEST(ConfigTest, GetStringMapMergesFileAndEnvironment) {
  ScopedEnv e1("PV_KAFKA_PROPERTIES__SASL_MECHANISM", "PLAIN");
  ScopedEnv e2("PV_KAFKA_PROPERTIES__SOCKET_TIMEOUT_MS", "2000");
  ScopedEnv e3("PV_KAFKA_PROPERTIES_SINGLE", "not-an-entry");   // one underscore: another setting
  ScopedEnv e4("PV_KAFKA_PROPERTIESX__OTHER", "not-an-entry");  // another prefix
  Config config = Config::FromYaml(kYaml);
  EXPECT_THAT(config.GetStringMap("kafka.properties"),
              UnorderedElementsAre(Pair("socket.timeout.ms", "2000"), Pair("acks", "all"),
                                   Pair("sasl.mechanism", "PLAIN")));
}

TEST(ConfigTest, GetStringMapAbsentIsEmptyAndNonMapIsAnError) {
  Config config = Config::FromYaml(kYaml);
  EXPECT_THAT(config.GetStringMap("providers.none"), IsEmpty());
  std::string message = ErrorMessage<ConfigError>([&] { config.GetStringMap("kafka.brokers"); });
  EXPECT_THAT(message, HasSubstr("'kafka.brokers' must be a mapping"));
}

TEST(ConfigTest, GetStringMapEntryThatIsNotAScalarIsAConfigError) {
  Config config = Config::FromYaml("kafka:\n  properties:\n    acks: all\n    ssl: {key: nested}\n");
  std::string message = ErrorMessage<ConfigError>([&] { config.GetStringMap("kafka.properties"); });
  EXPECT_THAT(message, HasSubstr("kafka.properties.ssl"));
}

// redis.url carries Redis's password ("redis://:pw@host"), and --print-config printed it in clear.
TEST(ConfigTest, DescribeMasksThePasswordInUrls) {
  ScopedEnv e1("PV_REDIS_URL", "redis://default:s3cret-pw@cache.internal:6380/2");
  ScopedEnv e2("PV_PROVIDERS_SMTP_BASE_URL", std::nullopt);
  ScopedEnv e3("PV_OTHER_ENDPOINT", std::nullopt);
  Config config = Config::FromYaml(
      "providers:\n  smtp:\n    base_url: \"smtp://mailer:mail-pw@relay:587\"\n"
      "other:\n  endpoint: \"https://api:tok-pw@example.com/x\"\n  plain: \"a@b.co\"\n");
  config.GetString("redis.url", "redis://127.0.0.1:6379");
  config.GetString("providers.smtp.base_url", "");
  config.GetString("other.endpoint", "");
  config.GetString("other.plain", "");
  std::string d = config.Describe();
  EXPECT_THAT(d, HasSubstr("redis.url = redis://default:****@cache.internal:6380/2 (env PV_REDIS_URL)\n"));
  EXPECT_THAT(d, HasSubstr("providers.smtp.base_url = smtp://mailer:****@relay:587 (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("other.endpoint = https://api:****@example.com/x (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("other.plain = a@b.co (file <inline>)\n"));  // not a URL: as it is
  for (const char* secret : {"s3cret-pw", "mail-pw", "tok-pw"})
    EXPECT_THAT(d, Not(HasSubstr(secret))) << secret;
}

TEST(ConfigTest, MaskUrlPassword) {
  EXPECT_EQ(MaskUrlPassword("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
  EXPECT_EQ(MaskUrlPassword("redis://user:pw@host:6379/1"), "redis://user:****@host:6379/1");
  EXPECT_EQ(MaskUrlPassword("redis://:pw@host"), "redis://:****@host");
  EXPECT_EQ(MaskUrlPassword("redis://pw@host"), "redis://****@host");  // Redis reads it as the password
  EXPECT_EQ(MaskUrlPassword("redis://:p@ss/w:rd@host"), "redis://:****@host");  // as the parsers split it
  EXPECT_EQ(MaskUrlPassword("redis:/:pw@host"), "redis:****@host");             // a mistyped scheme too
  EXPECT_EQ(MaskUrlPassword(""), "");
}

TEST(ConfigTest, DescribeShowsValuesAndSourcesAndMasksSecrets) {
  ScopedEnv e1("PV_PROVIDERS_SENDGRID_API_KEY", "SG.very-secret-value");
  ScopedEnv e2("PV_KAFKA_BROKERS", std::nullopt);
  ScopedEnv e3("PV_KAFKA_PROPERTIES__SASL_PASSWORD", "hunter2");
  ScopedEnv e4("PV_KEYS_FILE", std::nullopt);
  Config config = Config::FromYaml(
      "kafka:\n  brokers: b:1\nredis:\n  password: pw123\nproviders:\n  twilio:\n    auth_token: tok-abc\n"
      "    client_secret: sec-abc\n    empty_secret: \"\"\n");
  config.GetString("kafka.brokers", "");
  config.GetString("providers.sendgrid.api_key", "");
  config.GetString("redis.password", "");
  config.GetString("providers.twilio.auth_token", "");
  config.GetString("providers.twilio.client_secret", "");
  config.GetString("providers.twilio.empty_secret", "");
  config.GetString("keys_file", "/etc/pv/keys.yaml");
  config.GetInt("dispatcher.admin_port", 9100);
  config.GetStringMap("kafka.properties");

  std::string d = config.Describe();
  EXPECT_THAT(d, HasSubstr("kafka.brokers = b:1 (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("providers.sendgrid.api_key = ******** (env PV_PROVIDERS_SENDGRID_API_KEY)\n"));
  EXPECT_THAT(d, HasSubstr("redis.password = ******** (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("providers.twilio.auth_token = ******** (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("providers.twilio.client_secret = ******** ("));
  EXPECT_THAT(d, HasSubstr("providers.twilio.empty_secret =  (file <inline>)\n"));
  EXPECT_THAT(d, HasSubstr("keys_file = /etc/pv/keys.yaml (default)\n"));
  EXPECT_THAT(d, HasSubstr("dispatcher.admin_port = 9100 (default)\n"));
  EXPECT_THAT(d, HasSubstr("kafka.properties.sasl.password = ********"));
  for (const char* secret : {"SG.very-secret-value", "hunter2", "pw123", "tok-abc", "sec-abc"}) {
    EXPECT_THAT(d, Not(HasSubstr(secret))) << secret;
  }
}

TEST(ConfigTest, LoadReadsAFileAndNamesItInSources) {
  TempDir dir;
  std::string path = dir / "pv.yaml";
  ::pv::testing::WriteFile(path, "log:\n  level: warn\nworker:\n  n: abc\n");
  ScopedEnv env("PV_LOG_LEVEL", std::nullopt);
  Config config = Config::Load(path);
  EXPECT_EQ(config.path(), path);
  EXPECT_EQ(config.GetString("log.level", "info"), "warn");
  EXPECT_THAT(config.Describe(), HasSubstr("log.level = warn (file " + path + ")"));
  std::string message = ErrorMessage<ConfigError>([&] { config.GetInt("worker.n", 0); });
  EXPECT_THAT(message, HasSubstr("worker.n (file " + path + ")"));
}

TEST(ConfigTest, LoadErrorsNameTheFile) {
  TempDir dir;
  std::string missing = dir / "missing.yaml";
  EXPECT_THAT(ErrorMessage<ConfigError>([&] { Config::Load(missing); }), HasSubstr(missing));

  std::string broken = dir / "broken.yaml";
  ::pv::testing::WriteFile(broken, "kafka: [unclosed\n");
  EXPECT_THAT(ErrorMessage<ConfigError>([&] { Config::Load(broken); }), HasSubstr(broken));

  std::string list = dir / "list.yaml";
  ::pv::testing::WriteFile(list, "- a\n- b\n");
  std::string message = ErrorMessage<ConfigError>([&] { Config::Load(list); });
  EXPECT_THAT(message, HasSubstr(list));
  EXPECT_THAT(message, HasSubstr("top level must be a mapping"));

  std::string empty = dir / "empty.yaml";
  ::pv::testing::WriteFile(empty, "");
  Config config = Config::Load(empty);
  EXPECT_EQ(config.GetString("a.b", "d"), "d");
}

TEST(ConfigTest, MovedConfigKeepsTreeAndRecords) {
  Config a = Config::FromYaml("x: 1\n");
  a.GetInt("x", 0);
  Config b = std::move(a);
  EXPECT_EQ(b.GetInt("x", 0), 1);
  EXPECT_THAT(b.Describe(), HasSubstr("x = 1 (file <inline>)"));
}

// PV_<NAME>_FILE: a secret from a mounted file (/run/secrets/..., systemd's LoadCredential, a
// Kubernetes secret volume) instead of the environment, where every child process and /proc/<pid>/environ
// would see it.
TEST(ConfigFileSecretTest, ASecretComesFromItsFileWithoutTheTrailingNewlineAndIsMaskedWithItsSource) {
  TempDir dir;
  std::string path = dir / "smtp_password";
  ::pv::testing::WriteFile(path, "s3cret pass \n");
  ScopedEnv plain("PV_PROVIDERS_SMTP_PASSWORD", std::nullopt);
  ScopedEnv file("PV_PROVIDERS_SMTP_PASSWORD_FILE", path);
  Config config = Config::FromYaml("providers:\n  smtp:\n    password: from-yaml\n");
  EXPECT_EQ(config.GetString("providers.smtp.password", ""), "s3cret pass ");  // the file wins, blanks kept
  std::string d = config.Describe();
  EXPECT_THAT(d, HasSubstr("providers.smtp.password = ******** (env PV_PROVIDERS_SMTP_PASSWORD_FILE=" + path +
                           ")\n"));
  EXPECT_THAT(d, Not(HasSubstr("s3cret")));
}

TEST(ConfigFileSecretTest, AUrlWithItsPasswordComesFromAFileAndIsMasked) {
  TempDir dir;
  std::string path = dir / "redis_url";
  ::pv::testing::WriteFile(path, "redis://:redis-pw@cache:6379/1\r\n");
  ScopedEnv plain("PV_REDIS_URL", std::nullopt);
  ScopedEnv file("PV_REDIS_URL_FILE", path);
  Config config = Config::FromYaml("");
  EXPECT_EQ(config.GetString("redis.url", "redis://127.0.0.1:6379"), "redis://:redis-pw@cache:6379/1");
  EXPECT_THAT(config.Describe(),
              HasSubstr("redis.url = redis://:****@cache:6379/1 (env PV_REDIS_URL_FILE=" + path + ")\n"));
}

TEST(ConfigFileSecretTest, AMultiLineKeyKeepsItsInnerLineBreaks) {
  TempDir dir;
  std::string path = dir / "apns.p8";
  const std::string pem = "-----BEGIN PRIVATE KEY-----\nMIGTAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----";
  ::pv::testing::WriteFile(path, pem + "\n\n");
  ScopedEnv plain("PV_PROVIDERS_APNS_KEY_PEM", std::nullopt);
  ScopedEnv file("PV_PROVIDERS_APNS_KEY_PEM_FILE", path);
  EXPECT_EQ(Config::FromYaml("").GetString("providers.apns.key_pem", ""), pem);
}

TEST(ConfigFileSecretTest, BothTheVariableAndItsFileAreRefused) {
  TempDir dir;
  std::string path = dir / "token";
  ::pv::testing::WriteFile(path, "tok\n");
  ScopedEnv plain("PV_PROVIDERS_TWILIO_AUTH_TOKEN", "tok-env");
  ScopedEnv file("PV_PROVIDERS_TWILIO_AUTH_TOKEN_FILE", path);
  Config config = Config::FromYaml("");
  std::string message =
      ErrorMessage<ConfigError>([&] { config.GetString("providers.twilio.auth_token", ""); });
  EXPECT_THAT(message,
              HasSubstr("both PV_PROVIDERS_TWILIO_AUTH_TOKEN and PV_PROVIDERS_TWILIO_AUTH_TOKEN_FILE"));
  EXPECT_THAT(message, Not(HasSubstr("tok-env")));
}

TEST(ConfigFileSecretTest, AFileThatCannotBeReadIsAClearError) {
  TempDir dir;
  ScopedEnv plain("PV_PROVIDERS_SENDGRID_API_KEY", std::nullopt);
  {
    ScopedEnv file("PV_PROVIDERS_SENDGRID_API_KEY_FILE", dir / "missing");
    std::string message =
        ErrorMessage<ConfigError>([&] { Config::FromYaml("").GetString("providers.sendgrid.api_key", ""); });
    EXPECT_THAT(message, HasSubstr("providers.sendgrid.api_key"));
    EXPECT_THAT(message, HasSubstr("PV_PROVIDERS_SENDGRID_API_KEY_FILE=" + (dir / "missing")));
    EXPECT_THAT(message, HasSubstr("cannot read"));
  }
  {
    ScopedEnv file("PV_PROVIDERS_SENDGRID_API_KEY_FILE", dir.path().string());
    std::string message =
        ErrorMessage<ConfigError>([&] { Config::FromYaml("").GetString("providers.sendgrid.api_key", ""); });
    EXPECT_THAT(message, HasSubstr("not a regular file"));
  }
  if (::geteuid() != 0) {  // root reads any file
    std::string locked = dir / "locked";
    ::pv::testing::WriteFile(locked, "SG.x");
    std::filesystem::permissions(locked, std::filesystem::perms::none);
    ScopedEnv file("PV_PROVIDERS_SENDGRID_API_KEY_FILE", locked);
    std::string message =
        ErrorMessage<ConfigError>([&] { Config::FromYaml("").GetString("providers.sendgrid.api_key", ""); });
    EXPECT_THAT(message, HasSubstr("cannot read"));
  }
}

TEST(ConfigFileSecretTest, AFileOver64KiBOrWithANulByteIsRefused) {
  TempDir dir;
  ScopedEnv plain("PV_PROVIDERS_FCM_CREDENTIALS_JSON", std::nullopt);
  std::string path = dir / "credentials.json";
  ScopedEnv file("PV_PROVIDERS_FCM_CREDENTIALS_JSON_FILE", path);
  ::pv::testing::WriteFile(path, std::string(64 * 1024, 'x'));
  EXPECT_EQ(Config::FromYaml("").GetString("providers.fcm.credentials_json", "").size(), 64U * 1024U);
  ::pv::testing::WriteFile(path, std::string(64 * 1024 + 1, 'x'));
  EXPECT_THAT(ErrorMessage<ConfigError>(
                  [&] { Config::FromYaml("").GetString("providers.fcm.credentials_json", ""); }),
              HasSubstr("larger than 65536 bytes"));
  ::pv::testing::WriteFile(path, std::string("{\"a\":1}\0x", 9));
  EXPECT_THAT(ErrorMessage<ConfigError>(
                  [&] { Config::FromYaml("").GetString("providers.fcm.credentials_json", ""); }),
              HasSubstr("NUL byte"));
}

// Only secrets: PV_KAFKA_BROKERS_FILE would otherwise be ignored without a word, and the brokers left
// at their default.
TEST(ConfigFileSecretTest, TheFileVariableOfASettingThatIsNotASecretIsRefused) {
  TempDir dir;
  std::string path = dir / "brokers";
  ::pv::testing::WriteFile(path, "k:9092\n");
  ScopedEnv plain("PV_KAFKA_BROKERS", std::nullopt);
  ScopedEnv file("PV_KAFKA_BROKERS_FILE", path);
  std::string message =
      ErrorMessage<ConfigError>([&] { Config::FromYaml("").GetString("kafka.brokers", ""); });
  EXPECT_THAT(message, HasSubstr("PV_KAFKA_BROKERS_FILE"));
  EXPECT_THAT(message, HasSubstr("not a secret"));
  // A setting whose own name ends in _file is not affected: PV_KEYS_FILE is keys_file.
  ScopedEnv keys("PV_KEYS_FILE", "/var/lib/pv/keys/keys.yaml");
  EXPECT_EQ(Config::FromYaml("").GetString("keys_file", "keys.yaml"), "/var/lib/pv/keys/keys.yaml");
}

TEST(ConfigFileSecretTest, ASecretEntryOfAMapComesFromItsFile) {
  TempDir dir;
  std::string path = dir / "sasl";
  ::pv::testing::WriteFile(path, "sasl-pw\n");
  ScopedEnv plain("PV_KAFKA_PROPERTIES__SASL_PASSWORD", std::nullopt);
  ScopedEnv file("PV_KAFKA_PROPERTIES__SASL_PASSWORD_FILE", path);
  ScopedEnv user("PV_KAFKA_PROPERTIES__SASL_USERNAME", "pv");
  Config config = Config::FromYaml("");
  auto properties = config.GetStringMap("kafka.properties");
  EXPECT_THAT(properties,
              UnorderedElementsAre(Pair("sasl.password", "sasl-pw"), Pair("sasl.username", "pv")));
  std::string d = config.Describe();
  EXPECT_THAT(
      d, HasSubstr("kafka.properties.sasl.password = ******** (env PV_KAFKA_PROPERTIES__SASL_PASSWORD_FILE=" +
                   path + ")\n"));
  EXPECT_THAT(d, Not(HasSubstr("sasl-pw")));

  ScopedEnv both("PV_KAFKA_PROPERTIES__SASL_PASSWORD", "other");
  EXPECT_THAT(
      ErrorMessage<ConfigError>([&] { Config::FromYaml("").GetStringMap("kafka.properties"); }),
      HasSubstr("both PV_KAFKA_PROPERTIES__SASL_PASSWORD and PV_KAFKA_PROPERTIES__SASL_PASSWORD_FILE"));
}

}  // namespace
}  // namespace pv
