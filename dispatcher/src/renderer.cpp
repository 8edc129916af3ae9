#include "pv/dispatcher/renderer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "pv/dispatcher/html_to_text.hpp"
#include "pv/json.hpp"
#include "pv/strings.hpp"

namespace pv::dispatcher {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

using Node = CompiledText::Node;

// A node of `kind` over `part` of `src`.
Node NodeOf(std::string_view src, Node::Kind kind, std::string_view part) {
  Node n;
  n.kind = kind;
  n.begin = static_cast<std::uint32_t>(part.data() - src.data());
  n.size = static_cast<std::uint32_t>(part.size());
  return n;
}

// The nodes of `text` (a part of `src` between tags): text and the newlines that split it.
void AddText(std::string_view src, std::string_view text, std::vector<Node>& nodes) {
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find_first_of("\r\n", i);
    if (nl == std::string_view::npos) nl = text.size();
    if (nl > i) nodes.push_back(NodeOf(src, Node::Kind::kText, text.substr(i, nl - i)));
    if (nl == text.size()) break;
    size_t len = text.compare(nl, 2, "\r\n") == 0 ? 2 : 1;
    nodes.push_back(NodeOf(src, Node::Kind::kNewline, text.substr(nl, len)));
    i = nl + len;
  }
}

// Builds the node list of a template and the names it prints as variables (`variables`), refusing what
// we do not support: default delimiters only (we refuse to change them), no partials. Text is split
// only at newlines ("\r\n", "\n" or "\r"), which the render needs to drop the lines that hold only
// section tags. An unclosed tag, a partial or a delimiter change is reported first, wherever it is;
// then the section errors, kainjow's with its messages: a closing tag with no section open (or
// sections nested too deep) where it is met; otherwise the first section (in source order) closed by
// another name or never closed.
class Parser {
 public:
  Parser(std::string_view src, std::set<std::string>& variables, std::vector<Node>& nodes)
      : src_(src), variables_(variables), nodes_(nodes) {}

  bool Run(std::string& error) {
    size_t pos = 0;
    while (true) {
      size_t tag = src_.find("{{", pos);
      if (section_error_.empty()) AddText(src_, src_.substr(pos, tag - pos), nodes_);  // npos - pos: the rest
      if (tag == std::string_view::npos) break;
      bool triple = src_.compare(tag, 3, "{{{") == 0;
      size_t braces = triple ? 3 : 2;
      size_t close = src_.find(triple ? "}}}" : "}}", tag + braces);
      if (close == std::string_view::npos) {
        error = fmt::format("unclosed tag '{}' at offset {}", triple ? "{{{" : "{{", tag);
        return false;
      }
      pos = close + braces;
      if (!Tag(tag, triple, Trim(src_.substr(tag + braces, close - tag - braces)), error)) return false;
    }
    return Finish(error);
  }

 private:
  // The tag at `tag` holding `contents`; false on one we refuse.
  bool Tag(size_t tag, bool triple, std::string_view contents, std::string& error) {
    char sigil = contents.empty() ? '\0' : contents.front();
    std::string_view name = sigil == '\0' ? contents : Trim(contents.substr(1));
    if (triple && sigil != '=') {  // {{{name}}} is {{&name}}; kainjow read "{{{=<% %>=}}}" as {{=...=}}
      sigil = '&';
      name = contents;
    }
    switch (sigil) {
      case '!':
        break;
      case '>':
        error = fmt::format("partials ('{{{{{}}}}}') are not supported", contents);
        return false;
      case '=':
        error = "changing delimiters ('{{=...=}}') is not supported";
        return false;
      case '#':
      case '^':
        sections_.emplace(name);
        if (!section_error_.empty()) break;
        if (open_.size() >= static_cast<size_t>(CompiledText::kMaxDepth)) {
          section_error_ = fmt::format("sections nested deeper than {} at {}", CompiledText::kMaxDepth, tag);
          break;
        }
        open_.push_back({nodes_.size(), tag});
        nodes_.push_back(NodeOf(src_, sigil == '#' ? Node::Kind::kSection : Node::Kind::kInverted, name));
        break;
      case '/':
        if (!section_error_.empty()) break;
        if (open_.empty()) {
          section_error_ = fmt::format("Unopened section \"{}\" at {}", name, tag);
          break;
        }
        nodes_[open_.back().node].end = static_cast<std::uint32_t>(nodes_.size());
        if (NameOf(nodes_[open_.back().node]) != name)
          Bad(open_.back().position, NameOf(nodes_[open_.back().node]));
        open_.pop_back();
        break;
      case '&':
        variables_.emplace(name);
        if (section_error_.empty()) nodes_.push_back(NodeOf(src_, Node::Kind::kRawVariable, name));
        break;
      default:
        if (!contents.empty()) variables_.emplace(contents);  // {{}}: a variable named "", never reported
        if (section_error_.empty()) nodes_.push_back(NodeOf(src_, Node::Kind::kVariable, contents));
        break;
    }
    return true;
  }

  bool Finish(std::string& error) {
    if (!section_error_.empty()) {
      error = section_error_;
      return false;
    }
    for (const Open& o : open_) Bad(o.position, NameOf(nodes_[o.node]));
    if (first_bad_ != std::string_view::npos) {
      error = fmt::format("Unclosed section \"{}\" at {}", first_bad_name_, first_bad_);
      return false;
    }
    if (nodes_.size() > UINT32_MAX) {
      error = "too many tags";
      return false;
    }
    // A name also used as a section is guarded by it ({{#x}}{{x}}{{/x}}): its absence is expected.
    for (const auto& section : sections_) variables_.erase(section);
    variables_.erase(".");
    for (Node& n : nodes_) {
      bool variable = n.kind == Node::Kind::kVariable || n.kind == Node::Kind::kRawVariable;
      n.track_missing = variable && variables_.count(std::string(NameOf(n))) != 0;
    }
    return true;
  }

  std::string_view NameOf(const Node& n) const { return src_.substr(n.begin, n.size); }
  void Bad(size_t position, std::string_view name) {
    if (position >= first_bad_) return;
    first_bad_ = position;
    first_bad_name_ = name;
  }

  struct Open {
    size_t node;
    size_t position;  // of its "{{"
  };
  std::string_view src_;
  std::set<std::string>& variables_;
  std::vector<Node>& nodes_;
  std::vector<Open> open_;
  std::set<std::string> sections_;
  std::string section_error_;                  // set: no more nodes; reported unless a tag error follows
  size_t first_bad_ = std::string_view::npos;  // position of the first badly closed section
  std::string_view first_bad_name_;
};

// A JSON number as the template shows it (as kainjow's data held it: the integer, or fmt's shortest
// form of the double).
void AppendNumber(const rapidjson::Value& v, fmt::memory_buffer& into) {
  if (v.IsInt64()) {
    fmt::format_to(std::back_inserter(into), "{}", v.GetInt64());
  } else if (v.IsUint64()) {
    fmt::format_to(std::back_inserter(into), "{}", v.GetUint64());
  } else {
    fmt::format_to(std::back_inserter(into), "{}", v.GetDouble());
  }
}

// False in a section: false, null, an empty list, and a name that resolved to nothing.
bool Falsy(const TemplateValue& v) {
  if (!v.found()) return true;
  if (v.kind != TemplateValue::Kind::kJson) return false;
  return v.json->IsFalse() || v.json->IsNull() || (v.json->IsArray() && v.json->Empty());
}

// `value`'s members along the rest of a dotted `name`, after the part that ends at `dot` (npos: none).
TemplateValue Walk(const TemplateData& data, TemplateValue value, std::string_view name, size_t dot) {
  while (value.found() && dot != std::string_view::npos) {
    size_t next = name.find('.', dot + 1);
    value = data.Member(value, name.substr(dot + 1, next - dot - 1));  // npos - dot - 1: to the end
    dot = next;
  }
  return value;
}

// One render of one CompiledText. The section stack is a chain of frames on the C++ stack (a render
// recurses once per section level, at most kMaxDepth). The output goes straight into `out`; the
// current line starts at line_start_, and when the line ends holding only blanks and a rendered
// section tag touched it, it is cut (kainjow's rule for "standalone" section lines, which also keeps
// the line of a section that did not render).
class Renderer {
 public:
  struct Frame {
    TemplateValue value;
    const Frame* outer;
  };

  Renderer(std::string_view src, const std::vector<Node>& nodes, const TemplateData& data, bool escape,
           std::string& out, std::vector<std::string>* missing)
      : src_(src), nodes_(nodes), data_(data), escape_(escape), out_(out), missing_(missing) {}

  // Returns false when a limit was reached (error() says which).
  bool Run(size_t begin, size_t end, const Frame* frame) {
    for (size_t i = begin; i < end; ++i) {
      if (!Step()) return false;
      const Node& n = nodes_[i];
      std::string_view text = src_.substr(n.begin, n.size);
      switch (n.kind) {
        case Node::Kind::kText:
          Append(text);
          break;
        case Node::Kind::kNewline:
          EndLine(text);
          break;
        case Node::Kind::kVariable:
        case Node::Kind::kRawVariable: {
          TemplateValue v = Lookup(text, frame);
          if (!v.found()) {
            if (n.track_missing && missing_ != nullptr) missing_->emplace_back(text);
          } else {
            AppendValue(v, escape_ && n.kind == Node::Kind::kVariable);
          }
          break;
        }
        case Node::Kind::kSection:
        case Node::Kind::kInverted: {
          TemplateValue v = Lookup(text, frame);
          if (Falsy(v) == (n.kind == Node::Kind::kInverted) && !Section(i + 1, n.end, v, frame)) return false;
          i = n.end - 1;
          break;
        }
      }
      if (out_.size() > CompiledText::kMaxOutputBytes) {
        return Fail("output over {} bytes", CompiledText::kMaxOutputBytes);
      }
    }
    return true;
  }

  void Finish() {
    if (line_section_ && line_blank_) out_.resize(line_start_);
  }

  const std::string& error() const { return error_; }

 private:
  template <typename... Args>
  bool Fail(fmt::format_string<Args...> format, Args&&... args) {
    error_ = fmt::format(format, std::forward<Args>(args)...);
    return false;
  }

  // A node visited or a list item entered.
  bool Step() {
    if (++steps_ <= CompiledText::kMaxSteps) return true;
    return Fail("more than {} template steps", CompiledText::kMaxSteps);
  }

  bool Section(size_t begin, size_t end, const TemplateValue& v, const Frame* frame) {
    line_section_ = true;
    if (v.kind == TemplateValue::Kind::kJson && v.json->IsArray() && !v.json->Empty()) {
      for (const auto& item : v.json->GetArray()) {
        if (!Step()) return false;
        line_section_ = true;
        Frame inner{TemplateValue{TemplateValue::Kind::kJson, &item, {}}, frame};
        if (!Run(begin, end, &inner)) return false;
      }
    } else if (v.found()) {
      Frame inner{v, frame};
      if (!Run(begin, end, &inner)) return false;
    } else if (!Run(begin, end, frame)) {
      return false;
    }
    line_section_ = true;
    return true;
  }

  // A dotted name: its first part is looked up through the sections, innermost first, then at the
  // top level; the rest only inside what the first part found (the Mustache rule).
  TemplateValue Lookup(std::string_view name, const Frame* frame) const {
    if (name == ".") return frame != nullptr ? frame->value : data_.Resolve(name);
    size_t dot = name.find('.');
    std::string_view first = name.substr(0, dot);
    for (const Frame* f = frame; f != nullptr; f = f->outer) {
      TemplateValue value = data_.Member(f->value, first);
      if (value.found()) return Walk(data_, value, name, dot);
    }
    return data_.Resolve(name);
  }

  void Append(std::string_view text) {
    out_.append(text);
    if (line_blank_) line_blank_ = text.find_first_not_of(" \t") == std::string_view::npos;
  }

  void AppendValue(const TemplateValue& v, bool escape) {
    std::string_view text;
    fmt::memory_buffer number;
    switch (v.kind) {
      case TemplateValue::Kind::kText:
        text = v.text;
        break;
      case TemplateValue::Kind::kJson:
        if (v.json->IsString()) {
          text = std::string_view(v.json->GetString(), v.json->GetStringLength());
        } else if (v.json->IsNumber()) {
          AppendNumber(*v.json, number);
          text = std::string_view(number.data(), number.size());
        }
        break;
      default:  // objects render as nothing
        break;
    }
    if (!escape) {
      Append(text);
      return;
    }
    if (line_blank_) line_blank_ = text.find_first_not_of(" \t") == std::string_view::npos;
    constexpr std::string_view kSpecial = "&<>\"'";
    constexpr std::string_view kEntities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    size_t start = 0;
    for (size_t i = 0; (i = text.find_first_of(kSpecial, start)) != std::string_view::npos; start = i + 1) {
      out_.append(text.substr(start, i - start));
      out_.append(kEntities[kSpecial.find(text[i])]);
    }
    out_.append(text.substr(start));
  }

  void EndLine(std::string_view newline) {
    if (line_section_ && line_blank_) {
      out_.resize(line_start_);
    } else {
      out_.append(newline);
    }
    line_start_ = out_.size();
    line_section_ = false;
    line_blank_ = true;
  }

  std::string_view src_;
  const std::vector<Node>& nodes_;
  const TemplateData& data_;
  bool escape_;
  std::string& out_;
  std::vector<std::string>* missing_;
  std::string error_;
  size_t steps_ = 0;
  size_t line_start_ = 0;
  bool line_section_ = false;  // a rendered section's tag is on the current line
  bool line_blank_ = true;     // the current line holds only ' ' and '\t' so far
};

std::string_view Language(std::string_view tag) {
  return tag.substr(0, tag.find('-'));
}

}  // namespace

std::unique_ptr<CompiledText> CompiledText::Compile(const std::string& source, bool html_escape,
                                                    std::string& error) {
  auto text = std::make_unique<CompiledText>();
  text->source_ = source;
  text->html_escape_ = html_escape;
  if (source.find("{{") == std::string::npos) {
    text->constant_ = true;
    return text;
  }
  if (source.size() > UINT32_MAX) {
    error = "template over 4 GiB";
    return nullptr;
  }
  if (!Parser(text->source_, text->variables_, text->nodes_).Run(error)) return nullptr;
  return text;
}

bool CompiledText::Render(const TemplateData& data, std::string& out, std::vector<std::string>* missing,
                          std::string& error) const {
  if (constant_) {
    out = source_;
    return true;
  }
  out.clear();
  Renderer renderer(source_, nodes_, data, html_escape_, out, missing);
  if (!renderer.Run(0, nodes_.size(), nullptr)) {
    error = renderer.error();
    return false;
  }
  renderer.Finish();
  return true;
}

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
      auto compile = [&](const auto& sources, std::string_view prefix, auto& into) {
        for (const auto& [name, source] : sources) {
          std::string error;
          bool html = prefix.empty() && c->channel == Channel::kEmail && name == "html";
          if (auto text = CompiledText::Compile(source, html, error)) {
            into.emplace(name, std::move(text));
          } else {
            problems.push_back(
                fmt::format("{}: templates.{}.{}{}: {}", c->source_file, t.locale, prefix, name, error));
          }
        }
      };
      compile(tmpl.fields, "", t.fields);
      compile(tmpl.data, "data.", t.data);
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

TemplateData::TemplateData(const rapidjson::Value* user, const rapidjson::Value* event,
                           const Campaign* campaign)
    : campaign_(campaign) {
  static const rapidjson::Value kEmpty(rapidjson::kObjectType);
  user_ = user != nullptr ? user : &kEmpty;
  event_ = event != nullptr ? event : &kEmpty;
}

TemplateData::TemplateData(const rapidjson::Value& root) {
  if (root.IsObject()) root_ = &root;
}

// A top-level name. Duplicate members of a root object: the first along a dotted path, the last as
// a member of {{.}} (kainjow's rules, kept).
const rapidjson::Value* TemplateData::Top(std::string_view name, bool last) const {
  if (root_ == nullptr) {
    if (name == "user") return user_;
    if (name == "event") return event_;
    return nullptr;
  }
  const rapidjson::Value* found = nullptr;
  for (const auto& m : root_->GetObject()) {
    if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == name) {
      found = &m.value;
      if (!last) break;
    }
  }
  return found;
}

TemplateValue TemplateData::Resolve(std::string_view name) const {
  using Kind = TemplateValue::Kind;
  if (name == ".") return TemplateValue{Kind::kTop, nullptr, {}};
  size_t dot = name.find('.');
  std::string_view first = name.substr(0, dot);
  if (first == "campaign" && campaign_ != nullptr)
    return Walk(*this, {Kind::kCampaign, nullptr, {}}, name, dot);
  const rapidjson::Value* value = Top(first, false);
  for (size_t pos = dot; value != nullptr && pos != std::string_view::npos;) {
    size_t next = name.find('.', pos + 1);
    value = FindMember(*value, name.substr(pos + 1, next - pos - 1));
    pos = next;
  }
  return value != nullptr ? TemplateValue{Kind::kJson, value, {}} : TemplateValue{};
}

TemplateValue TemplateData::Member(const TemplateValue& value, std::string_view key) const {
  using Kind = TemplateValue::Kind;
  switch (value.kind) {
    case Kind::kJson: {
      if (!value.json->IsObject()) return {};
      const rapidjson::Value* found = nullptr;
      for (const auto& m : value.json->GetObject()) {
        if (std::string_view(m.name.GetString(), m.name.GetStringLength()) == key) found = &m.value;
      }
      return found != nullptr ? TemplateValue{Kind::kJson, found, {}} : TemplateValue{};
    }
    case Kind::kCampaign:
      if (key == "id") return TemplateValue{Kind::kText, nullptr, campaign_->id};
      if (key == "name") return TemplateValue{Kind::kText, nullptr, campaign_->name};
      return {};
    case Kind::kTop: {
      if (key == "campaign") {
        if (campaign_ != nullptr) return TemplateValue{Kind::kCampaign, nullptr, {}};
        const rapidjson::Value* c = Top(key, false);
        return c != nullptr ? TemplateValue{Kind::kJson, c, {}} : TemplateValue{};
      }
      const rapidjson::Value* found = Top(key, true);
      return found != nullptr ? TemplateValue{Kind::kJson, found, {}} : TemplateValue{};
    }
    case Kind::kNone:
    case Kind::kText:
      return {};
  }
  return {};
}

RenderResult Render(const CompiledCampaign& campaign, std::string_view locale, const TemplateData& data,
                    MissingVariables mode, Content& out) {
  RenderResult result;
  const CompiledTemplate& t =
      campaign.templates[ChooseLocale(campaign.locales, locale, campaign.campaign->default_locale)];
  out.locale = t.locale;
  out.badge.reset();
  // `where`: the field's name in errors, after `prefix` ("data." for push data).
  auto render_one = [&](std::string_view prefix, std::string_view where, const CompiledText& text,
                        std::string& into) {
    size_t before = result.missing.size();
    std::string error;
    if (!text.Render(data, into, &result.missing, error)) {
      result.error = fmt::format("templates.{}.{}{}: {}", t.locale, prefix, where, error);
      return false;
    }
    if (mode == MissingVariables::kFail && result.missing.size() > before) {
      result.error = fmt::format("templates.{}.{}{}: missing variable {}", t.locale, prefix, where,
                                 result.missing[before]);
      return false;
    }
    return true;
  };
  // Rendered over the previous content (the dispatcher keeps one Content): the fields this template
  // also has keep their map nodes and string capacity; the others go. Both maps are in name order, so
  // one walk of the two matches them, with a comparison per step instead of a lookup per field.
  auto render_all = [&](const std::map<std::string, std::unique_ptr<CompiledText>>& from,
                        std::map<std::string, std::string>& into, std::string_view prefix) {
    auto at = into.begin();
    for (const auto& [name, text] : from) {
      while (at != into.end() && at->first < name) at = into.erase(at);
      if (at == into.end() || at->first != name) at = into.emplace_hint(at, name, std::string());
      if (!render_one(prefix, name, *text, at->second)) return false;
      ++at;
    }
    into.erase(at, into.end());
    return true;
  };
  if (!render_all(t.fields, out.fields, "") || !render_all(t.data, out.data, "data.")) return result;
  auto rendered = [&](const char* field) {
    auto it = out.fields.find(field);
    return it != out.fields.end() && !Trim(it->second).empty();
  };
  auto require = [&](const char* field) {
    if (rendered(field)) return true;
    result.error = fmt::format("templates.{}.{}: rendered empty", t.locale, field);
    return false;
  };
  switch (campaign.campaign->channel) {
    case Channel::kEmail:
      if (!require("from") || !require("subject")) return result;
      if (!rendered("html") && !rendered("text")) {
        result.error = fmt::format("templates.{}: html and text both rendered empty", t.locale);
        return result;
      }
      if (!rendered("text")) out.fields["text"] = HtmlToText(out.fields.at("html"));
      break;
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

}  // namespace pv::dispatcher
