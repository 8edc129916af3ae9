#include "pv/dispatcher/renderer.hpp"

#include <gtest/gtest.h>

#include "kainjow_reference.hpp"
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

// Our renderer against kainjow/mustache with the lookup rules we had on it (kainjow_reference.hpp):
// the same refusals with the same errors, and the same output and missing variables, with and
// without HTML escaping. fuzz/render_fuzz.cpp does the same with hostile templates and data.
void ExpectSameAsKainjow(const std::string& source, const char* data_json) {
  SCOPED_TRACE("template: " + source + "\ndata: " + data_json);
  auto doc = Json(data_json);
  for (bool html : {false, true}) {
    std::string error;
    std::string reference_error;
    auto text = CompiledText::Compile(source, html, error);
    auto reference = reference::KainjowText::Compile(source, html, reference_error);
    ASSERT_EQ(text != nullptr, reference != nullptr) << error << " / " << reference_error;
    if (!text) {
      EXPECT_EQ(error, reference_error);
      continue;
    }
    std::string out;
    std::string reference_out;
    std::vector<std::string> missing;
    std::vector<std::string> reference_missing;
    TemplateData data(doc);
    ASSERT_TRUE(text->Render(data, out, &missing, error)) << error;
    ASSERT_TRUE(reference->Render(doc, reference_out, &reference_missing, reference_error));
    EXPECT_EQ(out, reference_out) << "html " << html;
    EXPECT_EQ(missing, reference_missing) << "html " << html;
  }
}

TEST(RenderText, SameAsKainjow) {
  const char* data = R"({"user":{"first_name":"Ana <&>","last":"O'Neil \"x\"","n":0,"blank":"  \t",
      "flags":{"vip":true,"off":false,"none":null}},
    "event":{"items":[{"name":"Pen","qty":2,"tags":["a","b"]},{"name":"Ink","qty":1.5,"tags":[]},
                      {"qty":-3,"sub":{"name":"deep"}}],
             "empty":[],"obj":{},"str":"","big":18446744073709551615,"neg":-9223372036854775808,
             "e":1e300,"f":0.1,"nested":[[1,2],[3]],"dup":1,"dup":2,"d":{"x":1,"x":{"y":2}}},
    "campaign":{"name":"Shop"},"name":"top","":"empty key","a.b":"dotted key","dup":"first","dup":"second"})";
  const char* templates[] = {
      "Hi {{user.first_name}} {{{user.first_name}}} {{& user.last}} {{user.n}} {{event.big}} {{event.neg}}",
      "{{event.e}} {{event.f}} {{event.items.0.name}} {{event.str}}|{{#event.str}}s{{/event.str}}",
      "{{#event.items}}{{name}} x{{qty}} [{{#tags}}{{.}},{{/tags}}]{{^tags}}no tags{{/tags}} "
      "{{name}}@{{campaign.name}}\n{{/event.items}}",
      "{{#event.items}}{{#sub}}{{name}}/{{qty}}/{{sub.name}}{{/sub}}{{/event.items}}",
      "{{#event.nested}}({{#.}}{{.}}{{/.}}){{/event.nested}}",
      "{{#user.flags}}{{vip}}{{#vip}}V{{/vip}}{{^off}}F{{/off}}{{^none}}N{{/none}}{{.}}{{/user.flags}}",
      "{{^event.empty}}none{{.}}{{/event.empty}}{{^user.flags.off}}[{{.}}]{{/user.flags.off}}",
      "{{#event.obj}}obj{{missing}}{{/event.obj}}{{#event.missing}}no{{/"
      "event.missing}}{{^event.missing}}{{.}}{{/event.missing}}",
      // Standalone section lines go; the line of a section that did not render stays (kainjow).
      "Items:\n{{#event.items}}\n- "
      "{{name}}\n{{/event.items}}\nEnd\n{{#event.missing}}\nx\n{{/event.missing}}\ntail",
      "a\r\n  {{#user.flags}}  \r\nb\r{{/user.flags}}\r\n{{user.blank}}{{#user.flags}}{{/user.flags}}\nc",
      "  {{#user.flags}}\t\n{{user.blank}}\n{{/user.flags}}  \n{{! comment }}\n{{!c}}x",
      "{{.}}|{{#.}}{{name}}/{{dup}}/{{campaign.name}}{{/.}}|{{dup}}|{{event.dup}}|{{event.d.x.y}}",
      "{{#event.d}}{{x}}{{x.y}}{{/event.d}}|{{}}|{{ }}|{{{}}}|{{a.b}}|{{.x}}|{{user..n}}|{{user.}}",
      "{{missing}}{{user.missing}}{{event.items.name}}{{#m}}{{m}}{{/m}}{{{raw_missing}}}{{&amp_missing}}",
      "{{#event.items}}{{missing_inside}}{{user.first_name}}{{/event.items}}",
      "{{ user.first_name }}{{# user.flags }}{{ vip }}{{/ user.flags }}{{{ user.last }}}{{& user.last }}",
      "{{#user.first_name}}{{.}}{{length}}{{/user.first_name}}{{#user.n}}zero{{.}}{{/user.n}}",
      "{{#a}}open",
      "{{#a}}x{{/b}}",
      "{{#a}}{{#b}}{{/x}}{{/y}}",
      "{{#a}}{{/b}}{{/c}}",
      "{{/a}}",
      "{{#a}}{{#b}}{{/b}}",
      "Hi {{name",
      "Hi {{{name}}",
      "{{> header}}",
      "{{=<% %>=}}",
      "x {{",
      "Plain { text } }}",
      "{{{a}}}}{{{b}}}}}",
  };
  for (const char* t : templates) ExpectSameAsKainjow(t, data);
  // The trigger's form: {user, event, campaign{id, name}}.
  testing::TempCatalog dir;
  dir.Write("44.yaml", R"(id: "44"
project: demo
name: Order <shipped>
channel: text
provider: log
templates:
  en: {body: "x"}
)");
  auto catalog = CompiledCatalog::Load(dir.dir());
  const Campaign* campaign = catalog->Find("44")->campaign;
  auto doc = Json(data);
  for (const char* source :
       {"{{campaign.id}} {{campaign.name}} {{campaign.x}} {{campaign.id.x}} {{user.first_name}} "
        "{{event.str}}",
        "{{.}}{{#.}}[{{campaign.name}}|{{user.n}}|{{name}}]{{/.}}{{#campaign}}{{id}}{{name}}{{.}}{{/"
        "campaign}}",
        "{{#event.items}}{{campaign.name}}{{/event.items}}{{campaign}}{{^campaign.x}}none{{/campaign.x}}"}) {
    for (bool html : {false, true}) {
      std::string error;
      auto text = CompiledText::Compile(source, html, error);
      auto reference = reference::KainjowText::Compile(source, html, error);
      ASSERT_TRUE(text && reference) << error;
      std::string out;
      std::string reference_out;
      std::vector<std::string> missing;
      std::vector<std::string> reference_missing;
      TemplateData trigger(&doc["user"], &doc["event"], campaign);
      ASSERT_TRUE(text->Render(trigger, out, &missing, error));
      ASSERT_TRUE(
          reference->Render(&doc["user"], &doc["event"], campaign, reference_out, &reference_missing, error));
      EXPECT_EQ(out, reference_out) << source;
      EXPECT_EQ(missing, reference_missing) << source;
    }
  }
}

// What kainjow let through and we refuse: a delimiter change in a triple tag, and sections nested
// deeper than a render should recurse.
TEST(RenderText, RefusesDelimiterChangeInTripleTagsAndDeepNesting) {
  std::string error;
  EXPECT_EQ(CompiledText::Compile("{{{=<% %>=}}}<%x%>", false, error), nullptr);
  EXPECT_NE(error.find("delimiters"), std::string::npos) << error;
  std::string deep;
  for (int i = 0; i <= CompiledText::kMaxDepth; ++i) deep += "{{#a}}";
  for (int i = 0; i <= CompiledText::kMaxDepth; ++i) deep += "{{/a}}";
  EXPECT_EQ(CompiledText::Compile(deep, false, error), nullptr);
  EXPECT_NE(error.find("nested deeper than"), std::string::npos) << error;
  // One level less is fine.
  EXPECT_EQ(RenderText(deep.substr(6, deep.size() - 12), R"({"a":true})"), "");
}

// Sections over lists nested in a template multiply, and the lists come from the trigger: a render
// stops at kMaxOutputBytes of output or kMaxSteps template nodes, with an error, instead of running
// for minutes.
TEST(RenderText, StopsAtItsLimits) {
  std::string list = "[";
  for (int i = 0; i < 300; ++i) list += std::string(i == 0 ? "" : ",") + "\"" + std::string(100, 'x') + "\"";
  list += "]";
  auto doc = Json(("{\"l\":" + list + "}").c_str());
  TemplateData data(doc);
  std::string error;
  std::string out;
  auto big = CompiledText::Compile("{{#l}}{{#l}}{{.}}{{/l}}{{/l}}", false, error);  // 300 x 300 x 100 bytes
  ASSERT_NE(big, nullptr) << error;
  EXPECT_FALSE(big->Render(data, out, nullptr, error));
  EXPECT_NE(error.find("output over"), std::string::npos) << error;
  auto slow =
      CompiledText::Compile("{{#l}}{{#l}}{{#l}}{{/l}}{{/l}}{{/l}}", false, error);  // 27 million steps
  ASSERT_NE(slow, nullptr) << error;
  EXPECT_FALSE(slow->Render(data, out, nullptr, error));
  EXPECT_NE(error.find("template steps"), std::string::npos) << error;
  // Under the limits: 300 x 100 bytes.
  auto fine = CompiledText::Compile("{{#l}}{{.}}{{/l}}", false, error);
  EXPECT_TRUE(fine->Render(data, out, nullptr, error)) << error;
  EXPECT_EQ(out.size(), 30000U);
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

// An error names the field it came from, a push data value's under "data.".
TEST(Render, AnErrorNamesItsFieldAndAPushDataValueUnderData) {
  testing::TempCatalog dir;
  dir.Write("46.yaml", R"(id: "46"
project: demo
channel: push
provider: log
templates:
  en: {title: "T", body: "B", data: {screen: "{{event.screen}}"}}
)");
  auto catalog = CompiledCatalog::Load(dir.dir());
  const CompiledCampaign* c = catalog->Find("46");
  auto doc = Json(R"({"user":{},"event":{}})");
  TemplateData data(&doc["user"], &doc["event"], c->campaign);
  Content content;
  RenderResult r = Render(*c, "en", data, MissingVariables::kFail, content);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "templates.en.data.screen: missing variable event.screen");
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

// The dispatcher renders every trigger into the same Content: nothing of a previous render stays.
TEST(Render, ReusedContentKeepsNothingOfThePreviousRender) {
  testing::TempCatalog dir;
  dir.Write("44.yaml", kEmailCampaign);
  dir.Write("46.yaml", R"(id: "46"
project: demo
channel: push
provider: log
templates:
  en: {title: "T", body: "B", badge: "2", data: {screen: cart}}
)");
  auto catalog = CompiledCatalog::Load(dir.dir());
  auto doc = Json(R"({"user":{"first_name":"Ana"},"event":{"order_id":"A1","note":"n"}})");
  Content content;
  const CompiledCampaign* push = catalog->Find("46");
  TemplateData push_data(&doc["user"], &doc["event"], push->campaign);
  ASSERT_TRUE(Render(*push, "en", push_data, MissingVariables::kEmpty, content).ok);
  EXPECT_EQ(content.badge, 2);
  const CompiledCampaign* email = catalog->Find("44");
  TemplateData email_data(&doc["user"], &doc["event"], email->campaign);
  ASSERT_TRUE(Render(*email, "es", email_data, MissingVariables::kEmpty, content).ok);
  EXPECT_EQ(content.fields, (std::map<std::string, std::string>{{"from", "Shop <shop@example.com>"},
                                                                {"html", "<p>Hola</p>"},
                                                                {"subject", "Hola Ana"},
                                                                {"text", "Hola Ana <n>"}}));
  EXPECT_TRUE(content.data.empty());
  EXPECT_FALSE(content.badge.has_value());
  // en has no text template: the text is derived again, not the one es rendered.
  ASSERT_TRUE(Render(*email, "en", email_data, MissingVariables::kEmpty, content).ok);
  EXPECT_EQ(content.fields["text"], "Hi Ana\n\nOrder shipped");
  ASSERT_TRUE(Render(*push, "en", push_data, MissingVariables::kEmpty, content).ok);
  EXPECT_EQ(content.fields, (std::map<std::string, std::string>{{"body", "B"}, {"title", "T"}}));
  EXPECT_EQ(content.data, (std::map<std::string, std::string>{{"screen", "cart"}}));
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
