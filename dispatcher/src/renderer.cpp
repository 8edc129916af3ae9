#include "pv/dispatcher/renderer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "pv/json.hpp"
#include "pv/strings.hpp"

namespace pv::dispatcher {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Walks the tags of a template (default delimiters only: we refuse to change them) to learn which
// names are printed as variables, and to refuse what we do not support. kainjow parses it again for
// real; this pass only classifies.
bool ScanTags(std::string_view src, std::set<std::string>& variables, std::string& error) {
  std::set<std::string> sections;
  size_t pos = 0;
  while ((pos = src.find("{{", pos)) != std::string_view::npos) {
    if (src.substr(pos, 3) == "{{{") {
      size_t close = src.find("}}}", pos + 3);
      if (close == std::string_view::npos) {
        error = fmt::format("unclosed tag '{{{{{{' at offset {}", pos);
        return false;
      }
      variables.emplace(Trim(src.substr(pos + 3, close - pos - 3)));
      pos = close + 3;
      continue;
    }
    size_t close = src.find("}}", pos + 2);
    if (close == std::string_view::npos) {
      error = fmt::format("unclosed tag '{{{{' at offset {}", pos);
      return false;
    }
    std::string_view tag = Trim(src.substr(pos + 2, close - pos - 2));
    pos = close + 2;
    if (tag.empty()) continue;  // kainjow reports it
    switch (tag.front()) {
      case '!':
      case '/':
        break;
      case '#':
      case '^':
        sections.emplace(Trim(tag.substr(1)));
        break;
      case '>':
        error = fmt::format("partials ('{{{{{}}}}}') are not supported", tag);
        return false;
      case '=':
        error = "changing delimiters ('{{=...=}}') is not supported";
        return false;
      case '&':
        variables.emplace(Trim(tag.substr(1)));
        break;
      default:
        variables.emplace(tag);
        break;
    }
  }
  // A name also used as a section is guarded by it ({{#x}}{{x}}{{/x}}): its absence is expected.
  for (const auto& s : sections) variables.erase(s);
  variables.erase(".");
  return true;
}

// The name lookup of a render (kainjow's basic_context, implemented here rather than derived from its
// `context`): the bottom of the stack is the TemplateData (nullptr marks it), above it the values that
// sections pushed. A dotted name's first part is looked up through the stack, innermost first, and the
// rest only inside what it found (the Mustache rule). Notes the variables it could not resolve.
class TrackingContext final : public kainjow::mustache::basic_context<std::string> {
 public:
  TrackingContext(TemplateData* data, const std::set<std::string>& variables,
                  std::vector<std::string>* missing)
      : data_(data), variables_(variables), missing_(missing) {
    stack_.push_back(nullptr);
  }

  void push(const MustacheData* data) override { stack_.push_back(data); }
  void pop() override { stack_.pop_back(); }

  const MustacheData* get(const std::string& name) const override {
    const MustacheData* value = Lookup(name);
    if (value == nullptr && missing_ != nullptr && variables_.count(name) != 0) missing_->push_back(name);
    return value;
  }
  const MustacheData* get_partial(const std::string& /*name*/) const override { return nullptr; }

 private:
  const MustacheData* Lookup(const std::string& name) const {
    if (name == ".") return stack_.back() != nullptr ? stack_.back() : data_->Resolve(name);
    size_t dot = name.find('.');
    std::string first = name.substr(0, dot);
    for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
      if (*it == nullptr) return data_->Resolve(name);
      const MustacheData* value = (*it)->get(first);
      if (value == nullptr) continue;
      size_t pos = dot;
      while (value != nullptr && pos != std::string::npos) {
        size_t next = name.find('.', pos + 1);
        value =
            value->get(name.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
        pos = next;
      }
      return value;
    }
    return nullptr;
  }

  TemplateData* data_;
  std::vector<const MustacheData*> stack_;
  const std::set<std::string>& variables_;
  std::vector<std::string>* missing_;
};

// Appends kainjow's output to a string (its render(ctx, stream) only needs operator<<), so no
// ostringstream per field.
struct AppendSink {
  std::string* out;
  AppendSink& operator<<(const std::string& s) {
    out->append(s);
    return *this;
  }
};

std::string_view Language(std::string_view tag) {
  return tag.substr(0, tag.find('-'));
}

std::string Identity(const std::string& s) {
  return s;
}

}  // namespace

// ---- CompiledText ----

std::unique_ptr<CompiledText> CompiledText::Compile(const std::string& source, bool html_escape,
                                                    std::string& error) {
  auto text = std::make_unique<CompiledText>();
  text->source_ = source;
  if (source.find("{{") == std::string::npos) {
    text->constant_ = true;
    return text;
  }
  if (!ScanTags(source, text->variables_, error)) return nullptr;
  text->tmpl_ = std::make_unique<kainjow::mustache::mustache>(source);
  if (!text->tmpl_->is_valid()) {
    error = text->tmpl_->error_message();
    return nullptr;
  }
  if (!html_escape) text->tmpl_->set_custom_escape(Identity);
  return text;
}

bool CompiledText::Render(TemplateData& data, std::string& out, std::vector<std::string>* missing,
                          std::string& error) const {
  if (constant_) {
    out = source_;
    return true;
  }
  TrackingContext ctx(&data, variables_, missing);
  out.clear();
  out.reserve(source_.size() + 64);
  AppendSink sink{&out};
  tmpl_->render(ctx, sink);
  if (!tmpl_->is_valid()) {
    error = tmpl_->error_message();
    return false;
  }
  return true;
}

// ---- CompiledCatalog ----

std::shared_ptr<CompiledCatalog> CompiledCatalog::Load(const std::string& dir) {
  return Compile(Catalog::LoadDirectory(dir));
}

std::shared_ptr<CompiledCatalog> CompiledCatalog::Compile(std::shared_ptr<const Catalog> catalog) {
  auto out = std::make_shared<CompiledCatalog>();
  out->catalog_ = std::move(catalog);
  std::vector<std::string> problems;
  // Sorted, so the problems come out in a stable order.
  std::vector<const Campaign*> campaigns;
  for (const auto& [id, c] : out->catalog_->campaigns()) campaigns.push_back(&c);
  std::sort(campaigns.begin(), campaigns.end(),
            [](const Campaign* a, const Campaign* b) { return a->source_file < b->source_file; });
  for (const Campaign* c : campaigns) {
    CompiledCampaign compiled;
    compiled.campaign = c;
    if (c->send_window && c->send_window->days == 0) {
      problems.push_back(
          fmt::format("{}: send_window.days: names no day, so the window never opens", c->source_file));
    }
    for (const auto& [locale, tmpl] : c->templates) {
      CompiledTemplate t;
      t.locale = locale;
      for (const auto& [name, source] : tmpl.fields) {
        std::string error;
        bool html = c->channel == Channel::kEmail && name == "html";
        auto text = CompiledText::Compile(source, html, error);
        if (!text) {
          problems.push_back(fmt::format("{}: templates.{}.{}: {}", c->source_file, locale, name, error));
          continue;
        }
        t.fields.emplace(name, std::move(text));
      }
      for (const auto& [name, source] : tmpl.data) {
        std::string error;
        auto text = CompiledText::Compile(source, false, error);
        if (!text) {
          problems.push_back(
              fmt::format("{}: templates.{}.data.{}: {}", c->source_file, locale, name, error));
          continue;
        }
        t.data.emplace(name, std::move(text));
      }
      compiled.locales.push_back(locale);
      compiled.templates.push_back(std::move(t));
    }
    out->campaigns_.emplace(c->id, std::move(compiled));
  }
  if (!problems.empty()) {
    std::string message =
        fmt::format("catalog {}: {} template problem(s):", out->catalog_->directory(), problems.size());
    for (const auto& p : problems) message += "\n  " + p;
    throw CatalogError(message);
  }
  return out;
}

const CompiledCampaign* CompiledCatalog::Find(std::string_view id) const {
  auto it = campaigns_.find(std::string(id));
  return it == campaigns_.end() ? nullptr : &it->second;
}

// ---- locale ----

size_t ChooseLocale(std::span<const std::string> available, std::string_view requested,
                    std::string_view default_locale) {
  if (!requested.empty()) {
    for (size_t i = 0; i < available.size(); ++i) {
      if (EqualsIgnoreCase(available[i], requested)) return i;
    }
    std::string_view language = Language(requested);
    for (size_t i = 0; i < available.size(); ++i) {
      if (EqualsIgnoreCase(available[i], language)) return i;
    }
    for (size_t i = 0; i < available.size(); ++i) {
      if (EqualsIgnoreCase(Language(available[i]), language)) return i;
    }
  }
  for (size_t i = 0; i < available.size(); ++i) {
    if (EqualsIgnoreCase(available[i], default_locale)) return i;
  }
  return 0;
}

// ---- data ----

MustacheData ToMustache(const rapidjson::Value& value) {
  switch (value.GetType()) {
    case rapidjson::kObjectType: {
      MustacheData object(MustacheData::type::object);
      for (const auto& member : value.GetObject()) {
        object[std::string(member.name.GetString(), member.name.GetStringLength())] =
            ToMustache(member.value);
      }
      return object;
    }
    case rapidjson::kArrayType: {
      MustacheData list(MustacheData::type::list);
      for (const auto& item : value.GetArray()) list.push_back(ToMustache(item));
      return list;
    }
    case rapidjson::kStringType:
      return MustacheData(std::string(value.GetString(), value.GetStringLength()));
    case rapidjson::kNumberType:
      if (value.IsInt64()) return MustacheData(std::to_string(value.GetInt64()));
      if (value.IsUint64()) return MustacheData(std::to_string(value.GetUint64()));
      return MustacheData(fmt::format("{}", value.GetDouble()));
    case rapidjson::kTrueType:
      return MustacheData(true);
    case rapidjson::kFalseType:
    case rapidjson::kNullType:
      return MustacheData(false);
  }
  return MustacheData(false);
}

TemplateData::TemplateData(const rapidjson::Value* user, const rapidjson::Value* event,
                           const Campaign* campaign)
    : campaign_(campaign) {
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  roots_.emplace_back("user", user != nullptr ? user : &kEmpty);
  roots_.emplace_back("event", event != nullptr ? event : &kEmpty);
}

TemplateData::TemplateData(const rapidjson::Value& root) {
  if (!root.IsObject()) return;
  for (const auto& m : root.GetObject()) {
    roots_.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()), &m.value);
  }
}

const MustacheData* TemplateData::Store(const std::string& name, std::unique_ptr<MustacheData> value) {
  auto& slot = cache_[name];
  slot = std::move(value);
  return slot.get();
}

const MustacheData* TemplateData::Resolve(const std::string& name) {
  if (auto it = cache_.find(name); it != cache_.end()) return it->second.get();
  if (name == ".") {
    auto whole = std::make_unique<MustacheData>(MustacheData::type::object);
    for (const auto& [root, value] : roots_) (*whole)[root] = ToMustache(*value);
    if (const MustacheData* c = Resolve("campaign")) (*whole)["campaign"] = MustacheData(*c);
    return Store(name, std::move(whole));
  }
  size_t dot = name.find('.');
  std::string_view first = std::string_view(name).substr(0, dot);
  if (first == "campaign" && campaign_ != nullptr) {
    if (!campaign_data_) {
      campaign_data_ = std::make_unique<MustacheData>(MustacheData::type::object);
      (*campaign_data_)["id"] = MustacheData(campaign_->id);
      (*campaign_data_)["name"] = MustacheData(campaign_->name);
    }
    const MustacheData* value = campaign_data_.get();
    size_t pos = dot;
    while (value != nullptr && pos != std::string::npos) {
      size_t next = name.find('.', pos + 1);
      value =
          value->get(name.substr(pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1));
      pos = next;
    }
    return value;
  }
  const rapidjson::Value* value = nullptr;
  for (const auto& [root, v] : roots_) {
    if (root == first) {
      value = v;
      break;
    }
  }
  size_t pos = dot;
  while (value != nullptr && pos != std::string::npos) {
    size_t next = name.find('.', pos + 1);
    std::string_view part = std::string_view(name).substr(
        pos + 1, next == std::string::npos ? std::string::npos : next - pos - 1);
    value = value->IsObject() ? FindMember(*value, part) : nullptr;
    pos = next;
  }
  return Store(name, value != nullptr ? std::make_unique<MustacheData>(ToMustache(*value)) : nullptr);
}

// ---- render ----

RenderResult Render(const CompiledCampaign& campaign, std::string_view locale, TemplateData& data,
                    MissingVariables mode, Content& out) {
  RenderResult result;
  const CompiledTemplate& t =
      campaign.templates[ChooseLocale(campaign.locales, locale, campaign.campaign->default_locale)];
  out.locale = t.locale;
  out.fields.clear();
  out.data.clear();
  out.badge.reset();
  auto render_one = [&](const std::string& where, const CompiledText& text, std::string& into) {
    size_t before = result.missing.size();
    std::string error;
    if (!text.Render(data, into, &result.missing, error)) {
      result.error = fmt::format("templates.{}.{}: {}", t.locale, where, error);
      return false;
    }
    if (mode == MissingVariables::kFail && result.missing.size() > before) {
      result.error =
          fmt::format("templates.{}.{}: missing variable {}", t.locale, where, result.missing[before]);
      return false;
    }
    return true;
  };
  for (const auto& [name, text] : t.fields) {
    if (!render_one(name, *text, out.fields[name])) return result;
  }
  for (const auto& [name, text] : t.data) {
    if (!render_one("data." + name, *text, out.data[name])) return result;
  }
  auto require = [&](const char* field) {
    auto it = out.fields.find(field);
    if (it == out.fields.end() || Trim(it->second).empty()) {
      result.error = fmt::format("templates.{}.{}: rendered empty", t.locale, field);
      return false;
    }
    return true;
  };
  switch (campaign.campaign->channel) {
    case Channel::kEmail: {
      if (!require("from") || !require("subject")) return result;
      auto html = out.fields.find("html");
      auto text = out.fields.find("text");
      bool has_html = html != out.fields.end() && !Trim(html->second).empty();
      bool has_text = text != out.fields.end() && !Trim(text->second).empty();
      if (!has_html && !has_text) {
        result.error = fmt::format("templates.{}: html and text both rendered empty", t.locale);
        return result;
      }
      if (!has_text) out.fields["text"] = HtmlToText(html->second);
      break;
    }
    case Channel::kSms:
      if (!require("body")) return result;
      break;
    case Channel::kPush: {
      if (!require("body")) return result;
      auto badge = out.fields.find("badge");
      if (badge != out.fields.end()) {
        std::string_view b = Trim(badge->second);
        long long n = 0;
        auto [end, ec] = std::from_chars(b.data(), b.data() + b.size(), n);
        if (b.empty() || ec != std::errc() || end != b.data() + b.size() || n < 0) {
          result.error =
              fmt::format("templates.{}.badge: rendered '{}', not a whole number", t.locale, badge->second);
          return result;
        }
        out.badge = n;
        out.fields.erase(badge);
      }
      break;
    }
  }
  result.ok = true;
  return result;
}

// ---- HTML to text ----

namespace {

void AppendUtf8(std::string& out, unsigned long cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x110000) {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes the entity at html[i] ('&'); returns the characters consumed, 0 when not an entity.
size_t DecodeEntity(std::string_view html, size_t i, std::string& out) {
  size_t semi = html.find(';', i);
  if (semi == std::string_view::npos || semi - i > 10) return 0;
  std::string_view name = html.substr(i + 1, semi - i - 1);
  if (!name.empty() && name.front() == '#') {
    unsigned long cp = 0;
    std::string_view digits = name.substr(1);
    int base = 10;
    if (!digits.empty() && (digits.front() == 'x' || digits.front() == 'X')) {
      base = 16;
      digits.remove_prefix(1);
    }
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), cp, base);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return 0;
    AppendUtf8(out, cp == 0xA0 ? ' ' : cp);
    return semi - i + 1;
  }
  static const std::pair<std::string_view, std::string_view> kNamed[] = {
      {"amp", "&"},   {"lt", "<"},    {"gt", ">"},    {"quot", "\""},  {"apos", "'"},   {"nbsp", " "},
      {"times", "×"}, {"mdash", "—"}, {"ndash", "–"}, {"hellip", "…"}, {"copy", "©"},   {"reg", "®"},
      {"trade", "™"}, {"euro", "€"},  {"pound", "£"}, {"laquo", "«"},  {"raquo", "»"},  {"rsquo", "’"},
      {"lsquo", "‘"}, {"rdquo", "”"}, {"ldquo", "“"}, {"bull", "•"},   {"middot", "·"},
  };
  for (const auto& [n, v] : kNamed) {
    if (name == n) {
      out += v;
      return semi - i + 1;
    }
  }
  return 0;
}

// Output with whitespace collapsed as a browser would, and line breaks requested by block tags.
class TextOut {
 public:
  void Char(char c) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
      space_ = true;
      return;
    }
    if (space_ && !out_.empty() && out_.back() != '\n') out_ += ' ';
    space_ = false;
    out_ += c;
  }
  void Text(std::string_view s) {
    for (char c : s) Char(c);
  }
  // Ensures the output ends with `n` newlines (1: line break, 2: paragraph break).
  void Break(int n) {
    space_ = false;
    while (!out_.empty() && out_.back() == ' ') out_.pop_back();
    if (out_.empty()) return;
    int have = 0;
    for (auto it = out_.rbegin(); it != out_.rend() && *it == '\n'; ++it) ++have;
    for (; have < n; ++have) out_ += '\n';
  }
  size_t size() const { return out_.size(); }
  std::string_view Since(size_t pos) const { return std::string_view(out_).substr(pos); }
  std::string Finish() {
    while (!out_.empty() && (out_.back() == '\n' || out_.back() == ' ')) out_.pop_back();
    return std::move(out_);
  }

 private:
  std::string out_;
  bool space_ = false;
};

std::string AttributeValue(std::string_view tag, std::string_view name) {
  // tag is the inside of <...>; finds name="value", name='value' or name=value.
  std::string lower(tag);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  size_t pos = 0;
  while ((pos = lower.find(name, pos)) != std::string::npos) {
    bool boundary = pos > 0 && std::isspace(static_cast<unsigned char>(lower[pos - 1]));
    size_t i = pos + name.size();
    while (i < lower.size() && lower[i] == ' ') ++i;
    if (!boundary || i >= lower.size() || lower[i] != '=') {
      pos += name.size();
      continue;
    }
    ++i;
    while (i < lower.size() && lower[i] == ' ') ++i;
    if (i >= lower.size()) return {};
    char quote = tag[i];
    if (quote == '"' || quote == '\'') {
      size_t end = tag.find(quote, i + 1);
      return std::string(
          tag.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
    }
    size_t end = i;
    while (end < tag.size() && !std::isspace(static_cast<unsigned char>(tag[end])) && tag[end] != '>') ++end;
    return std::string(tag.substr(i, end - i));
  }
  return {};
}

}  // namespace

std::string HtmlToText(std::string_view html) {
  static const std::set<std::string, std::less<>> kParagraph = {
      "p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "hr"};
  static const std::set<std::string, std::less<>> kLine = {
      "br", "div", "tr", "section", "article", "header", "footer", "pre", "address", "dl", "dt", "dd"};
  static const std::set<std::string, std::less<>> kSkip = {"head", "style", "script", "title", "template"};
  TextOut out;
  std::string href;
  size_t link_start = 0;
  size_t i = 0;
  while (i < html.size()) {
    char c = html[i];
    if (c == '&') {
      std::string decoded;
      if (size_t used = DecodeEntity(html, i, decoded); used > 0) {
        out.Text(decoded == " " ? std::string_view("\x01") : std::string_view(decoded));
        i += used;
        continue;
      }
      out.Char(c);
      ++i;
      continue;
    }
    if (c != '<') {
      out.Char(c);
      ++i;
      continue;
    }
    if (html.substr(i, 4) == "<!--") {
      size_t end = html.find("-->", i + 4);
      i = end == std::string_view::npos ? html.size() : end + 3;
      continue;
    }
    size_t end = html.find('>', i + 1);
    if (end == std::string_view::npos) {
      out.Char(c);
      ++i;
      continue;
    }
    std::string_view tag = html.substr(i + 1, end - i - 1);
    i = end + 1;
    bool closing = !tag.empty() && tag.front() == '/';
    std::string_view body = closing ? tag.substr(1) : tag;
    size_t name_end = 0;
    while (name_end < body.size() && std::isalnum(static_cast<unsigned char>(body[name_end]))) ++name_end;
    std::string name(body.substr(0, name_end));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (name.empty()) continue;  // <!DOCTYPE>, <?xml?>
    if (!closing && kSkip.count(name) != 0) {
      // Skip to the matching close tag, case-insensitively.
      std::string lower(html.substr(i));
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char ch) { return std::tolower(ch); });
      size_t close = lower.find("</" + name);
      if (close == std::string::npos) {
        i = html.size();
      } else {
        size_t gt = html.find('>', i + close);
        i = gt == std::string_view::npos ? html.size() : gt + 1;
      }
      continue;
    }
    if (name == "a") {
      if (!closing) {
        href = AttributeValue(tag, "href");
        link_start = out.size();
      } else if (!href.empty()) {
        std::string_view text = out.Since(link_start);
        while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
        std::string_view shown = href;
        if (shown.substr(0, 7) == "mailto:") shown.remove_prefix(7);
        if (text != shown && text != href) {
          out.Text(" (");
          out.Text(href);
          out.Text(")");
        }
        href.clear();
      }
      continue;
    }
    if (name == "li") {
      out.Break(1);
      if (!closing) out.Text("- ");
      continue;
    }
    if (name == "td" || name == "th") {
      if (closing) out.Char(' ');
      continue;
    }
    if (kParagraph.count(name) != 0) {
      out.Break(2);
    } else if (kLine.count(name) != 0) {
      out.Break(1);
    }
  }
  std::string text = out.Finish();
  // &nbsp; was kept as \x01 so that collapsing did not eat it; it is a plain space in the text.
  std::replace(text.begin(), text.end(), '\x01', ' ');
  return text;
}

}  // namespace pv::dispatcher
