#include "pv/catalog.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.hpp"

namespace pv {
namespace {

namespace fs = std::filesystem;
using ::pv::testing::ErrorMessage;
using ::pv::testing::ReadFile;
using ::pv::testing::TempDir;
using ::pv::testing::WriteFile;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;

// The repository's demo catalog, found from this source file (common/test/ -> catalog/demo).
fs::path DemoDir() {
  return fs::weakly_canonical(fs::path(__FILE__).parent_path() / ".." / ".." / "catalog" / "demo");
}

// A template field's value, or "<absent>" (keeps the checks free of null dereferences).
std::string FieldOf(const Template& t, const std::string& name) {
  const std::string* v = t.Field(name);
  return v == nullptr ? "<absent>" : *v;
}

std::vector<std::string> Locales(const Campaign& c) {
  std::vector<std::string> out;
  for (const auto& [locale, t] : c.templates) out.push_back(locale);
  return out;
}

TEST(CatalogTest, LoadsTheDemoCatalog) {
  const fs::path dir = DemoDir();
  auto catalog = Catalog::LoadDirectory(dir.string());
  ASSERT_EQ(catalog->size(), 3U);
  EXPECT_EQ(catalog->directory(), dir.string());
  EXPECT_EQ(catalog->Find("99"), nullptr);
  EXPECT_EQ(catalog->Find(""), nullptr);

  const Campaign* email = catalog->Find("44");
  ASSERT_NE(email, nullptr);
  EXPECT_EQ(email->id, "44");
  EXPECT_EQ(email->project, "demo");
  EXPECT_EQ(email->name, "Order shipped");
  EXPECT_EQ(email->channel, Channel::kEmail);
  EXPECT_EQ(email->provider, "log");
  EXPECT_EQ(email->fallback_provider, "");
  EXPECT_TRUE(email->enabled);
  EXPECT_FALSE(email->deleted);
  EXPECT_EQ(email->default_locale, "en");
  EXPECT_EQ(email->timezone, "America/Chicago");
  EXPECT_FALSE(email->send_window.has_value());
  EXPECT_THAT(email->source_file, EndsWith("44-order-shipped.yaml"));
  ASSERT_EQ(Locales(*email), (std::vector<std::string>{"en", "es"}));
  const Template& en = email->templates[0].second;
  EXPECT_EQ(FieldOf(en, "from"), "Demo Shop <orders@demo.example>");
  EXPECT_EQ(FieldOf(en, "reply_to"), "support@demo.example");
  EXPECT_EQ(
      FieldOf(en, "subject"),
      "Hi {{user.first_name}}{{^user.first_name}}there{{/user.first_name}}, your order{{#event.order_id}} "
      "{{event.order_id}}{{/event.order_id}} is on its way");
  // *_file fields are read from files beside the campaign, under the field's own name.
  EXPECT_EQ(FieldOf(en, "html"), ReadFile(dir / "templates" / "44.en.html"));
  EXPECT_EQ(FieldOf(en, "text"), ReadFile(dir / "templates" / "44.en.txt"));
  EXPECT_EQ(en.Field("html_file"), nullptr);
  EXPECT_TRUE(en.data.empty());
  const Template& es = email->templates[1].second;
  EXPECT_EQ(FieldOf(es, "html"), ReadFile(dir / "templates" / "44.es.html"));
  EXPECT_EQ(es.Field("text"), nullptr);
  EXPECT_THAT(FieldOf(es, "subject"), StartsWith("Hola{{#user.first_name}} "));

  const Campaign* text = catalog->Find("45");
  ASSERT_NE(text, nullptr);
  EXPECT_EQ(text->channel, Channel::kSms);
  EXPECT_EQ(text->timezone, "UTC");  // the default
  ASSERT_EQ(Locales(*text), (std::vector<std::string>{"en", "es"}));
  EXPECT_THAT(FieldOf(text->templates[0].second, "body"),
              StartsWith("{{event.code}} is your Demo verification code"));
  EXPECT_THAT(FieldOf(text->templates[1].second, "body"), HasSubstr("código"));

  const Campaign* push = catalog->Find("46");
  ASSERT_NE(push, nullptr);
  EXPECT_EQ(push->channel, Channel::kPush);
  ASSERT_TRUE(push->send_window.has_value());
  EXPECT_EQ(push->send_window->start_minute, 9 * 60);
  EXPECT_EQ(push->send_window->end_minute, 21 * 60);
  EXPECT_EQ(push->send_window->days, 0x7f);
  ASSERT_EQ(Locales(*push), (std::vector<std::string>{"en", "es"}));
  const Template& push_en = push->templates[0].second;
  EXPECT_EQ(FieldOf(push_en, "title"),
            "Still thinking it over{{#user.first_name}}, {{user.first_name}}{{/user.first_name}}?");
  EXPECT_EQ(FieldOf(push_en, "sound"), "default");
  EXPECT_THAT(push_en.data,
              UnorderedElementsAre(Pair("screen", "cart"), Pair("cart_id", "{{event.cart_id}}")));
  EXPECT_EQ(push_en.Field("data"), nullptr);
}

constexpr const char* kValidPush = R"(id: p1
project: demo
channel: push
provider: log
templates:
  en: {body: "hi"}
)";

TEST(CatalogTest, LoadsNestedDirectoriesAndIgnoresOtherFiles) {
  TempDir dir;
  WriteFile(dir / "a/b/one.yml", kValidPush);
  WriteFile(
      dir / "two.yaml",
      "id: t_2\nproject: other\nchannel: sms\nprovider: twilio\nfallback_provider: log\nenabled: false\n"
      "deleted: true\ndefault_locale: pt-BR\ntimezone: Europe/Lisbon\n"
      "send_window: {start: \"22:00\", end: \"06:30\", days: [Sat, sunday]}\n"
      "templates:\n  pt-BR: {body: \"olá\"}\n  en: {body: hello}\n");
  WriteFile(dir / "README.md", "not a campaign: [\n");
  WriteFile(dir / "notes.yaml.bak", "garbage: [\n");
  auto catalog = Catalog::LoadDirectory(dir.path().string());
  ASSERT_EQ(catalog->size(), 2U);
  ASSERT_NE(catalog->Find("p1"), nullptr);
  const Campaign* c = catalog->Find("t_2");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->channel, Channel::kSms);
  EXPECT_EQ(c->fallback_provider, "log");
  EXPECT_FALSE(c->enabled);
  EXPECT_TRUE(c->deleted);
  EXPECT_EQ(c->default_locale, "pt-BR");
  EXPECT_EQ(c->timezone, "Europe/Lisbon");
  ASSERT_TRUE(c->send_window.has_value());
  EXPECT_EQ(c->send_window->start_minute, 22 * 60);
  EXPECT_EQ(c->send_window->end_minute, 6 * 60 + 30);
  EXPECT_EQ(c->send_window->days, (1 << 5) | (1 << 6));
  // File order, not sorted: the first template is the last resort of locale choice.
  EXPECT_EQ(Locales(*c), (std::vector<std::string>{"pt-BR", "en"}));
}

TEST(CatalogTest, NotADirectory) {
  TempDir dir;
  std::string missing = dir / "missing";
  EXPECT_THAT(ErrorMessage<CatalogError>([&] { Catalog::LoadDirectory(missing); }),
              HasSubstr("catalog " + missing + ": not a directory"));
}

TEST(CatalogTest, EmptyDirectoryIsAnEmptyCatalog) {
  TempDir dir;
  EXPECT_EQ(Catalog::LoadDirectory(dir.path().string())->size(), 0U);
}

// Every problem of a broken catalog is reported at once, each with its file and field.
TEST(CatalogTest, BrokenCatalogListsEveryProblem) {
  TempDir dir;
  auto file = [&](const std::string& name) { return (dir.path() / name).string(); };
  WriteFile(file("a-channel.yaml"),
            "id: a\nproject: demo\nchannel: fax\nprovider: log\ntemplates:\n  en: {body: hi}\n");
  WriteFile(
      file("b-fields.yaml"),
      "id: b\nproject: demo\nchannel: email\nprovider: log\ntemplates:\n  en: {reply_to: x@y.example}\n");
  WriteFile(file("c-tz.yaml"),
            "id: c\nproject: demo\nchannel: text\nprovider: log\ntimezone: Mars/Base\ntemplates:\n  en: "
            "{body: hi}\n");
  WriteFile(file("d-window.yaml"),
            "id: d\nproject: demo\nchannel: push\nprovider: log\n"
            "send_window: {start: \"25:00\", end: 9pm, days: [mon, funday]}\ntemplates:\n  en: {body: hi}\n");
  WriteFile(file("e-dup.yaml"),
            "id: dup\nproject: demo\nchannel: text\nprovider: log\ntemplates:\n  en: {body: hi}\n");
  WriteFile(file("f-dup.yaml"),
            "id: dup\nproject: demo\nchannel: text\nprovider: log\ntemplates:\n  en: {body: hi}\n");
  WriteFile(
      file("g-unknown.yaml"),
      "id: g\nproject: demo\nchannel: text\nprovider: log\ncolour: blue\ntemplates:\n  en: {body: hi}\n");
  WriteFile(file("h-missing-file.yaml"),
            "id: h\nproject: demo\nchannel: email\nprovider: log\n"
            "templates:\n  en: {from: a@b.example, subject: s, html_file: missing.html}\n");

  std::string message = ErrorMessage<CatalogError>([&] { Catalog::LoadDirectory(dir.path().string()); });
  EXPECT_THAT(message, StartsWith("catalog " + dir.path().string() + ": 12 problem(s):\n"));
  EXPECT_THAT(message,
              HasSubstr(file("a-channel.yaml") + ": channel: 'fax' is not one of email, text, push"));
  EXPECT_THAT(message, HasSubstr(file("b-fields.yaml") + ": templates.en.from: is required"));
  EXPECT_THAT(message, HasSubstr(file("b-fields.yaml") + ": templates.en.subject: is required"));
  EXPECT_THAT(message, HasSubstr(file("b-fields.yaml") + ": templates.en: needs html or text (or both)"));
  EXPECT_THAT(message,
              HasSubstr(file("c-tz.yaml") + ": timezone: 'Mars/Base' is not a known IANA time zone"));
  EXPECT_THAT(message, HasSubstr(file("d-window.yaml") + ": send_window.start: must be a local time HH:MM"));
  EXPECT_THAT(message, HasSubstr(file("d-window.yaml") + ": send_window.end: must be a local time HH:MM"));
  EXPECT_THAT(message, HasSubstr(file("d-window.yaml") + ": send_window.days: 'funday' is not a day"));
  EXPECT_THAT(message,
              HasSubstr(file("f-dup.yaml") + ": id: 'dup' is also defined in " + file("e-dup.yaml")));
  EXPECT_THAT(message, HasSubstr(file("g-unknown.yaml") + ": colour: unknown field"));
  EXPECT_THAT(message,
              HasSubstr(file("h-missing-file.yaml") + ": templates.en.html_file: cannot read template file " +
                        file("missing.html")));
  // An unknown channel does not also report its templates against some other channel's fields.
  EXPECT_THAT(message, Not(HasSubstr(file("a-channel.yaml") + ": templates")));
}

class CatalogProblemTest : public ::testing::Test {
 protected:
  // Loads a catalog of one campaign file and returns the error message (failing if it loads).
  std::string Problem(const std::string& yaml) {
    WriteFile(dir_ / "c.yaml", yaml);
    std::string message = ErrorMessage<CatalogError>([&] { Catalog::LoadDirectory(dir_.path().string()); });
    EXPECT_THAT(message, HasSubstr(dir_ / "c.yaml"));
    return message;
  }
  std::string Campaign(const std::string& channel, const std::string& extra, const std::string& templates) {
    return "id: x\nproject: demo\nchannel: " + channel + "\nprovider: log\n" + extra + "templates:\n" +
           templates;
  }
  TempDir dir_;
};

TEST_F(CatalogProblemTest, RequiredTopLevelFields) {
  std::string m = Problem("name: nothing else\n");
  EXPECT_THAT(m, HasSubstr(": id: is required"));
  EXPECT_THAT(m, HasSubstr(": project: is required"));
  EXPECT_THAT(m, HasSubstr(": channel: is required"));
  EXPECT_THAT(m, HasSubstr(": provider: is required"));
  EXPECT_THAT(m, HasSubstr(": templates: at least one locale's template is required"));
}

// Projects are joined by ':' in suppression members and appear in keys and records: a project "a:b"
// would make "user:a:b:u-1" mean two things.
TEST_F(CatalogProblemTest, ProjectNames) {
  auto with_project = [](const std::string& project) {
    return "id: x\nproject: \"" + project +
           "\"\nchannel: text\nprovider: log\ntemplates:\n  en: {body: hi}\n";
  };
  EXPECT_THAT(Problem(with_project("acme:eu")),
              HasSubstr(": project: 'acme:eu' is not a project name: 1 to 64 of a-z, 0-9, '_' and '-'"));
  EXPECT_THAT(Problem(with_project("Demo")), HasSubstr(": project: 'Demo' is not a project name"));
  EXPECT_THAT(Problem(with_project(std::string(65, 'a'))), HasSubstr(": project: '"));
  WriteFile(dir_ / "c.yaml", with_project("demo_2-" + std::string(57, 'z')));  // 64: the longest allowed
  EXPECT_NO_THROW(Catalog::LoadDirectory(dir_.path().string()));
}

TEST_F(CatalogProblemTest, FieldShapes) {
  EXPECT_THAT(Problem(Campaign("text", "", "  en: {body: hi}\n") + "enabled: sometimes\n"),
              HasSubstr(": enabled: must be true or false"));
  EXPECT_THAT(
      Problem("id: \"4 4\"\nproject: demo\nchannel: text\nprovider: log\ntemplates:\n  en: {body: hi}\n"),
      HasSubstr(": id: must be 1-64 letters, digits, '-' or '_'"));
  EXPECT_THAT(Problem("id: [a]\nproject: demo\nchannel: text\nprovider: log\ntemplates:\n  en: {body: hi}\n"),
              HasSubstr(": id: must be a string"));
  EXPECT_THAT(Problem(Campaign("text", "default_locale: en_US\n", "  en: {body: hi}\n")),
              HasSubstr(": default_locale: 'en_US' is not a language tag"));
  EXPECT_THAT(Problem(Campaign("text", "default_locale: fr\n", "  en: {body: hi}\n")),
              HasSubstr(": default_locale: has no template"));
  EXPECT_THAT(Problem(Campaign("text", "", "  en_US: {body: hi}\n")),
              HasSubstr(": templates.en_US: is not a language tag"));
  EXPECT_THAT(Problem(Campaign("text", "", "  en: just a string\n")),
              HasSubstr(": templates.en: must be a mapping of template fields"));
  EXPECT_THAT(Problem("- a\n- b\n"), HasSubstr(": (file): must be a mapping"));
  EXPECT_THAT(Problem("id: [unclosed\n"), HasSubstr(": (file):"));
}

TEST_F(CatalogProblemTest, TemplateFieldsDependOnTheChannel) {
  EXPECT_THAT(Problem(Campaign("text", "", "  en: {body: hi, subject: s}\n")),
              HasSubstr(": templates.en.subject: unknown field for a text campaign (expected body)"));
  EXPECT_THAT(Problem(Campaign("text", "", "  en: {body: \"\"}\n")),
              HasSubstr(": templates.en.body: is required"));
  EXPECT_THAT(Problem(Campaign("push", "", "  en: {title: t}\n")),
              HasSubstr(": templates.en.body: is required"));
  EXPECT_THAT(Problem(Campaign("push", "", "  en: {body: b, data: [1, 2]}\n")),
              HasSubstr(": templates.en.data: must be a mapping of string values"));
  EXPECT_THAT(Problem(Campaign("push", "", "  en: {body: b, data_file: d.json}\n")),
              HasSubstr(": templates.en.data: must be a mapping of string values"));
  EXPECT_THAT(Problem(Campaign("email", "", "  en: {from: a@b.example, subject: [x], text: t}\n")),
              HasSubstr(": templates.en.subject: must be a string"));
  EXPECT_THAT(
      Problem(Campaign("email", "", "  en: {from: a@b.example, subject: s, text: t, html: h, body: b}\n")),
      HasSubstr(": templates.en.body: unknown field for a email campaign"));
}

TEST_F(CatalogProblemTest, SendWindow) {
  EXPECT_THAT(
      Problem(Campaign("push", "send_window: {start: \"10:00\", end: \"10:00\"}\n", "  en: {body: b}\n")),
      HasSubstr(": send_window: start and end must differ"));
  EXPECT_THAT(Problem(Campaign("push", "send_window: {start: \"10:00\"}\n", "  en: {body: b}\n")),
              HasSubstr(": send_window.end: must be a local time HH:MM"));
  EXPECT_THAT(
      Problem(Campaign("push", "send_window: {start: \"9:00\", end: \"10:00\"}\n", "  en: {body: b}\n")),
      HasSubstr(": send_window.start: must be a local time HH:MM"));
  EXPECT_THAT(
      Problem(Campaign("push", "send_window: {start: \"09:00\", end: \"24:01\"}\n", "  en: {body: b}\n")),
      HasSubstr(": send_window.end: must be a local time HH:MM"));
  EXPECT_THAT(Problem(Campaign("push", "send_window: {start: \"09:00\", end: \"10:00\", days: mon}\n",
                               "  en: {body: b}\n")),
              HasSubstr(": send_window.days: must be a list such as [mon, tue]"));
  // Not a mapping: reported like any other problem (not a yaml-cpp exception escaping the loader).
  EXPECT_THAT(Problem(Campaign("push", "send_window: \"09:00-21:00\"\n", "  en: {body: b}\n")),
              HasSubstr(": send_window: "));
  // "mon-fri" is not a day: it must not silently mean Monday only.
  EXPECT_THAT(Problem(Campaign("push", "send_window: {start: \"09:00\", end: \"10:00\", days: [mon-fri]}\n",
                               "  en: {body: b}\n")),
              HasSubstr(": send_window.days: 'mon-fri' is not a day"));
  for (const char* bad : {"monkey", "mo", "sundays", "weds"}) {
    EXPECT_THAT(
        Problem(Campaign(
            "push", std::string("send_window: {start: \"09:00\", end: \"10:00\", days: [") + bad + "]}\n",
            "  en: {body: b}\n")),
        HasSubstr(std::string(": send_window.days: '") + bad + "' is not a day"));
  }
}

TEST_F(CatalogProblemTest, NonStringValuesInsideTemplatesAreProblemsNotCrashes) {
  EXPECT_THAT(Problem(Campaign("push", "", "  en: {body: b, data: {screen: [1, 2]}}\n")),
              HasSubstr(": templates.en.data"));
  EXPECT_THAT(Problem(Campaign("push", "send_window: {start: \"09:00\", end: \"10:00\", days: [[mon]]}\n",
                               "  en: {body: b}\n")),
              HasSubstr(": send_window.days"));
}

TEST(CatalogTest, EndOfDayAndAllDayNames) {
  TempDir dir;
  WriteFile(dir / "c.yaml",
            "id: x\nproject: demo\nchannel: push\nprovider: log\n"
            "send_window: {start: \"00:00\", end: \"24:00\", days: [MON, Tuesday, wed, thurs, Fri]}\n"
            "templates:\n  en: {body: b}\n");
  auto catalog = Catalog::LoadDirectory(dir.path().string());
  const Campaign* c = catalog->Find("x");
  ASSERT_NE(c, nullptr);
  ASSERT_TRUE(c->send_window.has_value());
  EXPECT_EQ(c->send_window->start_minute, 0);
  EXPECT_EQ(c->send_window->end_minute, 24 * 60);
  EXPECT_EQ(c->send_window->days, 0x1f);
}

}  // namespace
}  // namespace pv
