// Rendering a campaign's template for one trigger: the template is chosen by the user's locale, its
// fields are Mustache templates (kainjow/mustache, Debian's header-only C++ implementation) rendered
// with {user, event, campaign} from the trigger. Templates are compiled once, when the catalog loads,
// so a syntax error is reported at start (naming the file and field) and never per send.
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
#pragma once

#include <rapidjson/document.h>

#include <kainjow/mustache.hpp>
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

using MustacheData = kainjow::mustache::data;

// The data a template renders with: {user, event, campaign{id, name}} of one trigger. Values are
// converted from the trigger's JSON to Mustache data lazily, only for the names the templates use, and
// once per trigger: an event may carry much more than a message shows. Used by one thread.
class TemplateData {
 public:
  TemplateData(const rapidjson::Value* user, const rapidjson::Value* event, const Campaign* campaign);
  // The members of any JSON object as the top-level names (tests, previews).
  explicit TemplateData(const rapidjson::Value& root);

  // The value of a dotted name looked up from the top level ("event.order.id"), or nullptr.
  const MustacheData* Resolve(const std::string& name);

 private:
  const MustacheData* Store(const std::string& name, std::unique_ptr<MustacheData> value);

  std::vector<std::pair<std::string, const rapidjson::Value*>> roots_;
  const Campaign* campaign_ = nullptr;
  std::unique_ptr<MustacheData> campaign_data_;
  std::unordered_map<std::string, std::unique_ptr<MustacheData>> cache_;  // null: known missing
};

// One template field ("subject", "html", a push data value), parsed once.
class CompiledText {
 public:
  // Returns nullptr and sets `error` when the source is not a valid template for us.
  static std::unique_ptr<CompiledText> Compile(const std::string& source, bool html_escape,
                                               std::string& error);

  // Renders. Names of variables that resolved to nothing are appended to `missing` (if given).
  // Returns false (and sets `error`) only when the engine itself reports an error.
  bool Render(TemplateData& data, std::string& out, std::vector<std::string>* missing,
              std::string& error) const;

  const std::set<std::string>& variables() const { return variables_; }

 private:
  // kainjow's render() is not const (it records errors), hence mutable; a CompiledText is used by
  // one thread at a time (the dispatcher renders on its consumer thread only).
  mutable std::unique_ptr<kainjow::mustache::mustache> tmpl_;
  std::set<std::string> variables_;  // names used as {{var}}, {{{var}}} or {{&var}}
  bool constant_ = false;            // no tags at all: render returns the source
  std::string source_;
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

// A JSON value as Mustache data: objects, lists, strings; numbers as their JSON text; true as a
// true section; false and null as false.
MustacheData ToMustache(const rapidjson::Value& value);

// Renders the template chosen for `locale`. An email without a text part gets one derived from the
// html (HtmlToText).
RenderResult Render(const CompiledCampaign& campaign, std::string_view locale, TemplateData& data,
                    MissingVariables mode, Content& out);

// Plain text from HTML for an email's text part: drops tags, <head>, <style> and <script>; breaks
// lines at block elements and <br>; keeps link targets as "text (url)"; decodes the common entities;
// collapses runs of blank space.
std::string HtmlToText(std::string_view html);

}  // namespace pv::dispatcher
