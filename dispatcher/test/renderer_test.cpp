#include "pv/dispatcher/renderer.hpp"

#include <gtest/gtest.h>

#include "test_catalog.hpp"

namespace pv::dispatcher {
namespace {

rapidjson::Document Json(const char* text) {
  rapidjson::Document d;
  d.Parse(text);
  EXPECT_FALSE(d.HasParseError()) << text;
  return d;
}

// Compiles one field and renders it with `data_json` as the root context.
std::string RenderText(const std::string& source, const char* data_json, bool html = false,
                       std::vector<std::string>* missing = nullptr) {
  std::string error;
  auto text = CompiledText::Compile(source, html, error);
  EXPECT_NE(text, nullptr) << error;
  if (!text) return "<compile error>";
  auto doc = Json(data_json);
  TemplateData data(doc);
  std::string out;
  EXPECT_TRUE(text->Render(data, out, missing, error)) << error;
  return out;
}

TEST(RenderText, DottedNamesNumbersAndBooleans) {
  EXPECT_EQ(
      RenderText("Hi {{user.first_name}}, order {{event.order.id}} of {{event.total}} ({{event.ratio}})",
                 R"({"user":{"first_name":"Ana"},"event":{"order":{"id":123},"total":-5,"ratio":0.25}})"),
      "Hi Ana, order 123 of -5 (0.25)");
  // Booleans and null print nothing but drive sections.
  EXPECT_EQ(RenderText("[{{flag}}]{{#flag}}yes{{/flag}}{{^off}}no{{/off}}{{^nothing}}null{{/nothing}}",
                       R"({"flag":true,"off":false,"nothing":null})"),
            "[]yesnonull");
}

TEST(RenderText, HtmlEscapingOnlyWhereAsked) {
  const char* data = R"({"name":"<b>Tom & \"Jerry\" 'x'</b>"})";
  EXPECT_EQ(RenderText("<p>{{name}}</p>", data, true),
            "<p>&lt;b&gt;Tom &amp; &quot;Jerry&quot; &apos;x&apos;&lt;/b&gt;</p>");
  EXPECT_EQ(RenderText("<p>{{{name}}}</p>", data, true), "<p><b>Tom & \"Jerry\" 'x'</b></p>");
  EXPECT_EQ(RenderText("<p>{{& name}}</p>", data, true), "<p><b>Tom & \"Jerry\" 'x'</b></p>");
  // Subjects, SMS and push text are not HTML: nothing is escaped there.
  EXPECT_EQ(RenderText("{{name}}", data, false), "<b>Tom & \"Jerry\" 'x'</b>");
}

TEST(RenderText, SectionsOverListsObjectsAndScalars) {
  const char* data = R"({"event":{"items":[{"name":"Pen","qty":2},{"name":"Ink","qty":1}],
                          "tags":["a","b"],"empty":[],"shipping":{"carrier":"UPS"}},
                          "campaign":{"name":"Shop"}})";
  EXPECT_EQ(RenderText("{{#event.items}}{{name}} x{{qty}}; {{/event.items}}", data), "Pen x2; Ink x1; ");
  EXPECT_EQ(RenderText("{{#event.tags}}<{{.}}>{{/event.tags}}", data), "<a><b>");
  EXPECT_EQ(RenderText("{{#event.empty}}never{{/event.empty}}{{^event.empty}}none{{/event.empty}}", data),
            "none");
  EXPECT_EQ(RenderText("{{#event.shipping}}via {{carrier}}{{/event.shipping}}", data), "via UPS");
  // Names not found inside a section are looked up in the enclosing contexts.
  EXPECT_EQ(RenderText("{{#event.items}}{{name}}@{{campaign.name}} {{/event.items}}", data),
            "Pen@Shop Ink@Shop ");
  // Standalone section lines leave no blank line behind.
  EXPECT_EQ(RenderText("Items:\n{{#event.items}}\n- {{name}}\n{{/event.items}}\nEnd", data),
            "Items:\n- Pen\n- Ink\nEnd");
}

TEST(RenderText, MissingVariablesRenderEmptyAndAreReported) {
  std::vector<std::string> missing;
  EXPECT_EQ(RenderText("Hi {{user.first_name}}{{user.last_name}}!", R"({"user":{"first_name":"Ana"}})", false,
                       &missing),
            "Hi Ana!");
  EXPECT_EQ(missing, std::vector<std::string>{"user.last_name"});
  // A part of the path missing is missing too; a name guarded by its own section is not reported.
  missing.clear();
  EXPECT_EQ(RenderText("{{event.order.id}}{{#user.nick}}({{user.nick}}){{/user.nick}}", R"({"user":{}})",
                       false, &missing),
            "");
  EXPECT_EQ(missing, std::vector<std::string>{"event.order.id"});
}

TEST(RenderText, RefusesWhatItCannotRenderSafely) {
  std::string error;
  EXPECT_EQ(CompiledText::Compile("{{#a}}open", false, error), nullptr);
  EXPECT_NE(error.find('a'), std::string::npos) << error;
  EXPECT_EQ(CompiledText::Compile("Hi {{name", false, error), nullptr);
  EXPECT_EQ(CompiledText::Compile("{{> header}}", false, error), nullptr);
  EXPECT_NE(error.find("partials"), std::string::npos);
  EXPECT_EQ(CompiledText::Compile("{{=<% %>=}}", false, error), nullptr);
  EXPECT_EQ(CompiledText::Compile("{{#a}}x{{/b}}", false, error), nullptr);
  // Text without tags is kept as is.
  EXPECT_EQ(RenderText("Plain { text } }}", "{}"), "Plain { text } }}");
}

TEST(ChooseLocale, ExactThenLanguageThenDefaultThenFirst) {
  std::vector<std::string> locales = {"es", "en", "pt", "fr-CA"};
  EXPECT_EQ(ChooseLocale(locales, "pt", "en"), 2U);
  EXPECT_EQ(ChooseLocale(locales, "PT", "en"), 2U);     // tags are case-insensitive
  EXPECT_EQ(ChooseLocale(locales, "pt-BR", "en"), 2U);  // language
  EXPECT_EQ(ChooseLocale(locales, "fr", "en"), 3U);     // another region of the language
  EXPECT_EQ(ChooseLocale(locales, "fr-FR", "en"), 3U);
  EXPECT_EQ(ChooseLocale(locales, "de-DE", "en"), 1U);  // campaign default
  EXPECT_EQ(ChooseLocale(locales, "", "en"), 1U);
  EXPECT_EQ(ChooseLocale(locales, "de", ""), 0U);  // first
  EXPECT_EQ(ChooseLocale(locales, "de", "it"), 0U);
  std::vector<std::string> regional = {"en", "pt-BR", "pt"};
  EXPECT_EQ(ChooseLocale(regional, "pt-BR", "en"), 1U);  // exact beats language
  EXPECT_EQ(ChooseLocale(regional, "pt-PT", "en"), 2U);  // bare language beats a sibling region
}

TEST(HtmlToText, ReadableTextFromHtml) {
  EXPECT_EQ(
      HtmlToText(
          "<html><head><title>T</title><style>p{color:red}</style></head><body>"
          "<h1>Order   shipped</h1><p>Hi <b>Ana</b>,<br>your order &amp; gift.</p>"
          "<ul><li>Pen &times; 2</li><li>Ink</li></ul>"
          "<p>Track it <a href=\"https://t.example/1\">here</a> or at "
          "<a href='https://t.example/2'>https://t.example/2</a>.</p>"
          "<script>alert(1)</script><!-- hidden --><p>&copy;&nbsp;Shop &#8212; &#x41;</p></body></html>"),
      "Order shipped\n\nHi Ana,\nyour order & gift.\n\n- Pen × 2\n- Ink\n\n"
      "Track it here (https://t.example/1) or at https://t.example/2.\n\n© Shop — A");
  EXPECT_EQ(HtmlToText("just text &unknown; < 3"), "just text &unknown; < 3");
}

constexpr const char* kEmailCampaign = R"(id: "44"
project: demo
name: Order shipped
channel: email
provider: log
default_locale: en
templates:
  en:
    from: "Shop <shop@example.com>"
    subject: "Hi {{user.first_name}}, order {{event.order_id}}"
    html: "<p>Hi {{user.first_name}}</p>{{#event.items}}<p>{{name}}</p>{{/event.items}}<p>{{campaign.name}}</p>"
  es:
    from: "Shop <shop@example.com>"
    subject: "Hola {{user.first_name}}"
    html: "<p>Hola</p>"
    text: "Hola {{user.first_name}} <{{event.note}}>"
)";

TEST(Render, EmailDerivesTextFromHtmlAndUsesCampaignData) {
  testing::TempCatalog dir;
  dir.Write("44.yaml", kEmailCampaign);
  auto catalog = CompiledCatalog::Load(dir.dir());
  const CompiledCampaign* c = catalog->Find("44");
  ASSERT_NE(c, nullptr);
  auto doc = Json(
      R"({"user":{"first_name":"Ana & Bo"},"event":{"order_id":"A1","items":[{"name":"Pen"}],"note":"<x>"}})");
  TemplateData data(&doc["user"], &doc["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "en-GB", data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.locale, "en");
  EXPECT_EQ(content.fields["subject"], "Hi Ana & Bo, order A1");
  EXPECT_EQ(content.fields["html"], "<p>Hi Ana &amp; Bo</p><p>Pen</p><p>Order shipped</p>");
  EXPECT_EQ(content.fields["text"], "Hi Ana & Bo\n\nPen\n\nOrder shipped");
  EXPECT_EQ(content.fields["from"], "Shop <shop@example.com>");

  // The text part the template gives is used as is, unescaped.
  r = Render(*c, "es-MX", data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.locale, "es");
  EXPECT_EQ(content.fields["text"], "Hola Ana & Bo <<x>>");
}

TEST(Render, MissingVariablesEmptyOrFail) {
  testing::TempCatalog dir;
  dir.Write("44.yaml", kEmailCampaign);
  auto catalog = CompiledCatalog::Load(dir.dir());
  const CompiledCampaign* c = catalog->Find("44");
  auto doc = Json(R"({"user":{},"event":{}})");
  TemplateData data(&doc["user"], &doc["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "en", data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.fields["subject"], "Hi , order ");
  EXPECT_EQ(r.missing, (std::vector<std::string>{"user.first_name", "user.first_name", "event.order_id"}));
  r = Render(*c, "en", data, MissingVariables::kFail, content);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("templates.en."), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("missing variable user.first_name"), std::string::npos) << r.error;
}

TEST(Render, RequiredFieldsMustNotRenderEmpty) {
  testing::TempCatalog dir;
  dir.Write("45.yaml", R"(id: "45"
project: demo
channel: text
provider: log
templates:
  en: {body: "{{event.code}}"}
)");
  auto catalog = CompiledCatalog::Load(dir.dir());
  auto doc = Json(R"({"user":{},"event":{}})");
  const CompiledCampaign* c = catalog->Find("45");
  TemplateData data(&doc["user"], &doc["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "", data, MissingVariables::kEmpty, content);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "templates.en.body: rendered empty");
}

TEST(Render, PushDataSoundAndBadge) {
  testing::TempCatalog dir;
  dir.Write("46.yaml", R"(id: "46"
project: demo
channel: push
provider: log
templates:
  en:
    title: "Hi {{user.first_name}}"
    body: "{{event.count}} items & more"
    sound: default
    badge: "{{event.count}}"
    data: {screen: cart, cart_id: "{{event.cart_id}}"}
)");
  auto catalog = CompiledCatalog::Load(dir.dir());
  const CompiledCampaign* c = catalog->Find("46");
  auto doc = Json(R"({"user":{"first_name":"Ana"},"event":{"count":3,"cart_id":"c<1>"}})");
  TemplateData data(&doc["user"], &doc["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "", data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.fields["title"], "Hi Ana");
  EXPECT_EQ(content.fields["body"], "3 items & more");
  EXPECT_EQ(content.fields["sound"], "default");
  EXPECT_EQ(content.fields.count("badge"), 0U);
  EXPECT_EQ(content.badge, 3);
  EXPECT_EQ(content.data, (std::map<std::string, std::string>{{"cart_id", "c<1>"}, {"screen", "cart"}}));

  auto bad = Json(R"({"user":{},"event":{"count":"many"}})");
  TemplateData bad_data(&bad["user"], &bad["event"], c->campaign);
  r = Render(*c, "", bad_data, MissingVariables::kEmpty, content);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("badge"), std::string::npos);
}

TEST(CompiledCatalog, TemplateErrorsNameFileAndField) {
  testing::TempCatalog dir;
  dir.Write("a.yaml", R"(id: "1"
project: demo
channel: email
provider: log
templates:
  en: {from: "a@b.example", subject: "Hi {{#user.x}}", text: "ok"}
  fr: {from: "a@b.example", subject: "ok", text: "{{> footer}}"}
)");
  try {
    CompiledCatalog::Load(dir.dir());
    FAIL() << "expected a CatalogError";
  } catch (const CatalogError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("a.yaml: templates.en.subject:"), std::string::npos) << what;
    EXPECT_NE(what.find("a.yaml: templates.fr.text: partials"), std::string::npos) << what;
  }
}

TEST(CompiledCatalog, DemoCatalogCompiles) {
  auto catalog = CompiledCatalog::Load(PV_DEMO_CATALOG);
  EXPECT_NE(catalog->Find("44"), nullptr);
  EXPECT_NE(catalog->Find("45"), nullptr);
  EXPECT_NE(catalog->Find("46"), nullptr);
}

// The seed's example event has only random_field: the demo email still reads well, and reads the
// data when it is there.
TEST(CompiledCatalog, DemoEmailReadsWellWithTheSeedsExampleAndWithData) {
  auto catalog = CompiledCatalog::Load(PV_DEMO_CATALOG);
  const CompiledCampaign* c = catalog->Find("44");
  ASSERT_NE(c, nullptr);
  auto seed = Json(R"({"user":{"external_id":"EXTERNAL_ID","email":"test@test.com","locale":"en"},)"
                   R"("event":{"random_field":"value"}})");
  TemplateData data(&seed["user"], &seed["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "en", data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.fields["subject"], "Hi there, your order is on its way");
  EXPECT_NE(content.fields["text"].find("Hi there,"), std::string::npos) << content.fields["text"];
  EXPECT_NE(content.fields["text"].find("Your order has shipped."), std::string::npos)
      << content.fields["text"];

  auto full = Json(R"({"user":{"first_name":"Ana"},"event":{"order_id":"A-17"}})");
  TemplateData full_data(&full["user"], &full["event"], c->campaign);
  r = Render(*c, "en", full_data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.fields["subject"], "Hi Ana, your order A-17 is on its way");
  r = Render(*c, "es", full_data, MissingVariables::kEmpty, content);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(content.fields["subject"], "Hola Ana, tu pedido A-17 va en camino");
}

}  // namespace
}  // namespace pv::dispatcher
