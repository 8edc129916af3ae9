// Rendering a campaign's template for one trigger: the template is chosen by the user's locale, its
// fields are Mustache templates rendered with {user, event, campaign} from the trigger. Templates are
// compiled once, when the catalog loads, into a flat list of nodes (CompiledText), so a syntax error is
// reported at start (naming the file and field) and never per send, and a render walks that list
// reading the trigger's JSON in place: no conversion of the data, no allocation beyond the output.
//
// What a template author can rely on (see docs/dispatcher.md "Templates", and renderer_test.cpp):
//   {{user.first_name}} {{event.order.id}} {{campaign.name}} {{campaign.id}}
//   {{#event.items}}{{name}} x {{quantity}}{{/event.items}}   sections over lists, objects, booleans
//   {{^user.first_name}}there{{/user.first_name}}              inverted sections
//   HTML escaping of {{..}} in an email's html only; {{{..}}} or {{&..}} inserts raw.
//   Numbers render as in the JSON; true/false/null and objects render as nothing.
//   Partials ({{> x}}) and delimiter changes ({{=<% %>=}}) are refused at load.
//   A missing variable renders as nothing ("empty", the Mustache rule) or fails the send ("fail"):
//   dispatcher.render.missing_variables.
// The rules are those of kainjow/mustache 4.1 (which rendered our templates until issue 13), quirks
// included (which lines a section tag leaves blank); renderer_test and fuzz/render_fuzz.cpp compare
// the two (dispatcher/test/kainjow_reference.hpp).
#pragma once

#include <rapidjson/document.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pv/catalog.hpp"

namespace pv::dispatcher {

// What a name in a template stands for: a JSON value of the trigger, a text (the campaign's id or
// name), the campaign object {id, name}, or the top level itself ({{.}} outside any section).
struct TemplateValue {
  enum class Kind : std::uint8_t { kNone, kJson, kText, kCampaign, kTop };
  Kind kind = Kind::kNone;
  const rapidjson::Value* json = nullptr;  // kJson
  std::string_view text;                   // kText

  bool found() const { return kind != Kind::kNone; }
};

// The data a template renders with: {user, event, campaign{id, name}} of one trigger, read in place
// (nothing is converted or copied; the JSON must outlive the render).
class TemplateData {
 public:
  TemplateData(const rapidjson::Value* user, const rapidjson::Value* event, const Campaign* campaign);
  // The members of any JSON object as the top-level names (tests, previews).
  explicit TemplateData(const rapidjson::Value& root);

  // The value of a dotted name looked up from the top level ("event.order.id"). Along a path into
  // the trigger the first of duplicate JSON members counts.
  TemplateValue Resolve(std::string_view name) const;
  // The member `key` of an object value (the last of duplicate JSON members); kNone for anything else.
  TemplateValue Member(const TemplateValue& value, std::string_view key) const;

 private:
  const rapidjson::Value* Top(std::string_view name, bool last) const;

  const rapidjson::Value* user_ = nullptr;
  const rapidjson::Value* event_ = nullptr;
  const rapidjson::Value* root_ = nullptr;  // the root-object form
  const Campaign* campaign_ = nullptr;
};

// One template field ("subject", "html", a push data value), parsed once.
class CompiledText {
 public:
  // Limits of one render, past which it stops with an error (the trigger fails with render_error):
  // sections over lists nested in a template multiply, and the lists come from the trigger.
  static constexpr size_t kMaxOutputBytes = 4 << 20;
  static constexpr size_t kMaxSteps = 4'000'000;  // template nodes visited and list items entered
  // Sections nested deeper than this are refused at load (a render recurses once per level).
  static constexpr int kMaxDepth = 64;

  // Returns nullptr and sets `error` when the source is not a valid template for us.
  static std::unique_ptr<CompiledText> Compile(const std::string& source, bool html_escape,
                                               std::string& error);

  CompiledText() = default;
  CompiledText(const CompiledText&) = delete;
  CompiledText& operator=(const CompiledText&) = delete;

  // Renders into `out` (cleared first; its capacity is reused). Names of variables that resolved to
  // nothing are appended to `missing` (if given). Returns false (and sets `error`) only when a limit
  // above was reached.
  bool Render(const TemplateData& data, std::string& out, std::vector<std::string>* missing,
              std::string& error) const;

  const std::set<std::string>& variables() const { return variables_; }

  // One piece of the template. Text, newlines and names are ranges of source_.
  struct Node {
    enum class Kind : std::uint8_t { kText, kNewline, kVariable, kRawVariable, kSection, kInverted };
    Kind kind = Kind::kText;
    bool track_missing = false;  // a variable reported when it resolves to nothing
    std::uint32_t begin = 0;     // source_ range: the text, or the tag's name
    std::uint32_t size = 0;
    std::uint32_t end = 0;  // sections: the index of the first node after the section
  };

 private:
  std::set<std::string> variables_;  // names used as {{var}}, {{{var}}} or {{&var}}
  bool constant_ = false;            // no tags at all: render returns the source
  bool html_escape_ = false;
  std::string source_;
  std::vector<Node> nodes_;
};

struct CompiledTemplate {
  std::string locale;
  std::map<std::string, std::unique_ptr<CompiledText>> fields;
  std::map<std::string, std::unique_ptr<CompiledText>> data;  // push data values
};

struct CompiledCampaign {
  const Campaign* campaign = nullptr;       // owned by CompiledCatalog::catalog
  std::vector<CompiledTemplate> templates;  // in the campaign's (file) order
  std::vector<std::string> locales;         // same order, for ChooseLocale
};

// The catalog with every template compiled. Immutable after Load; render from one thread.
class CompiledCatalog {
 public:
  // Loads and validates the catalog (pv::Catalog) and compiles every template. Throws CatalogError
  // listing every problem with its file and field.
  static std::shared_ptr<CompiledCatalog> Load(const std::string& dir);
  static std::shared_ptr<CompiledCatalog> Compile(std::shared_ptr<const Catalog> catalog);

  const CompiledCampaign* Find(std::string_view id) const;
  const Catalog& catalog() const { return *catalog_; }
  size_t size() const { return campaigns_.size(); }

 private:
  std::shared_ptr<const Catalog> catalog_;
  std::unordered_map<std::string, CompiledCampaign> campaigns_;
};

// The template to use for a user's locale: the exact tag (case-insensitive), else the bare language
// ("pt-BR" -> "pt"), else another tag of the same language in file order ("pt-BR" -> "pt-PT"),
// else the campaign's default locale, else the first. `available` must not be empty.
size_t ChooseLocale(std::span<const std::string> available, std::string_view requested,
                    std::string_view default_locale);

// The rendered content of one send, ready to be written as the record's `content` object.
struct Content {
  std::string locale;
  // email: from, reply_to?, subject, html?, text | text: body | push: title?, body, sound?, badge?
  std::map<std::string, std::string> fields;
  std::map<std::string, std::string> data;  // push only
  std::optional<long long> badge;           // push only, when the template has one
};

enum class MissingVariables { kEmpty, kFail };

struct RenderResult {
  bool ok = false;
  std::string error;                 // when !ok: which field and why
  std::vector<std::string> missing;  // variables that rendered as nothing (both modes)
};

// Renders the template chosen for `locale` into `out`, reusing what a previous render left there. An
// email without a text part gets one derived from the html (HtmlToText).
RenderResult Render(const CompiledCampaign& campaign, std::string_view locale, const TemplateData& data,
                    MissingVariables mode, Content& out);

}  // namespace pv::dispatcher
