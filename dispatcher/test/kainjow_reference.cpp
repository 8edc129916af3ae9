#include "kainjow_reference.hpp"

#include <fmt/format.h>

#include <cctype>
#include <kainjow/mustache.hpp>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "pv/json.hpp"

namespace pv::dispatcher::reference {
namespace {

using MustacheData = kainjow::mustache::data;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

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
    if (tag.empty()) continue;
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
  for (const auto& s : sections) variables.erase(s);
  variables.erase(".");
  return true;
}

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

// The old TemplateData: values converted to Mustache data lazily, cached by name.
class Data {
 public:
  Data(const rapidjson::Value* user, const rapidjson::Value* event, const Campaign* campaign)
      : campaign_(campaign) {
    static const rapidjson::Value kEmpty(rapidjson::kObjectType);
    roots_.emplace_back("user", user != nullptr ? user : &kEmpty);
    roots_.emplace_back("event", event != nullptr ? event : &kEmpty);
  }
  explicit Data(const rapidjson::Value& root) {
    if (!root.IsObject()) return;
    for (const auto& m : root.GetObject()) {
      roots_.emplace_back(std::string(m.name.GetString(), m.name.GetStringLength()), &m.value);
    }
  }

  const MustacheData* Resolve(const std::string& name) {
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

 private:
  const MustacheData* Store(const std::string& name, std::unique_ptr<MustacheData> value) {
    auto& slot = cache_[name];
    slot = std::move(value);
    return slot.get();
  }

  std::vector<std::pair<std::string, const rapidjson::Value*>> roots_;
  const Campaign* campaign_ = nullptr;
  std::unique_ptr<MustacheData> campaign_data_;
  std::unordered_map<std::string, std::unique_ptr<MustacheData>> cache_;
};

class TrackingContext final : public kainjow::mustache::basic_context<std::string> {
 public:
  TrackingContext(Data* data, const std::set<std::string>& variables, std::vector<std::string>* missing)
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

  Data* data_;
  std::vector<const MustacheData*> stack_;
  const std::set<std::string>& variables_;
  std::vector<std::string>* missing_;
};

struct AppendSink {
  std::string* out;
  AppendSink& operator<<(const std::string& s) {
    out->append(s);
    return *this;
  }
};

std::string Identity(const std::string& s) {
  return s;
}

}  // namespace

struct KainjowText::Impl {
  std::unique_ptr<kainjow::mustache::mustache> tmpl;
  std::set<std::string> variables;
  bool constant = false;
  std::string source;

  bool Render(Data& data, std::string& out, std::vector<std::string>* missing, std::string& error) {
    if (constant) {
      out = source;
      return true;
    }
    TrackingContext ctx(&data, variables, missing);
    out.clear();
    AppendSink sink{&out};
    tmpl->render(ctx, sink);
    if (!tmpl->is_valid()) {
      error = tmpl->error_message();
      return false;
    }
    return true;
  }
};

KainjowText::~KainjowText() = default;

std::unique_ptr<KainjowText> KainjowText::Compile(const std::string& source, bool html_escape,
                                                  std::string& error) {
  auto text = std::make_unique<KainjowText>();
  text->impl_ = std::make_unique<Impl>();
  Impl& impl = *text->impl_;
  impl.source = source;
  if (source.find("{{") == std::string::npos) {
    impl.constant = true;
    return text;
  }
  if (!ScanTags(source, impl.variables, error)) return nullptr;
  impl.tmpl = std::make_unique<kainjow::mustache::mustache>(source);
  if (!impl.tmpl->is_valid()) {
    error = impl.tmpl->error_message();
    return nullptr;
  }
  if (!html_escape) impl.tmpl->set_custom_escape(Identity);
  return text;
}

bool KainjowText::Render(const rapidjson::Value& root, std::string& out, std::vector<std::string>* missing,
                         std::string& error) const {
  Data data(root);
  return impl_->Render(data, out, missing, error);
}

bool KainjowText::Render(const rapidjson::Value* user, const rapidjson::Value* event,
                         const Campaign* campaign, std::string& out, std::vector<std::string>* missing,
                         std::string& error) const {
  Data data(user, event, campaign);
  return impl_->Render(data, out, missing, error);
}

}  // namespace pv::dispatcher::reference
